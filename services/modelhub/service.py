"""The hub's use cases: list models, embed, rerank. Routes call these and nothing else.

CPU work (image headers, tokenizing, budgeting) runs in a worker thread; inference runs
in the micro-batchers' pool; the event loop only moves requests along.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from core.settings import ModelHubSettings, ModelKind
from services.modelhub.batcher import BatchLimits, InferencePool, MicroBatcher
from services.modelhub.budget import PairPlan, check_query, plan_embedding, plan_pair
from services.modelhub.documents import RerankInput, parse_documents, parse_query
from services.modelhub.errors import InvalidField, UnknownModel
from services.modelhub.images import measure_image
from services.modelhub.late_models import OnnxTokenEncoder
from services.modelhub.onnx_models import OnnxCrossEncoder, OnnxEmbedder, TokenSeq
from services.modelhub.registry import LoadedModel, default_inference_threads
from services.modelhub.schemas import (
    EmbeddingObject,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ModelCard,
    ModelList,
    RerankRequest,
    RerankResponse,
    RerankResult,
    Usage,
)

__all__ = ["LATE_NOTE", "NO_TEXT_LOGIT", "TEXT_ONLY_NOTE", "ModelHub", "sigmoid"]

# A document the text-only cross-encoder cannot read (no text) ranks below everything.
NO_TEXT_LOGIT = -100.0
TEXT_ONLY_NOTE = (
    "text-only cross-encoder: an image document is scored by its text part (no text: "
    "lowest score); its image tokens are still counted in usage and the pair budget"
)
LATE_NOTE = (
    "late interaction: one L2-normalised vector per token (special tokens included); "
    "ask with return_multivector: true and score by MaxSim"
)
_QUERY_INPUT_TYPES = frozenset({"query", "search_query"})
# Attention memory grows with n * L**2; 128 cells per batch token keeps 512-token rows
# at 2 per batch (default budget) while ~150-token rows still batch by the twenty.
_CELLS_PER_TOKEN = 128


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Return the logistic function of ``x``, without overflow warnings."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64))))


@dataclass(frozen=True, slots=True)
class _PreparedPairs:
    plans: list[PairPlan]
    rows: list[TokenSeq]
    row_docs: list[int]  # document index of each row


class ModelHub:
    """Loaded models, their batchers, and the three operations of model-api.md."""

    def __init__(self, models: Mapping[str, LoadedModel], settings: ModelHubSettings) -> None:
        self.models = dict(models)
        self.settings = settings
        self._batchers: dict[str, MicroBatcher[TokenSeq]] = {}
        self._pool: InferencePool | None = None

    def start(self) -> None:
        """Start the inference pool and one batcher per model (inside the running loop)."""
        s = self.settings
        self._pool = InferencePool(
            s.inference_threads or default_inference_threads(),
            reserved=s.reserved_interactive_threads,
            reserve_window_s=s.interactive_window_s,
        )
        limits = BatchLimits(
            max_items=s.max_batch_items,
            max_tokens=s.max_batch_tokens,
            max_cells=s.max_batch_tokens * _CELLS_PER_TOKEN,
            max_wait_s=s.bulk_max_wait_s,
        )
        for model_id, model in self.models.items():
            batcher = MicroBatcher[TokenSeq](
                model_id,
                model.run,
                self._pool,
                limits,
                queue_limit=s.queue_limit,
                retry_after_s=s.retry_after_s,
            )
            batcher.start()
            self._batchers[model_id] = batcher

    async def close(self) -> None:
        """Stop the batchers, then the inference threads."""
        for batcher in self._batchers.values():
            await batcher.close()
        if self._pool is not None:
            await asyncio.to_thread(self._pool.close)

    # ------------------------------------------------------------------ models
    def list_models(self) -> ModelList:
        """Return ``/v1/models``: every served id, with capabilities as optional extras."""
        cards = []
        for model_id, model in self.models.items():
            spec = model.spec
            created = int((spec.path / "model.onnx").stat().st_mtime)
            if isinstance(model, OnnxEmbedder):
                card = ModelCard(
                    id=model_id,
                    created=created,
                    capabilities=["embed"],
                    max_model_len=spec.max_length,
                    dimensions=model.dimensions,
                    query_prefix=spec.query_prefix or None,
                )
            elif isinstance(model, OnnxTokenEncoder):
                card = ModelCard(
                    id=model_id,
                    created=created,
                    capabilities=["multivector"],
                    max_model_len=spec.max_length,
                    dimensions=model.dimensions,
                    notes=LATE_NOTE,
                )
            else:
                card = ModelCard(
                    id=model_id,
                    created=created,
                    capabilities=["rerank", "text-only"],
                    max_model_len=spec.pair_budget,
                    notes=TEXT_ONLY_NOTE,
                )
            cards.append(card)
        return ModelList(data=cards)

    def _model(self, model_id: str | None, kind: ModelKind) -> LoadedModel:
        if model_id is None:
            for model in self.models.values():
                if model.kind is kind:
                    return model
            raise UnknownModel(f"no {kind} model is served here")
        found = self.models.get(model_id)
        if found is None:
            raise UnknownModel(f"model {model_id!r} is not served here; see GET /v1/models")
        if found.kind is not kind:
            raise InvalidField(f"model {model_id!r} does not {kind}", param="model")
        return found

    # ------------------------------------------------------------------ embeddings
    async def embed(self, req: EmbeddingsRequest) -> EmbeddingsResponse:
        """Embed ``req.input`` in order; usage counts the model's real tokens."""
        found = self.models.get(req.model)
        if req.return_multivector or isinstance(found, OnnxTokenEncoder):
            return await self.embed_tokens(req)
        model = self._model(req.model, ModelKind.EMBED)
        assert isinstance(model, OnnxEmbedder)
        if req.dimensions is not None and req.dimensions != model.dimensions:
            raise InvalidField(
                f"{model.spec.id} has {model.dimensions} dimensions and cannot shorten them",
                param="dimensions",
            )
        texts = [req.input] if isinstance(req.input, str) else req.input
        self._check_inputs(texts)
        prefix = model.spec.query_prefix if req.input_type in _QUERY_INPUT_TYPES else ""
        truncate = self.settings.truncate if req.truncate is None else req.truncate
        rows = await asyncio.to_thread(_embedding_rows, model, texts, prefix, truncate)
        lengths = [len(row.ids) for row in rows]
        vectors = await self._batchers[model.spec.id].submit(rows, lengths)
        data = [
            EmbeddingObject(index=n, embedding=_encode_vector(vec, req.encoding_format))
            for n, vec in enumerate(vectors)
        ]
        tokens = sum(lengths)
        return EmbeddingsResponse(
            data=data, model=model.spec.id, usage=Usage(prompt_tokens=tokens, total_tokens=tokens)
        )

    async def embed_tokens(self, req: EmbeddingsRequest) -> EmbeddingsResponse:
        """One unit vector per token of each input (late interaction), in order.

        Raises:
            InvalidField: the model is not a token encoder, or the flag is missing.
        """
        found = self.models.get(req.model)
        if found is not None and not isinstance(found, OnnxTokenEncoder):
            raise InvalidField(
                f"model {req.model!r} returns one vector per text; return_multivector needs "
                "a late-interaction model (see GET /v1/models, capability multivector)",
                param="return_multivector",
            )
        model = self._model(req.model, ModelKind.LATE)
        assert isinstance(model, OnnxTokenEncoder)
        if not req.return_multivector:
            raise InvalidField(
                f"model {model.spec.id} returns one vector per token: send "
                '"return_multivector": true',
                param="return_multivector",
            )
        if req.dimensions is not None and req.dimensions != model.dimensions:
            raise InvalidField(
                f"{model.spec.id} has {model.dimensions} dimensions and cannot shorten them",
                param="dimensions",
            )
        texts = [req.input] if isinstance(req.input, str) else req.input
        self._check_inputs(texts)
        truncate = self.settings.truncate if req.truncate is None else req.truncate
        rows = await asyncio.to_thread(_embedding_rows, model, texts, "", truncate)
        lengths = [len(row.ids) for row in rows]
        padded = await self._batchers[model.spec.id].submit_each(rows, lengths)
        data = [
            EmbeddingObject(
                index=n,
                embedding=_encode_matrix(out[:length], req.encoding_format),
                shape=[length, model.dimensions],
            )
            for n, (out, length) in enumerate(zip(padded, lengths, strict=True))
        ]
        tokens = sum(lengths)
        return EmbeddingsResponse(
            data=data, model=model.spec.id, usage=Usage(prompt_tokens=tokens, total_tokens=tokens)
        )

    def _check_inputs(self, texts: list[str]) -> None:
        if not texts:
            raise InvalidField("input is empty", param="input")
        if len(texts) > self.settings.max_inputs:
            raise InvalidField(
                f"{len(texts)} inputs; at most {self.settings.max_inputs} per request",
                param="input",
            )
        for n, text in enumerate(texts):
            if not text:
                raise InvalidField(f"input {n} is an empty string", param=f"input[{n}]")
            if len(text) > self.settings.max_text_chars:
                raise InvalidField(
                    f"input {n} has {len(text)} characters; the limit is "
                    f"{self.settings.max_text_chars}",
                    param=f"input[{n}]",
                )

    # ------------------------------------------------------------------ rerank
    async def rerank(self, req: RerankRequest) -> RerankResponse:
        """Score every document against the query; sorted, cut to ``top_n``."""
        model = self._model(req.model, ModelKind.RERANK)
        assert isinstance(model, OnnxCrossEncoder)
        if req.query is None:
            raise InvalidField("query is required", param="query")
        raw_docs = req.documents if req.documents is not None else req.texts
        query = parse_query(req.query, max_chars=self.settings.max_text_chars)
        docs = parse_documents(
            raw_docs,
            max_documents=self.settings.max_documents,
            max_chars=self.settings.max_text_chars,
        )
        budget = model.spec.pair_budget
        truncate = self.settings.truncate if req.truncate is None else req.truncate
        if req.truncate_prompt_tokens is not None and req.truncate_prompt_tokens > 0:
            budget, truncate = min(budget, req.truncate_prompt_tokens), True
        prepared = await asyncio.to_thread(
            functools.partial(
                _pair_rows,
                model,
                query,
                docs,
                budget=budget,
                max_tokens_per_doc=req.max_tokens_per_doc,
                truncate=truncate,
            )
        )
        logits = np.full(len(docs), NO_TEXT_LOGIT, dtype=np.float64)
        if prepared.rows:
            lengths = [len(row.ids) for row in prepared.rows]
            out = await self._batchers[model.spec.id].submit(prepared.rows, lengths)
            logits[prepared.row_docs] = out
        scores = logits if req.raw_scores else sigmoid(logits)
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))
        if req.top_n:
            order = order[: req.top_n]
        results = [
            RerankResult(
                index=i,
                relevance_score=float(scores[i]),
                document=docs[i].echo if req.return_documents else None,
            )
            for i in order
        ]
        tokens = sum(plan.pair_tokens for plan in prepared.plans)
        return RerankResponse(
            id=f"rerank-{uuid.uuid4()}",
            model=model.spec.id,
            results=results,
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
        )


def _encode_vector(vec: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        # The OpenAI convention: little-endian float32 bytes, base64-encoded.
        return base64.b64encode(vec.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vec.tolist()]


def _encode_matrix(matrix: np.ndarray, encoding: str) -> list[list[float]] | str:
    if encoding == "base64":
        # Row-major little-endian float32, like a single vector's base64 form.
        return base64.b64encode(np.ascontiguousarray(matrix, dtype="<f4").tobytes()).decode()
    rows: list[list[float]] = matrix.astype(np.float64).tolist()
    return rows


def _embedding_rows(
    model: OnnxEmbedder | OnnxTokenEncoder, texts: list[str], prefix: str, truncate: bool
) -> list[TokenSeq]:
    specials = model.special_tokens(pair=False)
    rows = []
    for n, enc in enumerate(model.encode([prefix + text for text in texts])):
        keep = plan_embedding(
            index=n,
            tokens=len(enc.ids),
            special_tokens=specials,
            max_length=model.spec.max_length,
            truncate=truncate,
        )
        if keep < len(enc.ids):
            enc.truncate(keep)
        rows.append(model.finish(enc))
    return rows


def _image_tokens(images: tuple[str, ...], param: str, cache: dict[str, int]) -> int:
    total = 0
    for n, uri in enumerate(images):
        if uri not in cache:
            try:
                cache[uri] = measure_image(uri).tokens
            except ValueError as exc:
                raise InvalidField(f"image {n}: {exc}", param=param) from exc
        total += cache[uri]
    return total


def _pair_rows(
    model: OnnxCrossEncoder,
    query: RerankInput,
    docs: list[RerankInput],
    *,
    budget: int,
    max_tokens_per_doc: int | None,
    truncate: bool,
) -> _PreparedPairs:
    cache: dict[str, int] = {}
    specials = model.special_tokens(pair=True)
    query_image_tokens = _image_tokens(query.images, "query", cache)
    encodings = model.encode([query.text] + [doc.text for doc in docs])
    query_enc, doc_encs = encodings[0], encodings[1:]
    check_query(
        query_tokens=len(query_enc.ids),
        query_image_tokens=query_image_tokens,
        special_tokens=specials,
        pair_budget=budget,
    )
    plans: list[PairPlan] = []
    rows: list[TokenSeq] = []
    row_docs: list[int] = []
    query_len = len(query_enc.ids)
    for n, (doc, enc) in enumerate(zip(docs, doc_encs, strict=True)):
        plan = plan_pair(
            index=n,
            query_tokens=query_len,
            query_image_tokens=query_image_tokens,
            text_tokens=len(enc.ids),
            image_tokens=_image_tokens(doc.images, f"documents[{n}]", cache),
            special_tokens=specials,
            pair_budget=budget,
            model_max_length=model.spec.max_length,
            max_tokens_per_doc=max_tokens_per_doc,
            truncate=truncate,
        )
        plans.append(plan)
        if plan.model_text_tokens == 0:
            continue  # nothing the text-only model can read: scored NO_TEXT_LOGIT
        if plan.model_query_tokens < len(query_enc.ids):
            query_enc.truncate(plan.model_query_tokens)
        if plan.model_text_tokens < len(enc.ids):
            enc.truncate(plan.model_text_tokens)
        rows.append(model.finish(query_enc, enc))
        row_docs.append(n)
    return _PreparedPairs(plans=plans, rows=rows, row_docs=row_docs)
