"""Image documents: decode ``data:`` URIs and count their tokens. Never fetches a URL."""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from PIL import Image, UnidentifiedImageError

from core.image_tokens import image_tokens

__all__ = ["ImageInfo", "decode_data_uri", "measure_image"]


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """An image's size and what it costs in tokens."""

    width: int
    height: int
    tokens: int


def decode_data_uri(uri: str) -> bytes:
    """Return the bytes of a ``data:`` URI (base64 or percent-encoded).

    Raises:
        ValueError: when ``uri`` is not a well-formed ``data:`` URI (remote URLs included).
    """
    if not uri[:5].lower() == "data:":
        raise ValueError("images must be data: URIs; the hub never fetches remote URLs")
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise ValueError("a data: URI needs a ',' before its payload")
    params = header.split(";")
    if params[0] and not params[0].lower().startswith("image/"):
        raise ValueError(f"data: URI media type {params[0][:40]!r} is not an image")
    if "base64" in (p.strip().lower() for p in params[1:]):
        try:
            return base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("the data: URI's base64 payload does not decode") from exc
    return unquote_to_bytes(payload)


def measure_image(uri: str) -> ImageInfo:
    """Decode a ``data:`` URI image's header and return its size and token cost.

    Raises:
        ValueError: when the URI or the image cannot be read.
    """
    raw = decode_data_uri(uri)
    if not raw:
        raise ValueError("the image is empty")
    try:
        with warnings.catch_warnings():
            # A decompression bomb is a refusal, not a warning: make Pillow raise.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as img:
                width, height = img.size
                img.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError("the data: URI does not hold a readable image of a sane size") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError("the image is corrupt or truncated") from exc
    return ImageInfo(width=width, height=height, tokens=image_tokens(width, height))
