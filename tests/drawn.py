"""Images and scanned PDFs the tests draw themselves (Pillow's bundled font), never fixtures
copied from elsewhere: what each one says is known exactly, so OCR can be scored."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

__all__ = [
    "DEV_PAGES",
    "HELD_OUT_PAGES",
    "char_error_rate",
    "draw_page",
    "encode",
    "mixed_pdf",
    "scanned_pdf",
    "tiff_pages",
]

# Fixed text sets: DEV_PAGES chose the OCR defaults (bench/ocr.py --dev), HELD_OUT_PAGES
# report and bound the error rate. Words a dictionary would not guess, digits, punctuation.
DEV_PAGES: tuple[tuple[str, ...], ...] = (
    ("The quarterly invoice totals 4,210 euros.", "Shipment arrives at Rotterdam on Friday."),
    ("Contact: Dr. Helga Marquardt, extension 317.", "Room B-204, second floor, east wing."),
    ("Penguins huddle together to survive winter.", "Colonies may exceed 20,000 breeding pairs."),
    ("Turn the valve clockwise until it stops.", "Then wait ninety seconds before opening."),
)
HELD_OUT_PAGES: tuple[tuple[str, ...], ...] = (
    ("Glacier retreat accelerated after 1990.", "Meltwater lakes formed along the margin."),
    ("Order number 88-5521 ships by express courier.", "Signature required upon delivery."),
    ("The lighthouse keeper logged every storm.", "His notebooks span forty-one years."),
    ("Invoices are due within thirty days.", "Late payments accrue 2% monthly interest."),
    ("Quantum dots emit light of a sharp colour.", "Their size tunes the emission peak."),
    ("Bring a torch, a map and spare batteries.", "The cave trail closes at dusk."),
)


def draw_page(
    lines: Sequence[str], *, size: int = 28, width: int = 1000, line_gap: int = 60
) -> Image.Image:
    """Black text lines on white, top to bottom, in Pillow's bundled scalable font."""
    font = ImageFont.load_default(size=size)
    img = Image.new("RGB", (width, 80 + line_gap * len(lines)), "white")
    draw = ImageDraw.Draw(img)
    for n, line in enumerate(lines):
        draw.text((40, 40 + n * line_gap), line, fill="black", font=font)
    return img


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    """``img`` encoded as ``fmt`` (a fresh copy: Pillow keeps encoder state on the image)."""
    out = io.BytesIO()
    img.copy().save(out, format=fmt, **params)
    return out.getvalue()


def scanned_pdf(pages: Sequence[Image.Image], *, dpi: float = 100.0) -> bytes:
    """A PDF whose pages are only the given images (no text layer), like a scanner's."""
    first, *rest = [p.copy() for p in pages]
    out = io.BytesIO()
    first.save(out, format="PDF", save_all=True, append_images=rest, resolution=dpi)
    return out.getvalue()


def mixed_pdf(parts: Sequence[bytes]) -> bytes:
    """The pages of several PDFs, in order, as one PDF (text pages next to scanned ones)."""
    writer = PdfWriter()
    for part in parts:
        for page in PdfReader(io.BytesIO(part)).pages:
            writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def tiff_pages(pages: Sequence[Image.Image | tuple[int, int]]) -> bytes:
    """A multi-page TIFF written field by field, each page one deflated strip.

    An image is stored as 8-bit grey; a ``(width, height)`` is an all-white bilevel page
    of that size, whose strip deflates to almost nothing: a 12000x12000 px page is 18 KB
    on disk and 144 MB decoded. Identical pages share one strip, so 100,000 1x1 pages
    are 10 MB of page directories (what Pillow would take half a minute to write).
    """
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    strips: dict[bytes, tuple[int, int]] = {}
    layouts: list[tuple[int, int, int, int, int, int]] = []
    for page in pages:
        if isinstance(page, Image.Image):
            grey = page.convert("L")
            width, height, bits, photometric = grey.width, grey.height, 8, 1
            raw = grey.tobytes()
        else:
            (width, height), bits, photometric = page, 1, 0
            raw = bytes((width + 7) // 8 * height)
        key = hashlib.sha256(f"{width}x{height}x{bits}".encode() + raw).digest()
        if key not in strips:
            data = zlib.compress(raw, 9)
            strips[key] = (len(out), len(data))
            out += data
        offset, count = strips[key]
        layouts.append((width, height, bits, photometric, offset, count))
    if len(out) % 2:
        out += b"\x00"
    struct.pack_into("<I", out, 4, len(out))
    entries = 9
    for n, (width, height, bits, photometric, offset, count) in enumerate(layouts):
        here = len(out)
        following = here + 2 + entries * 12 + 4 if n + 1 < len(layouts) else 0
        out += struct.pack("<H", entries)
        for tag, typ, value in (
            (256, 4, width),
            (257, 4, height),
            (258, 3, bits),
            (259, 3, 8),  # Adobe deflate
            (262, 3, photometric),  # 0: white is zero (bilevel), 1: black is zero (grey)
            (273, 4, offset),
            (277, 3, 1),
            (278, 4, height),
            (279, 4, count),
        ):
            out += struct.pack("<HHII", tag, typ, 1, value)
        out += struct.pack("<I", following)
    return bytes(out)


def char_error_rate(expected: str, actual: str) -> float:
    """Levenshtein distance over the expected length, whitespace runs folded to one space."""
    ref, hyp = " ".join(expected.split()), " ".join(actual.split())
    previous = list(range(len(hyp) + 1))
    for i, rc in enumerate(ref, start=1):
        current = [i]
        for j, hc in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (rc != hc)))
        previous = current
    return previous[-1] / max(len(ref), 1)
