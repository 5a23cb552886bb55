"""Offline ONNX graph optimisation, cached beside the data and verified by sha256 on reuse.

``optimized_graph`` turns a model file into the graph a session should open: onnxruntime's
own fusions applied once and serialized (``optimized_model_filepath``), stored under the
hub's cache directory — never in the model's package, which may be read-only — under a key
made of the source file's sha256, the onnxruntime version and the recipe. A later start
reuses the file only if its sha256 still matches the manifest written beside it; anything
else (a missing, altered or foreign entry) is rebuilt. Any model kind can use it: it needs
nothing but the path of an ONNX file.

Measured on the bundled INT8 graphs (onnxruntime 1.32, 2-core AVX-512 VNNI box): at load,
``ORT_ENABLE_ALL`` already fuses LayerNorm, SkipLayerNorm, GELU and the dynamic-quantised
MatMuls (``MatMulIntegerToFloat``/``DynamicQuantizeMatMul``), so the serialized graph runs
at the same speed and gives the same scores; what the cache saves is the optimisation pass
at every start. The transformer optimizer's attention fusion (dequantise, fuse to
``Attention``, re-quantise to ``QAttention``) ran 0.87-0.92x as fast and moved logits by up
to 0.5, so it is not a recipe here (services/modelhub/README.md has the numbers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

__all__ = ["ORT_EXTENDED", "GraphRecipe", "cache_key", "optimized_graph", "sha256_file"]

log = logging.getLogger(__name__)

_MANIFEST = "manifest.json"
_GRAPH = "model.onnx"


@dataclass(frozen=True, slots=True)
class GraphRecipe:
    """How a source graph is rewritten offline; ``name`` is part of the cache key."""

    name: str
    level: ort.GraphOptimizationLevel


# EXTENDED holds every transformer fusion onnxruntime's CPU provider has; ALL only adds
# layout rewrites that are specific to the CPU they ran on (and warns when serialized).
ORT_EXTENDED = GraphRecipe(
    name="ort-extended", level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
)


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def cache_key(source_sha256: str, recipe: GraphRecipe) -> str:
    """Return the cache entry name of a source graph under a recipe and this onnxruntime."""
    return f"{source_sha256[:32]}-onnxruntime-{ort.__version__}-{recipe.name}"


def optimized_graph(
    source: Path,
    cache_dir: Path,
    *,
    source_sha256: str | None = None,
    recipe: GraphRecipe = ORT_EXTENDED,
) -> Path:
    """Return the cached optimised graph of ``source``, building and caching it if needed.

    ``source_sha256`` saves hashing the source again when the caller has just verified it.
    When the cache directory cannot be written, the source itself is returned (the session
    then optimises in memory, as it always did) and a warning is logged.
    """
    digest = source_sha256 or sha256_file(source)
    entry = cache_dir / cache_key(digest, recipe)
    graph = entry / _GRAPH
    if _verified(entry, digest, recipe):
        return graph
    try:
        entry.mkdir(parents=True, exist_ok=True)
        _build(source, entry, digest, recipe)
    except OSError as exc:
        log.warning(
            "graph cache not writable; using the source graph",
            extra={"cache_dir": str(cache_dir), "error": type(exc).__name__},
        )
        return source
    log.info("optimised graph cached", extra={"source": source.name, "entry": entry.name})
    return graph


def _verified(entry: Path, digest: str, recipe: GraphRecipe) -> bool:
    manifest_path = entry / _MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        expected = {
            "source_sha256": digest,
            "onnxruntime": ort.__version__,
            "recipe": recipe.name,
        }
        if any(manifest.get(key) != value for key, value in expected.items()):
            return False
        ok = bool(sha256_file(entry / _GRAPH) == manifest["graph_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        log.warning("cached graph failed verification; rebuilding", extra={"entry": entry.name})
    return ok


def _build(source: Path, entry: Path, digest: str, recipe: GraphRecipe) -> None:
    # Write beside the final name and rename: a reader never sees half a file, and two
    # hubs starting at once each write a whole, identical one.
    fd, tmp_name = tempfile.mkstemp(dir=entry, prefix=".graph-", suffix=".onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        options = ort.SessionOptions()
        options.graph_optimization_level = recipe.level
        options.optimized_model_filepath = str(tmp)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        manifest = {
            "source": source.name,
            "source_sha256": digest,
            "onnxruntime": ort.__version__,
            "recipe": recipe.name,
            "graph_sha256": sha256_file(tmp),
        }
        tmp.replace(entry / _GRAPH)
    finally:
        tmp.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=entry, prefix=".manifest-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
    Path(tmp_name).replace(entry / _MANIFEST)
