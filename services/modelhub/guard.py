"""The hub's front door (pure ASGI): request id, bearer keys, rate limit, body size, 500s.

It runs before FastAPI reads the body, so a caller without a key gets 401 whatever it
sent, and an oversized body is refused (413) before anything parses it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.defaults import BULK_PRIORITY, PRIORITY_HEADER
from core.errors import PayloadTooLarge, SieveError, Unauthorized
from core.logs import log_context
from services.modelhub.batcher import bulk_request
from services.modelhub.errors import RateLimited, error_body, status_of

__all__ = ["HubGuard", "KeyRing", "TokenBucket", "error_response_parts"]

log = logging.getLogger(__name__)

# Past this, a refused body is not drained: the connection is closed instead.
_DRAIN_LIMIT = 64 * 1024 * 1024


class KeyRing:
    """Configured bearer keys, compared in constant time (digests, every key checked)."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        self._digests = [hashlib.sha256(k.get_secret_value().encode()).digest() for k in keys]

    @property
    def open(self) -> bool:
        """True when no key is configured."""
        return not self._digests

    def allows(self, authorization: str | None) -> bool:
        """Return whether an ``Authorization`` header carries one of the keys."""
        if self.open:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        presented = hashlib.sha256(token.strip().encode()).digest()
        ok = False
        for digest in self._digests:
            ok |= hmac.compare_digest(presented, digest)
        return ok and scheme.lower() == "bearer"


class TokenBucket:
    """A token bucket: ``rate`` requests per second, bursts up to ``burst``."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def acquire(self) -> float:
        """Take one token; return 0 when granted, else the seconds until one is free."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


def error_response_parts(exc: SieveError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Return status, body and extra headers for a Sieve error (the one error body)."""
    status, kind = status_of(exc)
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    if status == 401:
        headers["www-authenticate"] = "Bearer"
    message = exc.message if status != 500 else "internal error"
    return status, error_body(status, kind, message, getattr(exc, "param", None)), headers


class HubGuard:
    """ASGI middleware in front of the hub's routes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyRing,
        max_body_bytes: int,
        limiter: TokenBucket | None = None,
        open_paths: frozenset[str] = frozenset({"/health"}),
    ) -> None:
        self.app = app
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        self.limiter = limiter
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then hand it on with its body already read."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        with log_context(request_id=request_id):
            try:
                self._admit(scope)
                body = await self._read_body(scope, receive)
            except SieveError as exc:
                await _send_error(send_with_id, exc)
                return
            # The request's class for the batcher: bulk work yields to interactive work.
            priority = dict(scope.get("headers") or []).get(PRIORITY_HEADER.encode(), b"")
            token = bulk_request.set(priority.strip().lower() == BULK_PRIORITY.encode())
            try:
                await self._call_app(scope, _replay(body, receive), send_with_id, lambda: started)
            finally:
                bulk_request.reset(token)

    async def _call_app(
        self, scope: Scope, receive: Receive, send: Send, started: Callable[[], bool]
    ) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception:
            # Log the trace here; the client only ever gets the generic 500 body.
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if not started():
                await _send_error(send, SieveError("internal error"))

    def _admit(self, scope: Scope) -> None:
        if scope.get("path") in self.open_paths:
            return
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization")
        if not self.keys.allows(auth.decode("latin-1") if auth else None):
            raise Unauthorized("missing or wrong bearer token")
        if self.limiter is not None:
            wait = self.limiter.acquire()
            if wait > 0:
                raise RateLimited("rate limit exceeded", retry_after=math.ceil(wait))

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_large = PayloadTooLarge(f"request body is over the {self.max_body_bytes}-byte limit")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            if int(declared) <= _DRAIN_LIMIT:
                await _drain(receive)
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                if size <= _DRAIN_LIMIT and message.get("more_body", False):
                    await _drain(receive)
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


async def _drain(receive: Receive) -> None:
    # Reading the rest lets the client finish sending and read our 413 cleanly.
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(send: Send, exc: SieveError) -> None:
    status, body, headers = error_response_parts(exc)
    payload = json.dumps(body).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((k.encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})
