"""What the end-to-end benchmarks share: the embedded stack as ``sieve up`` starts it, a
process-tree RSS sampler, percentiles and a markdown table.

The stack is ``services.cli.supervisor.Supervisor`` itself (same children, same env layout,
same start order and health checks), on free loopback ports and a temporary data directory,
with one hook between Redis and the API so a benchmark can register state first.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import psutil

from core.net import free_port
from services.cli.supervisor import Supervisor, UpConfig

__all__ = [
    "SCIFACT_DIR",
    "BenchStack",
    "PeriodicSampler",
    "TreeSampler",
    "code_state",
    "descendants_rss",
    "free_port",
    "markdown_table",
    "pct",
]

# The shared data set lives next to the repository; it is read in place, never copied.
SCIFACT_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"


def pct(samples: Sequence[float], q: int) -> float:
    """The q-th percentile (inclusive method); the single value when there is one."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: int = 1) -> str:
    """A markdown table; columns from ``right`` on are right-aligned."""
    align = ["---" if i < right else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class BenchStack(Supervisor):
    """``sieve up``'s supervisor with a hook before the API starts and optional worker."""

    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def on_free_ports(cls, data_dir: Path, **extra_env: str) -> BenchStack:
        """A stack in ``data_dir`` on free loopback ports; log output goes to stderr."""
        config = UpConfig(
            data_dir=data_dir, port=free_port(), hub_port=free_port(), load_sample=False
        )
        return cls(
            config=config,
            echo=lambda line: print(line, file=sys.stderr),
            extra_env={"SIEVE_LOG_LEVEL": "WARNING", **extra_env},
        )

    @classmethod
    @contextmanager
    def running(cls, name: str, **extra_env: str) -> Iterator[BenchStack]:
        """A started stack in a temporary data directory, stopped when the block ends; when
        the block raises, each child's log tail is printed first."""
        with tempfile.TemporaryDirectory(prefix=f"sieve-bench-{name}-") as tmp:
            stack = cls.on_free_ports(Path(tmp), **extra_env)
            failed = True
            try:
                stack.start()
                yield stack
                failed = False
            finally:
                stack.stop_and_report(failed)

    @property
    def api_url(self) -> str:
        """The API's base URL."""
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def hub_url(self) -> str:
        """The model hub's base URL (without ``/v1``)."""
        return f"http://127.0.0.1:{self.config.hub_port}"

    @property
    def redis_url(self) -> str:
        """The stack's Redis."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self) -> dict[str, str]:
        """The supervisor's environment plus the benchmark's overrides."""
        return {**super().env(), **self.extra_env}

    def start_without_worker(self, before_api: Callable[[str], None]) -> None:
        """Redis, ``before_api(redis_url)``, hub, API: ``start()``'s order and health checks.

        The hook runs once Redis answers and before the API opens the store, so state can be
        registered first. No ingest worker: a query benchmark has nothing for it to do.
        """
        cfg = self.config
        for sub in ("redis", "qdrant", "blobs", "logs"):
            (cfg.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.redis_port = cfg.redis_port or free_port()
        self._start_redis()
        before_api(self.redis_url)
        env = self.env()
        hub = [self._script("sieve"), "modelhub", "--port", str(cfg.hub_port)]
        self._spawn("modelhub", hub, env)
        self._wait_http(f"{self.hub_url}/health", "modelhub", 180)
        self._spawn("api", [self._script("sieve"), "api"], env)
        self._wait_http(f"{self.api_url}/readyz", "api", 180)

    def pid(self, name: str) -> int:
        """The pid of the child called ``name`` (``redis``, ``modelhub``, ``api``, ``worker``)."""
        return next(c.proc.pid for c in self.children if c.name == name)

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a child's log (they vanish with a temporary data directory)."""
        path = self.config.data_dir / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop_and_report(self, failed: bool) -> None:
        """Stop every child; after a failure, print each child's log tail to stderr first."""
        if failed:
            for child in self.children:
                tail = self.log_tail(child.name)
                if tail:
                    print(f"--- {child.name}.log (tail) ---\n{tail}", file=sys.stderr)
        self.stop()

    def check_alive(self) -> None:
        """Raise ``RuntimeError`` if any child has exited."""
        for child in self.children:
            if child.proc.poll() is not None:
                log = self.config.data_dir / "logs" / f"{child.name}.log"
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode}; see {log}")


def descendants_rss(root: psutil.Process) -> list[int] | None:
    """The RSS of each of ``root``'s descendants (None: ``root`` is gone).

    A child that exits between listing and reading (a pool child, say) is left out.
    """
    try:
        kids = root.children(recursive=True)
    except psutil.Error:
        return None
    out = []
    for kid in kids:
        try:
            out.append(kid.memory_info().rss)
        except psutil.Error:
            continue
    return out


class PeriodicSampler:
    """Calls ``tick`` every ``interval_s`` in a daemon thread between enter and exit."""

    def __init__(self, interval_s: float) -> None:
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def tick(self) -> None:
        """One sample (subclasses)."""
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self._interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class TreeSampler(PeriodicSampler):
    """Samples the RSS of a process and all its descendants (summed) in a thread; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        super().__init__(interval_s)
        self._root = psutil.Process(pid)
        self.peak = 0
        self.peak_single = 0
        self.samples = 0

    def _rss(self) -> tuple[int, int]:
        kids = descendants_rss(self._root)
        if kids is None:
            return 0, 0
        try:
            rss = [self._root.memory_info().rss, *kids]
        except psutil.Error:
            rss = kids
        return sum(rss), max(rss, default=0)

    def tick(self) -> None:
        """Add one reading to the peaks."""
        total, single = self._rss()
        self.peak = max(self.peak, total)
        self.peak_single = max(self.peak_single, single)
        self.samples += 1


def code_state() -> str:
    """The commit measured, and the files changed on top of it (others work in this tree)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--short", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            check=False,
            text=True,
        ).stdout.split("\n")
    except OSError:
        return "unknown"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"{head}" + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def machine_note() -> str:
    """CPUs and load, for the table's caption."""
    return f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"


def wall() -> float:
    """Monotonic seconds."""
    return time.perf_counter()
