"""Backup and restore over HTTP: ``sieve backup`` / ``sieve restore`` and the client calls,
against the package's running stack (real API, worker, Redis, hub, Edge store)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sieve_client import ConflictError, InvalidRequestError, NotFoundError, SieveClient
from typer.testing import CliRunner

from services.cli.main import app
from tests.services.stack import KEY_A, KEY_B, Stack

pytestmark = pytest.mark.slow

DOCS = [
    {"id": "photo", "text": "Photosynthesis turns sunlight, water and CO2 into sugar in leaves."},
    {"id": "espresso", "text": "Espresso is brewed by forcing hot water through fine coffee."},
    {"id": "tides", "text": "Tides are caused by the gravity of the moon and the sun."},
]
QUERIES = ["how do plants make sugar", "coffee brewing under pressure", "why the sea rises"]


def _answers(client: SieveClient, name: str) -> list[list[tuple[str, float]]]:
    return [
        [
            (h.document_id, h.scores.fused or 0.0)
            for h in client.query(name, q, rerank=False).results
        ]
        for q in QUERIES
    ]


def test_backup_and_restore_round_trip_through_the_cli(stack: Stack, tmp_path: Path) -> None:
    with SieveClient(stack.api, KEY_A) as client:
        client.create_collection("bk")
        job = client.upload_documents("bk", DOCS)
        assert client.wait_job(job.job_id, timeout_s=120).counts == {"indexed": 3}
        before = _answers(client, "bk")
        bundle = tmp_path / "bk.sieve"
        env = {"SIEVE_URL": stack.api, "SIEVE_API_KEY": KEY_A}
        runner = CliRunner()
        out = runner.invoke(app, ["backup", "-c", "bk", "-o", str(bundle)], env=env)
        assert out.exit_code == 0, out.output
        assert "3 documents" in " ".join(out.output.split())  # rich wraps lines
        out = runner.invoke(app, ["restore", str(bundle), "--as", "bk-copy"], env=env)
        assert out.exit_code == 0, out.output
        copy = client.get_collection("bk-copy")
        assert (copy.documents, copy.chunks) == (3, client.get_collection("bk").chunks)
        assert _answers(client, "bk-copy") == before
        # The same name again is a conflict; another tenant cannot see the snapshot.
        with pytest.raises(ConflictError):
            client.restore(bundle, name="bk-copy")
        snap = client.snapshot_collection("bk")
        with SieveClient(stack.api, KEY_B) as other, pytest.raises(NotFoundError):
            other.get_snapshot(snap.id)
        client.wait_snapshot(snap.id)
        # A damaged bundle: one 400 in the one error body, nothing created.
        damaged = tmp_path / "damaged.sieve"
        data = bundle.read_bytes()
        damaged.write_bytes(data[: len(data) - 200])
        with pytest.raises(InvalidRequestError) as bad:
            client.restore(damaged, name="bk-damaged")
        assert bad.value.status == 400
        assert bad.value.code == "bad_bundle"
        with pytest.raises(NotFoundError):
            client.get_collection("bk-damaged")
        raw = httpx.post(
            f"{stack.api}/v1/collections/restore",
            params={"name": "bk-raw"},
            content=b"not a bundle at all",
            headers={"Authorization": f"Bearer {KEY_A}"},
            timeout=30,
        )
        assert raw.status_code == 400
        assert set(raw.json()) == {"error"}
        assert raw.json()["error"]["code"] == "bad_bundle"
