"""Fixtures for the reranker tests: the anyio backend and small image factories."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio, the loop the API runs on."""
    return "asyncio"


def encode_image(width: int, height: int, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    """An encoded image of the given size (a gradient, so it is not trivially compressible)."""
    img = Image.linear_gradient("L").resize((width, height)).convert(mode)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """Factory for encoded test images."""
    return encode_image
