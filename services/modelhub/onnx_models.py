"""ONNX models behind one small surface: tokenize (plain ids) and run a padded batch.

Tokenizers are used without their own padding and truncation: the hub truncates by its
budget and pads each batch to its longest row (the shipped reranker tokenizer would pad
every pair to 512).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from core.settings import ModelKind, Pooling, RegisteredModel
from services.modelhub.graph_cache import optimized_graph

__all__ = [
    "HiddenStateModel",
    "OnnxCrossEncoder",
    "OnnxEmbedder",
    "OnnxModel",
    "TokenSeq",
    "make_run_options",
    "make_session",
    "pad_batch",
]

FloatArray = npt.NDArray[np.float32]


class TokenSeq(NamedTuple):
    """One model input row, unpadded, special tokens included."""

    ids: list[int]
    type_ids: list[int]


def make_session(path: str, *, intra_op_threads: int) -> ort.InferenceSession:
    """Open an ONNX file on CPU with ``intra_op_threads`` threads and full graph optimisation."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The hub runs several sessions from a few threads; spinning workers would steal the
    # cores the other inference thread needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Memory patterns are cached per input shape; with per-batch padding every batch has a
    # new shape, so they only grow memory.
    options.enable_mem_pattern = False
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def make_run_options() -> ort.RunOptions:
    """Run options that hand arena memory back after each batch (keeps the hub's RSS flat)."""
    run_options = ort.RunOptions()
    run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return run_options


def pad_batch(
    seqs: Sequence[TokenSeq], *, pad_id: int, input_names: Sequence[str]
) -> dict[str, npt.NDArray[np.int64]]:
    """Pad ``seqs`` to the longest row and return the ONNX feed the model asks for."""
    width = max(len(seq.ids) for seq in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    types = np.zeros((len(seqs), width), dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for row, seq in enumerate(seqs):
        n = len(seq.ids)
        ids[row, :n] = seq.ids
        types[row, :n] = seq.type_ids
        mask[row, :n] = 1
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {name: feed[name] for name in input_names}


class OnnxModel:
    """A tokenizer + ONNX session pair; subclasses say what a batch's output means."""

    kind: ModelKind

    def __init__(
        self, spec: RegisteredModel, *, intra_op_threads: int, graph_cache_dir: Path | None = None
    ) -> None:
        self.spec = spec
        self.tokenizer = Tokenizer.from_file(str(spec.path / "tokenizer.json"))
        padding: dict[str, Any] | None = self.tokenizer.padding
        self.pad_id = int(padding["pad_id"]) if padding else 0
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        graph = spec.path / "model.onnx"
        if graph_cache_dir is not None:
            # The pin (already checked by the registry) is the cache key: no second hash.
            graph = optimized_graph(
                graph, graph_cache_dir, source_sha256=spec.sha256.get("model.onnx")
            )
        self.graph_path = graph
        self.session = make_session(str(graph), intra_op_threads=intra_op_threads)
        names = [i.name for i in self.session.get_inputs()]
        unknown = set(names) - {"input_ids", "attention_mask", "token_type_ids"}
        if unknown or "input_ids" not in names:
            raise ValueError(f"{spec.id}: unsupported ONNX inputs {sorted(names)}")
        self.input_names = tuple(names)
        self.run_options = make_run_options()

    def special_tokens(self, *, pair: bool) -> int:
        """Return how many special tokens the tokenizer adds to a single text or a pair."""
        return int(self.tokenizer.num_special_tokens_to_add(pair))

    def encode(self, texts: list[str]) -> list[Encoding]:
        """Tokenize ``texts`` without special tokens, truncation or padding."""
        return list(self.tokenizer.encode_batch(texts, add_special_tokens=False))

    def finish(self, first: Encoding, second: Encoding | None = None) -> TokenSeq:
        """Add the special tokens (the tokenizer's own template) to one text or a pair."""
        enc = self.tokenizer.post_process(first, second, add_special_tokens=True)
        return TokenSeq(ids=enc.ids, type_ids=enc.type_ids)

    def _feed(self, seqs: Sequence[TokenSeq]) -> dict[str, npt.NDArray[np.int64]]:
        return pad_batch(seqs, pad_id=self.pad_id, input_names=self.input_names)


class HiddenStateModel(OnnxModel):
    """A BERT-style encoder whose output is ``last_hidden_state`` [batch, seq, dim]."""

    def __init__(
        self, spec: RegisteredModel, *, intra_op_threads: int, graph_cache_dir: Path | None = None
    ) -> None:
        super().__init__(spec, intra_op_threads=intra_op_threads, graph_cache_dir=graph_cache_dir)
        shape = self.session.get_outputs()[0].shape
        if len(shape) != 3 or not isinstance(shape[2], int):
            raise ValueError(f"{spec.id}: expected last_hidden_state [batch, seq, dim]")
        self.dimensions: int = shape[2]


class OnnxEmbedder(HiddenStateModel):
    """A BERT-style encoder pooled to one (optionally L2-normalised) vector per text."""

    kind = ModelKind.EMBED

    def run(self, seqs: Sequence[TokenSeq]) -> FloatArray:
        """Return one float32 vector per row of the batch."""
        feed = self._feed(seqs)
        hidden: FloatArray = self.session.run(None, feed, self.run_options)[0]
        if self.spec.pooling is Pooling.CLS:
            vectors = hidden[:, 0, :]
        else:
            mask = feed["attention_mask"][:, :, None].astype(np.float32)
            vectors = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.spec.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.maximum(norms, 1e-12)
        return vectors


class OnnxCrossEncoder(OnnxModel):
    """A cross-encoder that reads a (query, document) pair and returns one logit."""

    kind = ModelKind.RERANK

    def run(self, seqs: Sequence[TokenSeq]) -> FloatArray:
        """Return one float32 logit per pair of the batch."""
        logits: FloatArray = self.session.run(None, self._feed(seqs), self.run_options)[0]
        return np.ascontiguousarray(logits.reshape(len(seqs), -1)[:, 0], dtype=np.float32)
