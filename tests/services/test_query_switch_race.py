"""A query that read a collection's record just before a re-index switch runs again on the
fresh record when its store collection is gone; a really deleted one is still a 404."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from core.errors import NotFound
from indexing.records import CollectionRecord
from services.api.deps import ApiDeps
from services.api.routes_query import _run
from services.api.schemas_query import QueryRequest

OLD = CollectionRecord(tenant="t", name="c", embedding_model="m", dimension=4, store="t-c")
NEW = OLD.model_copy(update={"generation": 1, "store": "g1-t-c", "ids": "t-c"})


class _State:
    """Answers the record as it is at each read: the switch happens between reads."""

    def __init__(self, *records: CollectionRecord) -> None:
        self.records = list(records)

    def get_collection(self, tenant: str, name: str) -> CollectionRecord:
        record = self.records.pop(0) if len(self.records) > 1 else self.records[0]
        assert (record.tenant, record.name) == (tenant, name)
        return record


class _Engine:
    """The query engine's seam: stores that were dropped answer NotFound."""

    def __init__(self, dropped: set[str]) -> None:
        self.dropped = dropped
        self.ran: list[str] = []

    async def run(self, collections: list[CollectionRecord], req: QueryRequest) -> Any:
        store = collections[0].store_name
        self.ran.append(store)
        if store in self.dropped:
            raise NotFound(f"collection {collections[0].name} not found")
        return store


def _deps(state: _State, engine: _Engine) -> ApiDeps:
    return cast(ApiDeps, type("Deps", (), {"state": state, "query": engine})())


def test_a_query_that_lost_the_switch_race_runs_on_the_new_generation() -> None:
    assert OLD.store_name != NEW.store_name
    engine = _Engine(dropped={OLD.store_name})
    out, answered_by = asyncio.run(
        _run(_deps(_State(OLD, NEW), engine), "t", ["c"], QueryRequest(query="q"))
    )
    assert cast(str, out) == NEW.store_name
    # The records that answered are the fresh ones (the query log writes under them).
    assert [c.store_name for c in answered_by] == [NEW.store_name]
    assert engine.ran == [OLD.store_name, NEW.store_name]


def test_a_deleted_collection_is_still_not_found_and_runs_once() -> None:
    engine = _Engine(dropped={OLD.store_name})
    with pytest.raises(NotFound):
        asyncio.run(_run(_deps(_State(OLD), engine), "t", ["c"], QueryRequest(query="q")))
    assert engine.ran == [OLD.store_name]
