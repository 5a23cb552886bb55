"""``sieve mcp``: an MCP server over stdio that lets an agent search Sieve collections.

It talks to the Sieve API with ``sieve_client`` (never to the store directly), so it runs
anywhere the API is reachable. Results come as text blocks an LLM can cite: source, page,
every stage's score, and the rerank status whenever it is not ``ok``.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import TextContent
from pydantic import Field
from sieve_client import AsyncSieveClient, CollectionResponse, QueryHit, QueryResponse
from sieve_client.errors import SieveClientError

__all__ = ["build_server", "format_collections", "format_results", "serve_stdio"]

_INSTRUCTIONS = (
    "Sieve searches document collections: hybrid recall, then a reranker with a relevance "
    "cutoff. Call list_collections to see what exists, then search with a collection name. "
    "Cite passages by their source and page. An empty result means nothing passed the cutoff."
)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _hit_block(hit: QueryHit) -> TextContent:
    where = hit.source or hit.document_id
    if hit.page is not None:
        where += f", page {hit.page}"
    s = hit.scores
    head = [
        f"[{hit.rank}] {where}",
        f"collection: {hit.collection}  document: {hit.document_id}"
        + (f"  title: {hit.title}" if hit.title else ""),
        f"scores: final {_score(s.final)}  rerank {_score(s.rerank)}  fused {_score(s.fused)}  "
        f"dense {_score(s.dense)}  sparse {_score(s.sparse)}",
    ]
    return TextContent(type="text", text="\n".join(head) + "\n\n" + hit.text)


def format_results(out: QueryResponse) -> list[TextContent]:
    """One text block per passage, preceded by the rerank status when it is not ``ok``."""
    blocks: list[TextContent] = []
    report = out.rerank
    if report.status != "ok":
        blocks.append(
            TextContent(
                type="text",
                text=f"rerank status: {report.status}"
                + (f" ({report.reason})" if report.reason else "")
                + "; the passages below are in recall order",
            )
        )
    if not out.results:
        cutoff = f" (min_score {report.min_score})" if report.min_score is not None else ""
        blocks.append(
            TextContent(
                type="text",
                text=f"No passage passed the relevance cutoff{cutoff}: "
                f"{report.dropped_by_cutoff} of {report.candidates} candidates were dropped.",
            )
        )
    blocks += [_hit_block(hit) for hit in out.results]
    return blocks


def format_collections(collections: list[CollectionResponse]) -> str:
    """One line per collection."""
    if not collections:
        return "No collections yet."
    return "\n".join(
        f"{c.name}: embedding {c.embedding_model} ({c.dimension}-d), "
        f"rerank {c.rerank_model or 'default'}, min_score {c.min_score}"
        for c in collections
    )


def build_server(client: AsyncSieveClient, *, default_collection: str | None = None) -> MCPServer:
    """The MCP server with the ``search`` and ``list_collections`` tools over ``client``."""
    server: MCPServer = MCPServer(name="sieve", instructions=_INSTRUCTIONS)

    @server.tool(description="Search Sieve collections; ranked passages with source, page, scores.")
    async def search(
        query: Annotated[str, Field(description="What to look for, in natural language.")],
        *,
        collection: Annotated[
            str | None, Field(description="The collection to search.")
        ] = default_collection,
        collections: Annotated[
            list[str] | None,
            Field(description="Several collections (sharing an embedding model) instead."),
        ] = None,
        top_n: Annotated[int, Field(ge=1, le=50, description="How many passages.")] = 5,
        min_score: Annotated[
            float | None,
            Field(ge=0, le=1, description="Relevance cutoff on the reranker's score."),
        ] = None,
        filter: Annotated[
            dict[str, Any] | None,
            Field(
                description='Restrict recall, e.g. {"source": "a.pdf", "page": {"gte": 2}, '
                '"metadata": {"lang": "en"}, "document_ids": ["..."]}.'
            ),
        ] = None,
    ) -> list[TextContent]:
        target: str | list[str]
        if collections:
            target = collections
        elif collection:
            target = collection
        else:
            raise ToolError("name a collection (or collections); list_collections shows them")
        try:
            out = await client.query(target, query, top_n=top_n, min_score=min_score, filter=filter)
        except SieveClientError as exc:
            raise ToolError(str(exc)) from exc
        return format_results(out)

    @server.tool(description="The Sieve collections this API key can search.")
    async def list_collections() -> str:
        try:
            return format_collections(await client.list_collections())
        except SieveClientError as exc:
            raise ToolError(str(exc)) from exc

    return server


async def serve_stdio(
    api_url: str, api_key: str | None, *, default_collection: str | None = None
) -> None:
    """Serve MCP on stdin/stdout until the client closes it."""
    async with AsyncSieveClient(api_url, api_key) as client:
        await build_server(client, default_collection=default_collection).run_stdio_async()
