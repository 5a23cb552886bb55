"""Client-side image preparation: resize to the token formula's size, encode as a data: URI."""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from core.errors import InvalidInput
from core.image_tokens import IMAGE_BLOCK_PX, scaled_size

__all__ = ["PreparedImage", "prepare_image"]

# Formats a hub decodes everywhere; anything else is re-encoded as PNG.
_PASSTHROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# Refuse pixel bombs before decoding: far above anything the formula keeps (1.3 Mpx).
_MAX_SOURCE_PIXELS = 100_000_000


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """An image as sent: its ``data:`` URI, the size the model sees and its token cost."""

    data_uri: str
    width: int
    height: int

    @property
    def tokens(self) -> int:
        """Tokens this image costs: one per 32x32 block (the size is already scaled)."""
        return (self.width // IMAGE_BLOCK_PX) * (self.height // IMAGE_BLOCK_PX)


def _data_uri(mime: str, raw: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def prepare_image(data: bytes) -> PreparedImage:
    """Resize an encoded image to the formula's size (<= 1,310,720 px, sides x32) as a data: URI.

    Sending the size the model would compute anyway keeps requests small and makes the
    token budget exact. An image already at that size in a common format is sent as is.

    Raises:
        InvalidInput: when the bytes are not a decodable image or are absurdly large.
    """
    try:
        with warnings.catch_warnings():
            # Pillow warns (and our tests turn warnings into errors) before its own bomb
            # check; we do our own, stricter check below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > _MAX_SOURCE_PIXELS:
                    raise InvalidInput(f"image of {width}x{height} px is too large to rerank")
                target = scaled_size(width, height)
                fmt = img.format or ""
                if target == (width, height) and fmt in _PASSTHROUGH:
                    return PreparedImage(_data_uri(_PASSTHROUGH[fmt], data), width, height)
                img.load()
                converted = img if img.mode in ("RGB", "RGBA", "L", "LA") else img.convert("RGBA")
                resized = converted.resize(target, Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise InvalidInput(f"not a usable image: {exc}") from exc
    out = io.BytesIO()
    if fmt == "JPEG" and resized.mode in ("RGB", "L"):
        # Photos stay JPEG: as PNG a 1.3 Mpx photo would be several megabytes on the wire.
        resized.save(out, format="JPEG", quality=90)
        mime = "image/jpeg"
    else:
        resized.save(out, format="PNG")
        mime = "image/png"
    return PreparedImage(_data_uri(mime, out.getvalue()), target[0], target[1])
