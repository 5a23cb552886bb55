"""Constants and small builders shared by the model hub tests."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image

from core.settings import ModelHubSettings

API_KEY = "test-key-0123456789abcdef"
WIDE_RERANK_ID = "sieve/minilm-qwen-budget"
BROKEN_ID = "sieve/broken-reranker"


@dataclass(frozen=True)
class RunningHub:
    """A hub served by uvicorn on a loopback port."""

    url: str
    settings: ModelHubSettings


def png_bytes(width: int, height: int) -> bytes:
    """A real PNG of the given size."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def png_data_uri(width: int, height: int) -> str:
    """A real PNG of the given size, as a base64 data: URI."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(width, height)).decode()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming ``width`` x ``height`` (a decompression-bomb header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    )
