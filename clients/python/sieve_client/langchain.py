"""A LangChain retriever over a Sieve collection (``pip install "sieve-client[langchain]"``).

>>> retriever = SieveRetriever(api_url="http://127.0.0.1:8000", collection="sample", top_n=4)
>>> docs = retriever.invoke("how does reranking work")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr, model_validator

from sieve_client.client import AsyncSieveClient, SieveClient
from sieve_client.models import QueryFilter, QueryMode, QueryResponse
from sieve_client.retrieval import QueryKnobs, hit_metadata, refuse_unknown_keywords

__all__ = ["SieveRetriever", "to_documents"]


def to_documents(response: QueryResponse) -> list[Document]:
    """The hits as LangChain documents: text, provenance and every stage's score."""
    return [
        Document(page_content=hit.text, metadata=hit_metadata(hit, response), id=hit.chunk_id)
        for hit in response.results
    ]


class SieveRetriever(BaseRetriever):
    """Ranked, reranked passages from one Sieve collection (or several, as a list).

    Pass ``api_url``/``api_key`` (the retriever opens its own clients), or ready ``client`` /
    ``async_client`` instances; without them, ``SIEVE_URL`` / ``SIEVE_API_KEY`` from the
    environment. ``top_n``, ``min_score`` and ``filter`` go to every query. An unknown
    keyword raises ``TypeError``.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    collection: str | Sequence[str]
    api_url: str | None = None
    api_key: str | None = None
    top_n: int | None = None
    top_k: int | None = None
    min_score: float | None = None
    filter: QueryFilter | Mapping[str, Any] | None = None
    mode: QueryMode | str = QueryMode.HYBRID
    rerank: bool = True
    rerank_model: str | None = None
    final: str | None = None
    client: SieveClient | None = None
    async_client: AsyncSieveClient | None = None
    _own_sync: SieveClient | None = PrivateAttr(default=None)
    _own_async: AsyncSieveClient | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _known_keywords_only(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            refuse_unknown_keywords(cls.__name__, data.keys(), cls.model_fields.keys())
        return data

    def _knobs(self) -> QueryKnobs:
        return QueryKnobs(
            collection=self.collection,
            top_n=self.top_n,
            top_k=self.top_k,
            min_score=self.min_score,
            filter=self.filter,
            mode=self.mode,
            rerank=self.rerank,
            rerank_model=self.rerank_model,
            final=self.final,
        )

    def _sync(self) -> SieveClient:
        if self.client is not None:
            return self.client
        if self._own_sync is None:
            self._own_sync = SieveClient(self.api_url, self.api_key)
        return self._own_sync

    def _async(self) -> AsyncSieveClient:
        if self.async_client is not None:
            return self.async_client
        if self._own_async is None:
            self._own_async = AsyncSieveClient(self.api_url, self.api_key)
        return self._own_async

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        del run_manager  # Sieve reports its stages in the answer, not as callbacks
        knobs = self._knobs()
        return to_documents(self._sync().query(knobs.collection, query, **knobs.kwargs()))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        del run_manager
        knobs = self._knobs()
        out = await self._async().query(knobs.collection, query, **knobs.kwargs())
        return to_documents(out)

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
