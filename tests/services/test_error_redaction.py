"""No 5xx body or its log line names where a peer lives (issue 19): the one error handler
redacts addresses, and the evaluation store maps Redis errors at the state store's choke
point instead of quoting them."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.errors import UpstreamUnavailable
from core.net import free_port
from services.api.errors import redact_addresses
from services.api.evaluations import EvaluationStore


@pytest.mark.parametrize(
    "text",
    [
        "Error 111 connecting to 127.0.0.1:6379. Connection refused.",
        "Error -2 connecting to redis:6379. Name or service not known.",
        "Timeout reading from redis.internal.svc.cluster.local:6380",
        "UNKNOWN: ipv4:10.0.0.7:6334: Failed to connect to remote host",
        "Server error '503' for url 'http://10.1.2.3:8080/v1/models'",
        "connect to [::1]:6379 failed; fe80::1 also",
        "the peer at 192.168.1.20.",
    ],
)
def test_addresses_are_redacted(text: str) -> None:
    out = redact_addresses(text)
    assert "<address>" in out
    for leak in ("127.0.0.1", "6379", "6380", "redis:", "svc.cluster", "10.0.0.7", "10.1.2.3"):
        assert leak not in out, out
    assert "::1" not in out
    assert "192.168" not in out


def test_plain_messages_stay_as_they_are() -> None:
    for text in ("the job state store (Redis) is unavailable", "reranker timed out after 5.0s"):
        assert redact_addresses(text) == text


def test_the_evaluation_store_names_no_redis_address() -> None:
    port = free_port()  # nothing listens there: a real refused connection
    client = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    store = EvaluationStore(client)
    for call in (lambda: store.get("t", "kb"), lambda: store.delete("t", "kb")):
        with pytest.raises(UpstreamUnavailable) as down:
            call()
        assert str(port) not in down.value.message
        assert "127.0.0.1" not in down.value.message
