"""A real webhook receiver for tests: an HTTP server on a free loopback port, in a thread.

It fails its first ``fail_first`` calls (503), can hold its first answers, can answer with a
redirect instead, and checks
every call's Standard Webhooks signature with the ``standardwebhooks`` package.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["Call", "Receiver", "receiver"]


@dataclass(frozen=True)
class Call:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float

    def event(self) -> dict[str, Any]:
        """The JSON body."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """The receiver's behaviour (change it while it runs) and what it got."""

    url: str
    secret: str | None = None
    fail_first: int = 0
    redirect_to: str | None = None
    # The first ``hang_first`` calls are held this long before their answer (a slow target).
    hang_first: int = 0
    hang_s: float = 0.0
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> list[Call]:
        """The calls it answered 2xx (the ones after the failures)."""
        with self.lock:
            return list(self.calls[self.fail_first :]) if self.redirect_to is None else []

    def wait_for(self, n: int, timeout_s: float = 30.0) -> list[Call]:
        """Block until ``n`` calls were answered 2xx; return them."""
        deadline = time.monotonic() + timeout_s
        while len(got := self.delivered()) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver got {len(got)} of {n} deliveries")
            time.sleep(0.02)
        return got


def _handler(holder: list[Receiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state = holder[0]
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified = False
            if state.secret is not None:
                try:
                    Webhook(state.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
            with state.lock:
                state.calls.append(Call(headers, body, verified, time.time()))
                n = len(state.calls)
            if n <= state.hang_first:
                time.sleep(state.hang_s)
            if n <= state.fail_first:
                self.send_response(503)
            elif state.redirect_to is not None:
                self.send_response(302)
                self.send_header("location", state.redirect_to)
            else:
                self.send_response(204 if verified else 400)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def receiver(host: str = "127.0.0.1", **behaviour: Any) -> Iterator[Receiver]:
    """Serve a receiver on ``host`` (a free port the OS picks) until the block ends."""
    holder: list[Receiver] = []
    server = ThreadingHTTPServer((host, 0), _handler(holder))
    server.daemon_threads = True
    state = Receiver(url=f"http://{host}:{server.server_address[1]}/hook", **behaviour)
    holder.append(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
