"""The image token formula (core/image_tokens.py) and client-side resizing (reranker/images.py)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import pytest
from PIL import Image

from core.errors import InvalidInput
from core.image_tokens import IMAGE_MAX_PIXELS, image_tokens, scaled_size
from reranker.images import PreparedImage, prepare_image


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (512, 512, 256),  # model-api.md example
        (1296, 1936, 1247),  # model-api.md example: 928 x 1376 after scaling
        (1024, 768, 768),  # under the limit: no scaling
        (1280, 1024, 1280),  # exactly 1,310,720 px: not scaled
        (31, 31, 1),  # a sliver still costs one block
    ],
)
def test_image_tokens_follow_the_guide(width: int, height: int, tokens: int) -> None:
    assert image_tokens(width, height) == tokens


def test_scaled_size_of_the_guide_example() -> None:
    assert scaled_size(1296, 1936) == (928, 1376)


@pytest.mark.parametrize(
    ("width", "height"),
    [(1296, 1936), (4000, 3000), (1000, 700), (33, 65), (10, 300_000), (300_000, 10), (7, 7)],
)
def test_scaled_size_is_within_limit_and_multiple_of_32(width: int, height: int) -> None:
    w, h = scaled_size(width, height)
    assert w % 32 == 0
    assert h % 32 == 0
    assert w >= 32
    assert h >= 32
    assert w * h <= IMAGE_MAX_PIXELS


def test_scaled_size_rejects_empty_images() -> None:
    with pytest.raises(ValueError, match="positive"):
        scaled_size(0, 10)


def _decode(prepared: PreparedImage) -> Image.Image:
    header, payload = prepared.data_uri.split(",", 1)
    assert header.startswith("data:image/")
    assert header.endswith(";base64")
    return Image.open(io.BytesIO(base64.b64decode(payload)))


@pytest.mark.parametrize(
    ("width", "height", "fmt"),
    [(1296, 1936, "PNG"), (2000, 1500, "JPEG"), (1000, 700, "PNG"), (40, 40, "GIF")],
)
def test_prepare_image_resizes_to_the_formula(
    make_image: Callable[..., bytes], width: int, height: int, fmt: str
) -> None:
    prepared = prepare_image(make_image(width, height, fmt))
    sent = _decode(prepared)
    assert sent.size == scaled_size(width, height) == (prepared.width, prepared.height)
    assert sent.width % 32 == 0
    assert sent.height % 32 == 0
    assert sent.width * sent.height <= IMAGE_MAX_PIXELS
    assert prepared.tokens == image_tokens(width, height)


def test_prepare_image_keeps_photos_as_jpeg(make_image: Callable[..., bytes]) -> None:
    assert prepare_image(make_image(2000, 1500, "JPEG")).data_uri.startswith("data:image/jpeg;")


def test_prepare_image_sends_an_image_already_at_size_unchanged(
    make_image: Callable[..., bytes],
) -> None:
    raw = make_image(512, 512, "PNG")
    prepared = prepare_image(raw)
    assert prepared.data_uri == "data:image/png;base64," + base64.b64encode(raw).decode()
    assert prepared.tokens == 256


def test_prepare_image_converts_palette_images(make_image: Callable[..., bytes]) -> None:
    prepared = prepare_image(make_image(100, 70, "PNG", mode="P"))
    assert _decode(prepared).size == (96, 64)


def test_prepare_image_refuses_what_is_not_an_image() -> None:
    with pytest.raises(InvalidInput, match="not a usable image"):
        prepare_image(b"%PDF-1.7 definitely not pixels")
