"""The soak benchmark, a few seconds of it with 2 clients on the test stack, so it cannot rot:
its mix runs every route, its final check finds the set clean, and the check can fail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.soak import COLLECTION, StorageSampler, render, run_soak
from bench.soak_check import check_final_state
from bench.soak_mix import ROUTES, Expected, Ledger
from tests.services.stack import KEY_A, Stack, running_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(redis_url, hub_url, tmp_path_factory.mktemp("soak")) as handle:
        yield handle


def test_a_short_soak_runs_every_route_and_ends_with_the_expected_documents(
    stack: Stack,
) -> None:
    result = run_soak(
        stack.api,
        clients=2,
        seconds=8,
        warmup_s=1,
        seed_docs=10,
        think_s=0.02,
        headers={"Authorization": f"Bearer {KEY_A}"},
        job_timeout_s=120,
        storage=StorageSampler(stack.env["SIEVE_REDIS_URL"], stack.root / "blobs", every_s=0.5),
        retention_s=3600,
    )
    assert result.server_errors == 0, result.error_samples
    assert result.transport_errors == 0, result.error_samples
    assert result.unfinished_jobs == 0, result.jobs
    assert result.check.clean, result.check
    assert result.correct
    # Requests really went out: at least the cheap routes, each answered.
    assert sum(sum(by.values()) for by in result.statuses.values()) >= 10
    assert set(result.statuses) <= {route for route, _ in ROUTES}
    assert result.check.expected_live >= 5
    # Redis and the blob directory were sampled and are reported.
    assert result.storage["end"]["Redis used_memory (MiB)"] > 0
    assert result.storage["end"]["blob files"] >= result.check.expected_live
    assert "Redis and the blob directory (retention 3600 s" in render(result)

    # The check is not vacuous: an id the ledgers expect but never sent is lost, a live
    # document claimed deleted is resurrected, and a wrong expected hash is wrong content.
    live = {k: v for ledger in result.ledgers for k, v in ledger.live.items()}
    some_id, want = sorted(live.items())[0]
    other_id = sorted(live)[1]
    tampered = Ledger(
        live={
            "never-sent": Expected("0" * 64, "", None),
            other_id: Expected("f" * 64, want.text, want.rev),
        },
        deleted={some_id},
    )
    with stack.client() as c:
        check = check_final_state(c, COLLECTION, [*result.ledgers, tampered], settle_s=5)
    assert check.lost_in_list == ["never-sent"]
    assert check.lost_in_query == ["never-sent"]
    assert check.resurrected_in_list == [some_id]
    assert check.resurrected_in_query == [some_id]
    assert other_id in check.wrong_content
    assert not check.clean
