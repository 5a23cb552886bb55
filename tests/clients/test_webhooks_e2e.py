"""Webhooks over the real stack, through the client: a job completes, its event reaches a
loopback receiver that fails its first calls, signed (checked with ``standardwebhooks``),
retried, and every attempt is in the deliveries log; the SSRF guard answers in the one
error body."""

from __future__ import annotations

import time

import httpx
import pytest
from sieve_client import InvalidRequestError, NotFoundError, SieveClient

from tests.services.stack import KEY_A, KEY_B, Stack
from tests.services.webhook_receiver import receiver

pytestmark = pytest.mark.slow


def test_a_completed_job_is_delivered_signed_after_retries_and_logged(stack: Stack) -> None:
    with SieveClient(stack.api, KEY_A) as client, receiver(fail_first=2) as rx:
        client.create_collection("hooked")
        hook = client.create_webhook("hooked", rx.url, events=["job.completed", "job.failed"])
        assert hook.secret.startswith("whsec_")
        rx.secret = hook.secret
        listed = client.list_webhooks("hooked")
        assert [h.id for h in listed] == [hook.id]
        assert "secret" not in listed[0].model_dump()
        job = client.upload_documents(
            "hooked", [{"id": "moss", "text": "Moss grows on the north side of oak trees."}]
        )
        (call,) = rx.wait_for(1, timeout_s=60)
        assert call.verified
        event = call.event()
        assert event["type"] == "job.completed"
        assert event["data"]["job_id"] == job.job_id
        assert event["data"]["counts"] == {"indexed": 1}
        assert client.get_job(job.job_id).state == "completed"
        assert len(rx.calls) == 3
        assert len({c.headers["webhook-id"] for c in rx.calls}) == 1
        deadline = time.monotonic() + 10
        while (page := client.list_webhook_deliveries("hooked", hook.id)).total < 3:
            assert time.monotonic() < deadline, page
            time.sleep(0.05)
        assert [(d["attempt"], d["status"]) for d in page.deliveries] == [
            (3, "delivered"),
            (2, "retrying"),
            (1, "retrying"),
        ]
        second = client.list_webhook_deliveries("hooked", hook.id, offset=1, limit=1)
        assert [d["attempt"] for d in second.deliveries] == [2]
        client.delete_webhook("hooked", hook.id)
        assert client.list_webhooks("hooked") == []
        client.delete_collection("hooked")


def test_targets_the_guard_refuses_and_other_tenants_get_the_one_error_body(
    stack: Stack,
) -> None:
    with SieveClient(stack.api, KEY_A) as client:
        client.create_collection("guarded")
        for url in (
            "http://127.0.0.2:9/hook",  # loopback, but not the allowed address
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/hook",
            "ftp://example.com/x",
        ):
            with pytest.raises(InvalidRequestError):
                client.create_webhook("guarded", url)
        hook = client.create_webhook("guarded", "http://127.0.0.1:9/hook")
        with httpx.Client(base_url=stack.api, headers={"Authorization": f"Bearer {KEY_A}"}) as raw:
            resp = raw.post("/v1/collections/guarded/webhooks", json={"url": "http://10.0.0.1/"})
            assert resp.status_code == 400
            assert resp.json()["error"]["code"] == "webhook_target_refused"
            assert "10.0.0.1" not in resp.json()["error"]["message"]
        with SieveClient(stack.api, KEY_B) as other, pytest.raises(NotFoundError):
            other.list_webhooks("guarded")
        with pytest.raises(NotFoundError):
            client.list_webhook_deliveries("guarded", "wh_missing")
        client.delete_webhook("guarded", hook.id)
        with pytest.raises(NotFoundError):
            client.delete_webhook("guarded", hook.id)
        client.delete_collection("guarded")


def test_the_cli_adds_lists_shows_deliveries_and_removes(stack: Stack) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415 - only this test drives the CLI

    from services.cli.main import app  # noqa: PLC0415

    runner = CliRunner(env={"SIEVE_URL": stack.api, "SIEVE_API_KEY": KEY_A, "COLUMNS": "250"})

    def sieve(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    with SieveClient(stack.api, KEY_A) as client, receiver() as rx:
        client.create_collection("cli-hooks")
        added = sieve("webhooks", "add", rx.url, "-c", "cli-hooks", "-e", "job.completed")
        hook_id = added.split()[1]
        rx.secret = added.split("secret ", 1)[1].split()[0]
        assert hook_id in sieve("webhooks", "list", "-c", "cli-hooks")
        client.upload_documents("cli-hooks", [{"id": "a", "text": "Lichen on granite."}])
        rx.wait_for(1, timeout_s=60)
        assert rx.calls[0].verified
        deadline = time.monotonic() + 10
        while "delivered" not in (
            shown := sieve("webhooks", "deliveries", hook_id, "-c", "cli-hooks")
        ):
            assert time.monotonic() < deadline, shown
            time.sleep(0.05)
        assert "job.completed" in shown
        sieve("webhooks", "rm", hook_id, "-c", "cli-hooks")
        assert "no webhooks" in sieve("webhooks", "list", "-c", "cli-hooks")
        bad = runner.invoke(app, ["webhooks", "add", "http://10.0.0.1/", "-c", "cli-hooks"])
        assert bad.exit_code == 1
        assert "Traceback" not in bad.output
        client.delete_collection("cli-hooks")


def test_a_finished_snapshot_is_announced(stack: Stack) -> None:
    with SieveClient(stack.api, KEY_A) as client, receiver(fail_first=0) as rx:
        client.create_collection("snapped")
        hook = client.create_webhook("snapped", rx.url, events=["snapshot.completed"])
        rx.secret = hook.secret
        snap = client.snapshot_collection("snapped")
        done = client.wait_snapshot(snap.id)
        (call,) = rx.wait_for(1, timeout_s=60)
        assert call.verified
        event = call.event()
        assert event["type"] == "snapshot.completed"
        assert event["data"]["snapshot_id"] == snap.id
        assert event["data"]["collection"] == "snapped"
        assert event["data"]["bytes"] == done.bytes
        client.delete_collection("snapped")
