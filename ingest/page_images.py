"""Page images: decoding uploaded images and rendering PDF pages (the one home of pypdfium2).

Scanned PDF pages are *rendered* with pdfium rather than their embedded images extracted:
a scan is often stored as strips or tiles, with masks, a page rotation or a crop box, and
in JBIG2/CCITT encodings Pillow cannot decode. Rendering gives what a reader sees, at a
resolution we choose, so the pixel budget is exact.

All of it runs at ingest, in the worker, under the ingest limits and the parse clock: the
page OCR reads is encoded once (``encode_page``) and stored (``ingest.page_store``); the
image route and the reranker only read those bytes. Nothing here runs on a request.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from math import sqrt

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import InvalidInput
from ingest.limits import IngestLimits
from ingest.parse_clock import check_parse_clock

__all__ = [
    "IMAGE_FORMATS",
    "OCR_MAX_SIDE_PX",
    "PDF_RENDER_DPI",
    "PdfPages",
    "RenderedImage",
    "encode_page",
    "fit_pixels",
    "frame_rgb",
    "image_frames",
    "open_image",
    "upload_as_page",
]

# Pillow format name -> MIME type of the image formats ingested as documents.
IMAGE_FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
# Scans are rendered at 200 dpi, their long side capped at the 2,000 px the OCR reduces
# larger images to anyway (rapidocr's max_side_len): more pixels would only cost time.
PDF_RENDER_DPI = 200
OCR_MAX_SIDE_PX = 2000
# pdfium is not thread-safe; one render or inspection at a time per process.
_PDFIUM = threading.Lock()
# Uploads stored as their own page image: formats every browser and reranker takes.
_SERVED_AS_IS = {f: IMAGE_FORMATS[f] for f in ("PNG", "JPEG", "GIF", "WEBP")}
_EXIF_ORIENTATION = 0x0112
_JPEG_QUALITY = 90


@dataclass(frozen=True, slots=True)
class RenderedImage:
    """An encoded page image as stored: bytes, MIME type and size in pixels."""

    data: bytes
    mime: str
    width: int
    height: int


def fit_pixels(width: float, height: float, max_pixels: int, max_side: int | None = None) -> float:
    """The scale (<= 1) that brings ``width`` x ``height`` within the pixel and side caps."""
    scale = 1.0
    if width * height > max_pixels:
        scale = sqrt(max_pixels / (width * height))
    if max_side is not None and max(width, height) * scale > max_side:
        scale = max_side / max(width, height)
    return scale


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open an image without decoding it, refusing more than ``max_pixels`` per frame.

    Raises:
        InvalidInput: not an image Pillow can read (code ``corrupt_file``).
        InvalidInput (code ``too_large``): a frame over the pixel limit.
    """
    try:
        with warnings.catch_warnings():
            # Our own, stricter limit is checked below, before anything is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise InvalidInput(f"image over {max_pixels} pixels", code="too_large") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        # Pillow's message names a BytesIO object: say what matters instead.
        raise InvalidInput(f"unreadable image ({type(exc).__name__})", code="corrupt_file") from exc
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise InvalidInput(
            f"image of {width}x{height} px is over the limit of {max_pixels} pixels",
            code="too_large",
        )
    return img


def frame_rgb(img: Image.Image, index: int, max_pixels: int) -> Image.Image:
    """Frame ``index`` decoded as RGB, upright per its EXIF orientation.

    Raises:
        InvalidInput: the frame is over the pixel limit (code ``too_large``).
    """
    img.seek(index)
    width, height = img.size
    if width * height > max_pixels:
        raise InvalidInput(
            f"page {index + 1} of {width}x{height} px is over the limit of {max_pixels} pixels",
            code="too_large",
        )
    frame = ImageOps.exif_transpose(img) if img.format == "JPEG" else img
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        # Transparent text on nothing would come out black on black: flatten onto white.
        rgba = frame.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return frame.convert("RGB")


class PdfPages:
    """An open PDF for page inspection and rendering (use as a context manager)."""

    def __init__(self, data: bytes) -> None:
        with _PDFIUM:
            try:
                self._pdf = pdfium.PdfDocument(data)
            except pdfium.PdfiumError as exc:
                raise InvalidInput(f"unreadable PDF: {exc}", code="corrupt_file") from exc

    def __enter__(self) -> PdfPages:
        return self

    def __exit__(self, *_: object) -> None:
        with _PDFIUM:
            self._pdf.close()

    def __len__(self) -> int:
        return len(self._pdf)

    def image_coverage(self, index: int) -> float:
        """The share of page ``index`` (0-based) covered by image objects, capped at 1."""
        with _PDFIUM:
            page = self._pdf[index]
            try:
                width, height = page.get_size()
                area = max(width * height, 1.0)
                covered = 0.0
                for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=3):
                    left, bottom, right, top = obj.get_bounds()
                    covered += max(0.0, right - left) * max(0.0, top - bottom)
            finally:
                page.close()
        return float(min(1.0, covered / area))

    def render(
        self, index: int, *, max_pixels: int, max_side: int | None = OCR_MAX_SIDE_PX
    ) -> Image.Image:
        """Render page ``index`` (0-based) as RGB at 200 dpi, within the pixel and side caps."""
        with _PDFIUM:
            page = self._pdf[index]
            try:
                width, height = page.get_size()
                base = PDF_RENDER_DPI / 72
                scale = base * fit_pixels(width * base, height * base, max_pixels, max_side)
                bitmap = page.render(scale=scale, rev_byteorder=True)
                try:
                    image: Image.Image = bitmap.to_pil().convert("RGB")
                finally:
                    bitmap.close()
            finally:
                page.close()
        return image


def image_frames(img: Image.Image, limit: int) -> int:
    """How many pages an image holds, counted up to ``limit + 1`` under the parse clock.

    Every TIFF frame is a page; GIF and WebP count their first only. Pillow's own count
    walks every frame's directory (and checks each against all before it): a 10 MB TIFF
    of 100,000 tiny pages took 52 s of CPU just to count. Past ``limit`` the document is
    refused anyway, so counting stops there.

    Raises:
        ParseError: ``too_expensive``, when counting runs out of the parse budget.
    """
    if img.format != "TIFF":
        return 1
    count = 1
    try:
        while count <= limit:
            check_parse_clock()
            img.seek(count)
            count += 1
    except EOFError:
        pass
    finally:
        img.seek(0)
    return count


def upload_as_page(data: bytes, img: Image.Image, limits: IngestLimits) -> RenderedImage | None:
    """The upload itself as its stored page image, when it can be served as it is.

    That is a single still image in a format browsers show (PNG, JPEG, GIF, WebP), with
    no EXIF rotation (OCR read it upright: the stored page must look the same) and
    within the stored-page caps. Anything else is re-encoded by ``encode_page``.
    """
    mime = _SERVED_AS_IS.get(img.format or "")
    width, height = img.size
    if (
        mime is None
        or len(data) > limits.max_page_image_bytes
        or width * height > limits.max_page_image_pixels
        or getattr(img, "is_animated", False)
        or (img.format == "JPEG" and img.getexif().get(_EXIF_ORIENTATION, 1) != 1)
    ):
        return None
    return RenderedImage(data, mime, width, height)


def encode_page(image: Image.Image, limits: IngestLimits, *, photo: bool = False) -> RenderedImage:
    """A page (RGB) encoded for storage within the pixel and byte caps of stored pages.

    PNG (JPEG for photos), scaled down to ``max_page_image_pixels``; a page whose PNG is
    over ``max_page_image_bytes`` goes as JPEG, and one still over it is halved until it
    fits (a 1x1 JPEG always does). Each encoding is one bounded unit of the parse clock.
    """
    scale = fit_pixels(image.width, image.height, limits.max_page_image_pixels)
    formats = ("JPEG",) if photo else ("PNG", "JPEG")
    while True:
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        frame = image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)
        for fmt in formats:
            check_parse_clock()
            out = io.BytesIO()
            if fmt == "JPEG":
                frame.save(out, format="JPEG", quality=_JPEG_QUALITY)
            else:
                frame.save(out, format="PNG")
            if out.tell() <= limits.max_page_image_bytes:
                return RenderedImage(out.getvalue(), IMAGE_FORMATS[fmt], frame.width, frame.height)
        scale /= 2
