"""Webhook delivery latency for a burst of jobs, and what a kill -9 during a burst loses.

The embedded stack as ``sieve up`` starts it (``bench.harness.BenchStack``), one collection
subscribed to ``job.completed`` at a real loopback receiver that checks every signature
with ``standardwebhooks``. Phase 1: ``--jobs`` one-document uploads; latency is the
receipt time minus the event's timestamp (the moment the job became terminal in Redis).
Phase 2: another burst, with the API (the store writer and the delivery loop) and then the
worker killed with SIGKILL while events are being delivered; the supervisor restarts them.
Every job's event must arrive (at least once: duplicates are counted, not lost ones).

    .venv/bin/python -m bench.webhooks --jobs 100
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bench.harness import BenchStack, code_state, markdown_table, pct


@dataclass
class _Inbox:
    secret: str = ""
    got: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def job_ids(self) -> list[str]:
        with self.lock:
            return [e["data"]["job_id"] for _, e in self.got]


@contextmanager
def _receiver(inbox: _Inbox) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            at = time.time()
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            try:
                event = Webhook(inbox.secret).verify(body, dict(self.headers.items()))
            except WebhookVerificationError:
                with inbox.lock:
                    inbox.bad_signatures += 1
                self.send_response(400)
            else:
                with inbox.lock:
                    inbox.got.append((at, event))
                self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _upload(api: httpx.Client, n: int, tag: str) -> list[str]:
    jobs = []
    for i in range(n):
        doc = {"id": f"{tag}-{i}", "text": f"Burst document {i} of {tag}: moss and lichen {i}."}
        for _ in range(50):
            try:
                resp = api.post("/v1/collections/burst/documents", json={"documents": [doc]})
            except httpx.TransportError:
                time.sleep(0.5)  # the API is being restarted
                continue
            if resp.status_code in (429, 503):
                time.sleep(0.2)
                continue
            resp.raise_for_status()
            jobs.append(resp.json()["job_id"])
            break
        else:
            raise RuntimeError(f"upload {tag}-{i} kept failing")
    return jobs


def _wait_all(inbox: _Inbox, jobs: list[str], timeout_s: float) -> float:
    started = time.monotonic()
    want = set(jobs)
    while not want <= set(inbox.job_ids()):
        if time.monotonic() - started > timeout_s:
            break
        time.sleep(0.05)
    return time.monotonic() - started


def _latencies_ms(inbox: _Inbox, jobs: list[str]) -> list[float]:
    wanted = set(jobs)
    first: dict[str, float] = {}
    with inbox.lock:
        for at, event in inbox.got:
            job = event["data"]["job_id"]
            if job in wanted and job not in first:
                created = datetime.fromisoformat(event["timestamp"]).timestamp()
                first[job] = (at - created) * 1000
    return sorted(first.values())


def _kill(stack: BenchStack, name: str) -> None:
    os.killpg(stack.pid(name), signal.SIGKILL)


def main() -> None:
    """Run both phases and print a markdown report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100)
    args = parser.parse_args()
    inbox = _Inbox()
    env = {
        "SIEVE_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32",
        "SIEVE_WEBHOOK_TIMEOUT_S": "2",
        "SIEVE_WEBHOOK_POLL_S": "0.05",
        "SIEVE_QUOTA_UPLOADS_IN_FLIGHT": "64",
    }
    with _receiver(inbox) as url, BenchStack.running("webhooks", **env) as stack:
        watcher = threading.Thread(target=stack.watch, daemon=True)
        watcher.start()
        with httpx.Client(base_url=stack.api_url, timeout=60) as api:
            api.post("/v1/collections", json={"name": "burst"}).raise_for_status()
            hook = api.post(
                "/v1/collections/burst/webhooks", json={"url": url, "events": ["job.completed"]}
            )
            hook.raise_for_status()
            inbox.secret = hook.json()["secret"]

            t0 = time.monotonic()
            burst = _upload(api, args.jobs, "a")
            took = _wait_all(inbox, burst, 600) + (time.monotonic() - t0)
            lat = _latencies_ms(inbox, burst)

            killed = _upload(api, args.jobs, "b")
            while len(_latencies_ms(inbox, killed)) < args.jobs // 5:
                time.sleep(0.02)
            _kill(stack, "api")
            time.sleep(1.0)
            _kill(stack, "worker")
            recovery = _wait_all(inbox, killed, 900)
            got_killed = _latencies_ms(inbox, killed)
            ids = inbox.job_ids()
            dupes = len(ids) - len(set(ids))
        stack.stopping.set()
        watcher.join(timeout=5)

    rows = [
        [
            "burst",
            str(args.jobs),
            str(len(lat)),
            f"{pct(lat, 50):.0f}",
            f"{pct(lat, 99):.0f}",
            f"{took:.1f}",
        ],
        [
            "burst, API then worker kill -9",
            str(args.jobs),
            str(len(got_killed)),
            f"{pct(got_killed, 50):.0f}",
            f"{pct(got_killed, 99):.0f}",
            f"{recovery:.1f} after the kill",
        ],
    ]
    print(f"## Webhook delivery ({code_state()})\n")
    print(
        markdown_table(
            ["run", "jobs", "events received", "p50 ms", "p99 ms", "wall s"], rows, right=1
        )
    )
    print(f"\nduplicates (at least once): {dupes}; bad signatures: {inbox.bad_signatures}")
    print(json.dumps({"lost_after_kill": args.jobs - len(got_killed), "duplicates": dupes}))


if __name__ == "__main__":
    main()
