"""The hub under test: real uvicorn servers on free loopback ports, models loaded once.

Three servers share one set of loaded models: ``hub`` (a bearer key, default limits,
plus a reranker budgeted like IONOS's 32,768-token Qwen3-VL), ``strict_hub`` (open,
tiny limits, truncation off, one deliberately broken model for the 500 path) and
``limited_hub`` (an IONOS-like rate limit).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from core.settings import ModelHubSettings, ModelKind, RegisteredModel
from services.modelhub.app import create_app
from services.modelhub.onnx_models import FloatArray, OnnxCrossEncoder, TokenSeq
from services.modelhub.registry import BUNDLED_RERANK_ID, LoadedModel, bundled_models, load_models
from tests.modelhub.support import API_KEY, BROKEN_ID, WIDE_RERANK_ID, RunningHub


class BrokenCrossEncoder(OnnxCrossEncoder):
    """A real model whose inference fails, to prove a 500 leaks nothing."""

    def run(self, seqs: Sequence[TokenSeq]) -> FloatArray:
        raise RuntimeError("secret-detail /srv/internal/path")


@pytest.fixture
def unused_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def loaded_models() -> dict[str, LoadedModel]:
    """The bundled models, verified and loaded once for the whole session."""
    return load_models(bundled_models(), intra_op_threads=1)


@pytest.fixture(scope="session")
def wide_reranker(loaded_models: dict[str, LoadedModel]) -> OnnxCrossEncoder:
    spec = loaded_models[BUNDLED_RERANK_ID].spec
    wide = RegisteredModel(
        id=WIDE_RERANK_ID, kind=ModelKind.RERANK, path=spec.path, context_tokens=32_768
    )
    return OnnxCrossEncoder(wide, intra_op_threads=1)


def _serve(settings: ModelHubSettings, models: dict[str, LoadedModel]) -> Iterator[RunningHub]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, models=models), log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the model hub did not start")
        time.sleep(0.02)
    try:
        yield RunningHub(url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture(scope="session")
def hub(
    loaded_models: dict[str, LoadedModel], wide_reranker: OnnxCrossEncoder
) -> Iterator[RunningHub]:
    settings = ModelHubSettings(api_keys=(SecretStr(API_KEY),), inference_threads=2)
    yield from _serve(settings, {**loaded_models, WIDE_RERANK_ID: wide_reranker})


@pytest.fixture(scope="session")
def strict_hub(loaded_models: dict[str, LoadedModel]) -> Iterator[RunningHub]:
    spec = loaded_models[BUNDLED_RERANK_ID].spec
    broken = BrokenCrossEncoder(
        RegisteredModel(id=BROKEN_ID, kind=ModelKind.RERANK, path=spec.path),
        intra_op_threads=1,
    )
    settings = ModelHubSettings(
        max_body_bytes=64 * 1024,
        max_documents=8,
        max_inputs=4,
        max_text_chars=4_000,
        truncate=False,
        max_batch_items=8,
        queue_limit=8,
        inference_threads=1,
    )
    yield from _serve(settings, {**loaded_models, BROKEN_ID: broken})


@pytest.fixture(scope="session")
def limited_hub(loaded_models: dict[str, LoadedModel]) -> Iterator[RunningHub]:
    settings = ModelHubSettings(rate_limit_per_s=0.2, rate_limit_burst=2, inference_threads=1)
    yield from _serve(settings, loaded_models)


@pytest.fixture(scope="session")
def client(hub: RunningHub) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=hub.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
    ) as c:
        yield c


@pytest.fixture(scope="session")
def strict_client(strict_hub: RunningHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=strict_hub.url, timeout=60) as c:
        yield c
