"""The image token formula of the IONOS reranking guide (model-api.md), shared by client and hub.

An image costs 1 token per 32x32 pixel block. An image over 1,310,720 pixels is first
scaled down proportionally (``scale = sqrt(1310720 / (w*h))``), then each side is rounded
down to a multiple of 32. Pure stdlib so that both the client and the local hub agree.
"""

from __future__ import annotations

from math import isqrt

__all__ = ["IMAGE_BLOCK_PX", "IMAGE_MAX_PIXELS", "image_tokens", "scaled_size"]

IMAGE_BLOCK_PX = 32
IMAGE_MAX_PIXELS = 1_310_720


def _floor_block(side: int) -> int:
    # Never round a side to zero: even a sliver of an image costs one block.
    return max(IMAGE_BLOCK_PX, side - side % IMAGE_BLOCK_PX)


def scaled_size(width: int, height: int) -> tuple[int, int]:
    """Return the (width, height) the model sees: at most 1,310,720 px, sides multiples of 32.

    Raises:
        ValueError: when a side is not a positive integer.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image sides must be positive, got {width}x{height}")
    area = width * height
    if area > IMAGE_MAX_PIXELS:
        # floor(side * sqrt(M / area)) == isqrt(side**2 * M // area), exactly: integer maths
        # keeps 1296x1936 at 928x1376 where float rounding could land one block lower.
        width = isqrt(width * width * IMAGE_MAX_PIXELS // area)
        height = isqrt(height * height * IMAGE_MAX_PIXELS // area)
    w, h = _floor_block(width), _floor_block(height)
    # The 32-px floor can push an extremely elongated image back over the limit: shorten the
    # long side to fit again.
    if w * h > IMAGE_MAX_PIXELS:
        if w >= h:
            w = _floor_block(IMAGE_MAX_PIXELS // h)
        else:
            h = _floor_block(IMAGE_MAX_PIXELS // w)
    return w, h


def image_tokens(width: int, height: int) -> int:
    """Return the tokens an image of ``width`` x ``height`` costs (1 per 32x32 block after scaling).

    Raises:
        ValueError: when a side is not a positive integer.
    """
    w, h = scaled_size(width, height)
    return (w // IMAGE_BLOCK_PX) * (h // IMAGE_BLOCK_PX)
