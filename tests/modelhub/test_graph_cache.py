"""The offline-optimised graph cache: keyed, verified on reuse, rebuilt when altered, never
fatal when unwritable, and giving the scores of the shipped graphs on the same inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from core.settings import RegisteredModel
from services.modelhub.graph_cache import ORT_EXTENDED, cache_key, optimized_graph, sha256_file
from services.modelhub.onnx_models import OnnxCrossEncoder, OnnxEmbedder, TokenSeq
from services.modelhub.registry import BUNDLED_EMBED_ID, BUNDLED_RERANK_ID, LoadedModel

QUERY = "how do plants make food from sunlight"
TEXTS = [
    "Photosynthesis lets plants turn light, water and carbon dioxide into glucose.",
    "Solar panels convert sunlight into electricity for homes.",
    "Plant-based food has become popular in restaurants.",
    "The sun is a star at the centre of our solar system, and plants need its light.",
    "Tides are caused mainly by the Moon's gravity pulling on the Earth's oceans.",
    "Low iron often causes tiredness, pale skin and shortness of breath.",
]


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("graph-cache")


@pytest.fixture(scope="module")
def optimised(loaded_models: dict[str, LoadedModel], graph_cache: Path) -> dict[str, LoadedModel]:
    """The bundled models opened from the cache (the shipped ones are ``loaded_models``)."""
    embed, rerank = loaded_models[BUNDLED_EMBED_ID], loaded_models[BUNDLED_RERANK_ID]
    return {
        BUNDLED_EMBED_ID: OnnxEmbedder(embed.spec, intra_op_threads=1, graph_cache_dir=graph_cache),
        BUNDLED_RERANK_ID: OnnxCrossEncoder(
            rerank.spec, intra_op_threads=1, graph_cache_dir=graph_cache
        ),
    }


def _source(spec: RegisteredModel) -> Path:
    return spec.path / "model.onnx"


def test_cached_graph_is_keyed_by_source_digest_and_onnxruntime(
    optimised: dict[str, LoadedModel], graph_cache: Path
) -> None:
    for model in optimised.values():
        digest = model.spec.sha256["model.onnx"]
        entry = graph_cache / cache_key(digest, ORT_EXTENDED)
        assert model.graph_path == entry / "model.onnx"
        assert digest[:32] in entry.name
        assert ort.__version__ in entry.name
        manifest = json.loads((entry / "manifest.json").read_text())
        assert manifest["source_sha256"] == digest
        assert manifest["graph_sha256"] == sha256_file(model.graph_path)
        # Nothing was written next to the shipped model.
        assert not any(p.name.startswith(".graph-") for p in model.spec.path.iterdir())


def test_reuse_does_not_rebuild(optimised: dict[str, LoadedModel], graph_cache: Path) -> None:
    model = optimised[BUNDLED_EMBED_ID]
    before = model.graph_path.stat().st_mtime_ns
    again = optimized_graph(_source(model.spec), graph_cache)
    assert again == model.graph_path
    assert again.stat().st_mtime_ns == before


def test_altered_graph_or_manifest_is_rebuilt(
    loaded_models: dict[str, LoadedModel], tmp_path: Path
) -> None:
    source = _source(loaded_models[BUNDLED_RERANK_ID].spec)
    graph = optimized_graph(source, tmp_path)
    good = sha256_file(graph)
    with graph.open("r+b") as fh:  # flip bytes in place: same size, different content
        fh.seek(1_000)
        fh.write(b"\x00" * 64)
    assert sha256_file(graph) != good
    assert sha256_file(optimized_graph(source, tmp_path)) == good

    manifest_path = graph.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "onnxruntime": "0.0.0"}))
    stamp = graph.stat().st_mtime_ns
    optimized_graph(source, tmp_path)
    assert graph.stat().st_mtime_ns != stamp
    assert json.loads(manifest_path.read_text())["onnxruntime"] == ort.__version__


def test_unwritable_cache_falls_back_to_the_source(
    loaded_models: dict[str, LoadedModel], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    source = _source(loaded_models[BUNDLED_EMBED_ID].spec)
    assert optimized_graph(source, blocker / "cache") == source


def _rows(model: LoadedModel, *, pair: bool) -> list[TokenSeq]:
    if not pair:
        return [model.finish(enc) for enc in model.encode([QUERY, *TEXTS])]
    query = model.encode([QUERY])[0]
    return [model.finish(query, enc) for enc in model.encode(TEXTS)]


def test_optimised_embeddings_match_the_shipped_graph(
    loaded_models: dict[str, LoadedModel], optimised: dict[str, LoadedModel]
) -> None:
    shipped, fast = loaded_models[BUNDLED_EMBED_ID], optimised[BUNDLED_EMBED_ID]
    assert isinstance(shipped, OnnxEmbedder)
    assert isinstance(fast, OnnxEmbedder)
    rows = _rows(shipped, pair=False)
    for batch in (rows, rows[:1], rows[2:5]):  # batch composition changes INT8 scales
        a, b = shipped.run(batch), fast.run(batch)
        cosines = np.sum(a * b, axis=1)  # both L2-normalised
        assert float(cosines.min()) > 0.9999


def test_optimised_rerank_logits_match_the_shipped_graph(
    loaded_models: dict[str, LoadedModel], optimised: dict[str, LoadedModel]
) -> None:
    shipped, fast = loaded_models[BUNDLED_RERANK_ID], optimised[BUNDLED_RERANK_ID]
    assert isinstance(shipped, OnnxCrossEncoder)
    assert isinstance(fast, OnnxCrossEncoder)
    rows = _rows(shipped, pair=True)
    for batch in (rows, rows[:1], rows[1:4]):
        a, b = shipped.run(batch), fast.run(batch)
        # Same batch, same fused kernels: far inside the 0.6 logit the hub is held to.
        assert float(np.abs(a - b).max()) < 0.01
    assert int(np.argmax(fast.run(rows))) == 0
