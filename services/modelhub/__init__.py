"""Sieve's local model hub: the IONOS-dialect ``/v1/models``, ``/v1/embeddings`` and ``/v1/rerank``
served from bundled ONNX models, so Sieve runs offline and its tests have a real HTTP peer.
"""

from services.modelhub.app import create_app
from services.modelhub.server import serve

__all__ = ["create_app", "serve"]
