"""The two real store adapters, for tests that must hold in both run modes.

``edge``: Qdrant Edge in a directory (the embedded mode). ``server``: the Qdrant server
adapter over qdrant-client's local mode (the compose and k8s modes, minus the network).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from qdrant_client import QdrantClient

from retriever.edge_store import EdgeChunkStore
from retriever.qdrant_store import QdrantChunkStore
from retriever.store import ChunkStore

__all__ = ["STORE_KINDS", "chunk_store"]

STORE_KINDS = ("edge", "server")


@contextmanager
def chunk_store(kind: str, root: Path) -> Iterator[tuple[ChunkStore, Callable[[], None]]]:
    """Open the ``kind`` store under ``root``; yields it and a function that empties it."""
    if kind == "edge":
        edge = EdgeChunkStore(root / "qdrant")

        def empty_edge() -> None:
            for entry in list(edge.root.iterdir()):
                if (entry / "collection.json").is_file():
                    edge.drop_collection(entry.name)

        try:
            yield edge, empty_edge
        finally:
            edge.close()
        return
    client = QdrantClient(path=str(root / "qdrant-local"))
    server = QdrantChunkStore(client)

    def empty_server() -> None:
        for collection in client.get_collections().collections:
            server.drop_collection(collection.name)

    try:
        yield server, empty_server
    finally:
        server.close()
