"""One running embedded stack for every client test module (each uses its own collections)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services.stack import Stack, running_stack


@pytest.fixture(scope="package")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The stack (real Redis, hub, API over HTTP, one Celery worker), started once."""
    with running_stack(
        redis_url,
        hub_url,
        tmp_path_factory.mktemp("clients"),
        # The webhook tests' receiver listens on loopback: allow that address only, and
        # retry fast.
        SIEVE_WEBHOOK_ALLOW_NETWORKS="127.0.0.1/32",
        SIEVE_WEBHOOK_BACKOFF_BASE_S="0.1",
        SIEVE_WEBHOOK_BACKOFF_MAX_S="0.5",
        SIEVE_WEBHOOK_POLL_S="0.05",
    ) as handle:
        yield handle
