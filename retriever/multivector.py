"""Token vectors (late interaction): packing for the wire, and MaxSim as the engines score it."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from core.types import MultiVector

__all__ = ["LATE_VECTOR", "maxsim", "pack", "pack_rows", "unpack"]

LATE_VECTOR = "late"

FloatMatrix = npt.NDArray[np.float32]


def pack(matrix: npt.ArrayLike) -> MultiVector:
    """A ``MultiVector`` from a (tokens x dim) matrix (stored as float16).

    Raises:
        ValueError: not a non-empty 2-d matrix.
    """
    rows = np.asarray(matrix, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] == 0:
        raise ValueError(f"token vectors must be a non-empty 2-d matrix, got shape {rows.shape}")
    data = base64.b64encode(rows.astype("<f2").tobytes()).decode("ascii")
    return MultiVector.model_construct(dim=int(rows.shape[1]), count=int(rows.shape[0]), data=data)


def pack_rows(rows: Sequence[Sequence[float]]) -> MultiVector:
    """``pack`` for the list of lists an engine returns."""
    return pack(np.asarray(rows, dtype=np.float32))


def unpack(vector: MultiVector) -> FloatMatrix:
    """The (count x dim) float32 matrix of a ``MultiVector``."""
    raw = np.frombuffer(base64.b64decode(vector.data), dtype="<f2")
    return raw.astype(np.float32).reshape(vector.count, vector.dim)


def maxsim(query: FloatMatrix, document: FloatMatrix) -> float:
    """Sum over query tokens of the best dot product with any document token (ColBERT).

    Not normalised by the query length: the order is what matters, and that is what the
    engines' ``MaxSim`` comparator computes.
    """
    return float((query @ document.T).max(axis=1).sum())
