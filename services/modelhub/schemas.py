"""Request and response bodies of the hub (model-api.md). Unknown request fields are ignored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EmbeddingObject",
    "EmbeddingsRequest",
    "EmbeddingsResponse",
    "ModelCard",
    "ModelList",
    "RerankRequest",
    "RerankResponse",
    "RerankResult",
    "Usage",
]


class _Request(BaseModel):
    # Liberal in what we accept: fields other peers send are ignored, not rejected.
    model_config = ConfigDict(extra="ignore")


class EmbeddingsRequest(_Request):
    """``POST /v1/embeddings``."""

    model: Annotated[str, Field(min_length=1)]
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int | None, Field(gt=0)] = None
    user: str | None = None
    # Cohere/NIM-style hint; "query" prepends the model's query prefix, if it has one.
    input_type: str | None = None
    truncate: bool | None = None
    # Jina's flag: one vector per token (a late-interaction model), not one per text.
    return_multivector: bool = False


class RerankRequest(_Request):
    """``POST /v1/rerank``: ``documents`` (or TEI's ``texts``) in any shape model-api.md lists."""

    model: str | None = None
    query: Any = None
    documents: list[Any] | None = None
    texts: list[Any] | None = None
    top_n: Annotated[int | None, Field(ge=0)] = None
    return_documents: bool = True
    max_tokens_per_doc: Annotated[int | None, Field(ge=1)] = None
    truncate_prompt_tokens: Annotated[int | None, Field(ge=-1)] = None
    raw_scores: bool = False
    truncate: bool | None = None


class Usage(BaseModel):
    """Tokens the request cost."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingObject(BaseModel):
    """One embedding, at its input's ``index``."""

    object: Literal["embedding"] = "embedding"
    index: int
    # A vector; with ``return_multivector`` a list of token vectors (or, base64, the
    # row-major float32 matrix: tokens = bytes / 4 / dimensions).
    embedding: list[float] | list[list[float]] | str
    # Multivectors only: [tokens, dimensions], so a base64 matrix needs no outside knowledge.
    shape: list[int] | None = None


class EmbeddingsResponse(BaseModel):
    """The OpenAI embeddings list."""

    object: Literal["list"] = "list"
    data: list[EmbeddingObject]
    model: str
    usage: Usage


class RerankResult(BaseModel):
    """One scored document; ``index`` is its position in the request."""

    index: int
    relevance_score: float
    document: dict[str, Any] | None = None


class RerankResponse(BaseModel):
    """The vLLM/IONOS rerank shape."""

    id: str
    model: str
    results: list[RerankResult]
    usage: Usage


class ModelCard(BaseModel):
    """One entry of ``/v1/models``; the fields after ``owned_by`` are optional extras."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "sieve"
    capabilities: list[str]
    max_model_len: int
    dimensions: int | None = None
    query_prefix: str | None = None
    notes: str | None = None


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
