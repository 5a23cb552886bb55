"""The LangChain and LlamaIndex retrievers and the ``sieve mcp`` server, on the bundled
sample collection served by the running embedded stack."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.schema import QueryBundle
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import TextContent
from sieve_client import SieveClient
from sieve_client.langchain import SieveRetriever as LangChainRetriever
from sieve_client.llamaindex import SieveRetriever as LlamaIndexRetriever

from tests.services.stack import KEY_A, Stack

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[2] / "services" / "cli" / "sample"
QUESTION = "how do plants make sugar from light"
ANSWER = "photosynthesis.md"


@pytest.fixture(scope="module", autouse=True)
def sample(stack: Stack) -> None:
    """The bundled sample collection, as ``sieve up`` loads it on a first run."""
    with SieveClient(stack.api, KEY_A) as client:
        client.create_collection("sample")
        files = sorted(SAMPLE.glob("*.md"))
        job = client.upload_files("sample", files)
        assert client.wait_job(job.job_id, timeout_s=180).counts == {"indexed": len(files)}


def _check_scores(meta: dict[str, Any]) -> None:
    assert set(meta["scores"]) == {"dense", "sparse", "fused", "late", "rerank", "final"}
    assert meta["scores"]["rerank"] is not None
    assert meta["score"] == meta["scores"]["final"]
    assert meta["rerank_status"] == "ok"


# ---------------------------------------------------------------- LangChain


def test_langchain_retriever_sync_and_async(stack: Stack) -> None:
    retriever = LangChainRetriever(collection="sample", api_url=stack.api, api_key=KEY_A, top_n=2)
    docs = retriever.invoke(QUESTION)
    assert len(docs) == 2
    top = docs[0]
    assert top.metadata["source"] == ANSWER
    assert "light" in top.page_content.lower()
    assert (top.metadata["collection"], top.metadata["rank"]) == ("sample", 1)
    assert top.metadata["char_end"] > top.metadata["char_start"]
    _check_scores(top.metadata)

    async def run() -> list[str]:
        out = await retriever.ainvoke(QUESTION)
        await retriever.aclose()
        return [d.metadata["source"] for d in out]

    assert asyncio.run(run()) == [d.metadata["source"] for d in docs]


def test_langchain_retriever_honours_min_score_and_filter(stack: Stack) -> None:
    with SieveClient(stack.api, KEY_A) as client:
        strict = LangChainRetriever(collection="sample", client=client, min_score=0.999)
        assert strict.invoke("what is the capital of a vector database") == []
        elsewhere = LangChainRetriever(
            collection="sample", client=client, top_n=5, filter={"source": "the-moon.md"}
        )
        docs = elsewhere.invoke(QUESTION)
        assert docs
        assert {d.metadata["source"] for d in docs} == {"the-moon.md"}


# ---------------------------------------------------------------- LlamaIndex


def test_llamaindex_retriever_sync_and_async(stack: Stack) -> None:
    retriever = LlamaIndexRetriever("sample", api_url=stack.api, api_key=KEY_A, top_n=3)
    nodes = retriever.retrieve(QUESTION)
    assert len(nodes) == 3
    top = nodes[0]
    assert top.node.metadata["source"] == ANSWER
    assert top.score == top.node.metadata["scores"]["final"]
    assert "light" in top.node.get_content().lower()
    _check_scores(top.node.metadata)
    # Scores and offsets stay out of what an LLM is shown.
    assert "scores" not in top.node.get_metadata_str(mode="llm")  # type: ignore[arg-type]

    async def run() -> list[str]:
        out = await retriever.aretrieve(QueryBundle(QUESTION))
        await retriever.aclose()
        return [n.node.metadata["source"] for n in out]

    assert asyncio.run(run()) == [n.node.metadata["source"] for n in nodes]
    retriever.close()


def test_llamaindex_retriever_honours_top_n_min_score_filter(stack: Stack) -> None:
    one = LlamaIndexRetriever(
        "sample", api_url=stack.api, api_key=KEY_A, top_n=1, filter={"source": ["bm25.md"]}
    )
    nodes = one.retrieve(QUESTION)
    assert [n.node.metadata["source"] for n in nodes] == ["bm25.md"]
    none = LlamaIndexRetriever("sample", api_url=stack.api, api_key=KEY_A, min_score=0.999)
    assert none.retrieve("the price of tea in another galaxy") == []
    one.close()
    none.close()


# ---------------------------------------------------------------- MCP over stdio


def _texts(result: Any) -> list[str]:
    return [block.text for block in result.content if isinstance(block, TextContent)]


def test_mcp_server_over_stdio(stack: Stack) -> None:
    sieve = Path(sys.executable).parent / "sieve"
    params = StdioServerParameters(
        command=str(sieve),
        args=["mcp", "--api-url", stack.api],
        env={"SIEVE_API_KEY": KEY_A},
    )

    async def run() -> dict[str, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            found = await session.call_tool(
                "search", {"query": QUESTION, "collection": "sample", "top_n": 2}
            )
            listed = await session.call_tool("list_collections", {})
            unranked = await session.call_tool(
                "search",
                {"query": QUESTION, "collections": ["sample"], "top_n": 1, "min_score": 0.999},
            )
            filtered = await session.call_tool(
                "search",
                {"query": QUESTION, "collection": "sample", "filter": {"source": "bm25.md"}},
            )
            missing = await session.call_tool("search", {"query": QUESTION, "collection": "nope"})
            bare = await session.call_tool("search", {"query": QUESTION})
            return {
                "init": init,
                "tools": tools,
                "found": found,
                "listed": listed,
                "unranked": unranked,
                "filtered": filtered,
                "missing": missing,
                "bare": bare,
            }

    out = asyncio.run(run())
    assert out["init"].server_info.name == "sieve"
    tools = {t.name: t for t in out["tools"].tools}
    assert set(tools) == {"search", "list_collections"}
    props = tools["search"].input_schema["properties"]
    assert {"query", "collection", "collections", "top_n", "min_score", "filter"} <= set(props)

    found = _texts(out["found"])
    assert not out["found"].is_error
    assert len(found) == 2
    assert found[0].startswith(f"[1] {ANSWER}")
    assert "scores: final " in found[0]
    assert "rerank " in found[0]
    assert "rerank status" not in "".join(found)  # only shown when it is not ok

    assert "sample: embedding BAAI/bge-small-en-v1.5" in _texts(out["listed"])[0]
    assert "No passage passed the relevance cutoff (min_score 0.999)" in _texts(out["unranked"])[0]
    assert all(
        t.startswith("[") and "bm25.md" in t.splitlines()[0] for t in _texts(out["filtered"])
    )
    assert out["missing"].is_error
    assert "collection_not_found" in _texts(out["missing"])[0]
    assert out["bare"].is_error


def test_mcp_reports_a_failed_rerank(stack: Stack) -> None:
    # Format check on a real degraded answer: the hub refuses the rerank, the API answers in
    # recall order with rerank.status "failed", and the MCP text says so first.
    from services.cli.mcp_server import format_results  # noqa: PLC0415

    stack.plan.fail_next(10, 500, endpoint="rerank")
    try:
        with SieveClient(stack.api, KEY_A) as client:
            # A question never asked before: its rerank scores cannot come from the cache.
            out = client.query("sample", f"{QUESTION} ({time.monotonic_ns()})", top_n=2)
    finally:
        stack.plan.fail_next(0, 500, endpoint="rerank")
    assert out.rerank.status != "ok"
    blocks = format_results(out)
    assert blocks[0].text.startswith(f"rerank status: {out.rerank.status}")
    assert "recall order" in blocks[0].text
    assert len(blocks) == 3
