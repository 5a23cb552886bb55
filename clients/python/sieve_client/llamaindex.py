"""A LlamaIndex retriever over a Sieve collection (``pip install "sieve-client[llamaindex]"``).

>>> retriever = SieveRetriever(collection="sample", api_url="http://127.0.0.1:8000", top_n=4)
>>> nodes = retriever.retrieve("how does reranking work")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from sieve_client.client import AsyncSieveClient, SieveClient
from sieve_client.models import QueryFilter, QueryMode, QueryResponse
from sieve_client.retrieval import QueryKnobs, hit_metadata

__all__ = ["SieveRetriever", "to_nodes"]

# Provenance and scores are for the application, not for the LLM or the embedder.
_HIDDEN = ["chunk_id", "rank", "char_start", "char_end", "scores", "rerank_status", "rerank_model"]


def to_nodes(response: QueryResponse) -> list[NodeWithScore]:
    """The hits as scored LlamaIndex nodes (score = the final score)."""
    out = []
    for hit in response.results:
        node = TextNode(
            id_=hit.chunk_id,
            text=hit.text,
            metadata=hit_metadata(hit, response),
            excluded_llm_metadata_keys=_HIDDEN,
            excluded_embed_metadata_keys=_HIDDEN,
        )
        out.append(NodeWithScore(node=node, score=hit.scores.final))
    return out


class SieveRetriever(BaseRetriever):
    """Ranked, reranked passages from one Sieve collection (or several, as a list)."""

    def __init__(
        self,
        collection: str | Sequence[str],
        *,
        api_url: str | None = None,
        api_key: str | None = None,
        top_n: int | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
        filter: QueryFilter | Mapping[str, Any] | None = None,
        mode: QueryMode | str = QueryMode.HYBRID,
        rerank: bool = True,
        rerank_model: str | None = None,
        final: str | None = None,
        client: SieveClient | None = None,
        async_client: AsyncSieveClient | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self.knobs = QueryKnobs(
            collection=collection,
            top_n=top_n,
            top_k=top_k,
            min_score=min_score,
            filter=filter,
            mode=mode,
            rerank=rerank,
            rerank_model=rerank_model,
            final=final,
        )
        self._api_url, self._api_key = api_url, api_key
        self._client, self._async_client = client, async_client
        self._own_sync: SieveClient | None = None
        self._own_async: AsyncSieveClient | None = None

    def _sync(self) -> SieveClient:
        if self._client is not None:
            return self._client
        if self._own_sync is None:
            self._own_sync = SieveClient(self._api_url, self._api_key)
        return self._own_sync

    def _async(self) -> AsyncSieveClient:
        if self._async_client is not None:
            return self._async_client
        if self._own_async is None:
            self._own_async = AsyncSieveClient(self._api_url, self._api_key)
        return self._own_async

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        k = self.knobs
        return to_nodes(self._sync().query(k.collection, query_bundle.query_str, **k.kwargs()))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        k = self.knobs
        out = await self._async().query(k.collection, query_bundle.query_str, **k.kwargs())
        return to_nodes(out)

    def close(self) -> None:
        """Close the sync client this retriever opened (not one passed in)."""
        if self._own_sync is not None:
            self._own_sync.close()
            self._own_sync = None

    async def aclose(self) -> None:
        """Close the clients this retriever opened (not ones passed in)."""
        self.close()
        if self._own_async is not None:
            await self._own_async.close()
            self._own_async = None
