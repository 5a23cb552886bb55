"""Request-body limits enforced while the body is read, whatever its framing.

A ``Content-Length`` header is only a claim: a chunked body has none, and a client may send
more than it declared. ``BodyLimits`` wraps the ASGI ``receive`` channel, so every byte any
route (or FastAPI's own JSON parsing, or Starlette's multipart parser) reads is counted.
The limit is chosen per route once routing has happened: upload routes get the upload
limit, every other route a small JSON limit. For ``multipart/form-data`` uploads each file
part is also held to the per-file limit while it streams in (archives excepted: they are
bounded by the whole body and expanded under their own budget).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.detect import ARCHIVE_TYPES, detect_type

__all__ = ["BodyLimits", "BodyTooLarge", "LimitPolicy"]

# Enough of a part to tell an archive by its magic (tar's "ustar" sits at offset 257).
_SNIFF_BYTES = 512


class BodyTooLarge(HTTPException):
    """413: raised from ``receive``; FastAPI re-raises HTTP errors met while reading a body."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


@dataclass(frozen=True)
class LimitPolicy:
    """Byte limits: ``default_bytes`` for every route but ``upload_routes`` (method, path)."""

    default_bytes: int
    upload_bytes: int
    file_part_bytes: int
    upload_routes: Collection[tuple[str, str]] = field(default_factory=frozenset)
    # (method, path) -> a limit of the route's own (its body is one file, not multipart).
    route_bytes: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def for_scope(self, scope: Scope) -> tuple[int, bool]:
        """The body limit for this request and whether it is an upload route."""
        route = scope.get("route")
        path = getattr(route, "path", None)
        own = self.route_bytes.get((scope.get("method", ""), path or ""))
        if own is not None:
            return own, False
        if path is not None and (scope.get("method", ""), path) in self.upload_routes:
            return self.upload_bytes, True
        return self.default_bytes, False


class _PartSizes:
    """Counts each multipart file part's bytes as they stream past (a second, cheap parse)."""

    def __init__(self, boundary: bytes, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._head = bytearray()
        self._bounded = True
        self._is_file = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._over: str | None = None
        self._broken = False
        callbacks: Any = {
            "on_part_begin": self._begin,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_header_end": self._header_end,
            "on_part_data": self._data,
        }
        self._parser = MultipartParser(boundary, callbacks)

    def _begin(self) -> None:
        self._size, self._head, self._bounded, self._is_file = 0, bytearray(), True, False

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if bytes(self._header_field).lower() == b"content-disposition":
            _, options = parse_options_header(bytes(self._header_value))
            self._is_file = b"filename" in options
        self._header_field, self._header_value = bytearray(), bytearray()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._is_file:
            return  # form fields are bounded by Starlette's max_part_size
        self._size += end - start
        if len(self._head) < _SNIFF_BYTES:
            self._head += data[start : min(end, start + _SNIFF_BYTES - len(self._head))]
            if len(self._head) >= _SNIFF_BYTES:
                self._bounded = detect_type(bytes(self._head)).type not in ARCHIVE_TYPES
        if self._bounded and self._size > self._limit and self._over is None:
            self._over = f"a file part is over the per-file limit of {self._limit} bytes"

    def feed(self, chunk: bytes) -> str | None:
        """Count ``chunk``; return why the body is refused, or None."""
        if self._broken or not chunk:
            return self._over
        try:
            self._parser.write(chunk)
        except Exception:  # noqa: BLE001 - malformed multipart: Starlette's parser reports it
            self._broken = True
        return self._over


class BodyLimits:
    """ASGI middleware: refuse a body over its route's limit while it is being read."""

    def __init__(self, app: ASGIApp, policy: LimitPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a ``receive`` that counts and refuses."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0
        parts: _PartSizes | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, parts, started
            limit, upload = self.policy.for_scope(scope)
            if not started:
                started = True
                if declared is not None and declared > limit:
                    raise BodyTooLarge(f"request body of {declared} bytes; the limit is {limit}")
                parts = _multipart_counter(scope, self.policy.file_part_bytes) if upload else None
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    raise BodyTooLarge(f"request body over the limit of {limit} bytes")
                if parts is not None and (why := parts.feed(chunk)) is not None:
                    raise BodyTooLarge(why)
            return message

        await self.app(scope, limited_receive, send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _multipart_counter(scope: Scope, limit: int) -> _PartSizes | None:
    ctype, options = parse_options_header(_header(scope, b"content-type"))
    boundary = options.get(b"boundary")
    if ctype.lower() != b"multipart/form-data" or not boundary:
        return None
    return _PartSizes(boundary, limit)
