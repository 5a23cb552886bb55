"""Page images: decoding uploaded images and rendering PDF pages (the one home of pypdfium2).

Scanned PDF pages are *rendered* with pdfium rather than their embedded images extracted:
a scan is often stored as strips or tiles, with masks, a page rotation or a crop box, and
in JBIG2/CCITT encodings Pillow cannot decode. Rendering gives what a reader sees, at a
resolution we choose, so the pixel budget is exact and the same call serves OCR at ingest,
the image route and the reranker.
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

from core.errors import InvalidInput, NotFound

__all__ = [
    "IMAGE_FORMATS",
    "OCR_MAX_SIDE_PX",
    "PDF_RENDER_DPI",
    "PdfPages",
    "RenderedImage",
    "fit_pixels",
    "frame_rgb",
    "image_frames",
    "open_image",
    "page_image",
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
# Serving an image that ingestion accepted: far above any ingest limit, still bounded.
_DECODE_PIXELS = 500_000_000


@dataclass(frozen=True, slots=True)
class RenderedImage:
    """An encoded image as served: bytes, MIME type and size in pixels."""

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


def image_frames(img: Image.Image) -> int:
    """How many pages an image holds: every TIFF frame; GIF and WebP count their first only."""
    if img.format == "TIFF":
        return int(getattr(img, "n_frames", 1))
    return 1


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


def page_image(data: bytes, page: int, *, max_pixels: int | None = None) -> RenderedImage:
    """The image of page ``page`` (1-based) of an image document or a PDF.

    With no ``max_pixels`` it is the page as OCR saw it: a single-page PNG, JPEG, GIF or
    WebP as uploaded, a TIFF frame as PNG, a PDF page rendered as PNG at the OCR size.
    With ``max_pixels`` (the reranker's budget) the page is scaled down to fit it.

    Raises:
        NotFound: there is no such page, or the bytes are neither an image nor a PDF.
        InvalidInput: an image too large to decode.
    """
    if page < 1:
        raise NotFound(f"no page {page}", code="page_not_found")
    if b"%PDF-" in data[:1024]:
        with PdfPages(data) as pdf:
            if page > len(pdf):
                raise NotFound(
                    f"the PDF has {len(pdf)} pages, no page {page}", code="page_not_found"
                )
            return _png(pdf.render(page - 1, max_pixels=max_pixels or _DECODE_PIXELS))
    try:
        img = open_image(data, _DECODE_PIXELS)
    except InvalidInput as exc:
        if exc.code == "corrupt_file":
            raise NotFound("the document has no image", code="no_image") from exc
        raise
    with img:
        fmt = img.format or ""
        if fmt not in IMAGE_FORMATS:
            raise NotFound("the document has no image", code="no_image")
        frames = image_frames(img)
        if page > frames:
            raise NotFound(f"the image has {frames} page(s), no page {page}", code="page_not_found")
        width, height = img.size
        scale = fit_pixels(width, height, max_pixels) if max_pixels else 1.0
        if frames == 1 and scale == 1.0 and fmt != "TIFF":
            return RenderedImage(data, IMAGE_FORMATS[fmt], width, height)
        frame = frame_rgb(img, page - 1, _DECODE_PIXELS)
        if scale < 1.0:
            size = (max(1, int(frame.width * scale)), max(1, int(frame.height * scale)))
            frame = frame.resize(size, Image.Resampling.LANCZOS)
        return _png(frame)


def _png(image: Image.Image) -> RenderedImage:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return RenderedImage(out.getvalue(), "image/png", image.width, image.height)
