"""OCR benchmark and accuracy: images/s and scanned pages/s next to the text-PDF parse rate.

Everything is drawn in the run (tests/drawn.py: Pillow's bundled font) so the expected text
is exact. Rows, all through ``parse_document`` as the worker calls it:

- text PDF: the same sentences as a PDF text layer (the same-run baseline, pypdf only);
- image: a 1000-px-wide PNG of two lines (28-px text) read by OCR;
- scanned page: an A4 page at 150 dpi (1240x1754, 24 lines of 24-px text) inside an
  image-only PDF, rendered by pdfium and read by OCR.

Accuracy: character error rate (CER, whitespace folded) on the dev and held-out text sets,
at 16/20/28-px text, 60 px apart (as in tests/ingest/test_ocr.py). The OCR defaults
were chosen on the dev set.

    .venv/bin/python -m bench.ocr --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw, ImageFont

from ingest.documents import ExtractedDocument, ParseFailure
from ingest.limits import IngestLimits
from ingest.ocr import OcrConfig, RapidOcrEngine
from ingest.parsers import parse_document
from tests.drawn import (
    DEV_PAGES,
    HELD_OUT_PAGES,
    char_error_rate,
    draw_page,
    encode,
    scanned_pdf,
)
from tests.ingest.samples import make_pdf


def _a4_page(lines: Sequence[str]) -> Image.Image:
    font = ImageFont.load_default(size=24)
    img = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(img)
    for n, line in enumerate(lines):
        draw.text((120, 140 + n * 60), line, fill="black", font=font)
    return img


def _rate(fn: Callable[[], object], units: int, repeat: int) -> float:
    """Units per second, best of ``repeat`` runs (least disturbed by the shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return units / best


def _text(outcome: ExtractedDocument | ParseFailure) -> str:
    return outcome.text if isinstance(outcome, ExtractedDocument) else ""


def main() -> None:
    """Print the throughput and accuracy tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="ONNX intra-op threads")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    limits = IngestLimits()
    ocr = RapidOcrEngine(OcrConfig(intra_op_threads=args.threads))
    ocr.load()

    sentences = [line for page in HELD_OUT_PAGES for line in page]
    a4_lines = (sentences * 3)[:24]
    text_pdf = make_pdf([list(page) for page in HELD_OUT_PAGES] * 10)
    text_pages = len(HELD_OUT_PAGES) * 10
    pngs = [encode(draw_page(page), "PNG") for page in HELD_OUT_PAGES]
    scans = scanned_pdf([_a4_page(a4_lines)] * 2, dpi=150)

    def parse_all(blobs: Sequence[bytes], name: str) -> list[str]:
        return [_text(parse_document(b, name, limits, ocr=ocr)) for b in blobs]

    base = _rate(lambda: parse_all([text_pdf], "t.pdf"), text_pages, args.repeat)
    images = _rate(lambda: parse_all(pngs, "i.png"), len(pngs), args.repeat)
    scanned = _rate(lambda: parse_all([scans], "s.pdf"), 2, args.repeat)
    scan_cer = char_error_rate("\n".join(a4_lines * 2), parse_all([scans], "s.pdf")[0])
    print(f"OCR throughput ({args.threads} ONNX thread(s), best of {args.repeat})")
    print(f"{'input':<34}{'per s':>10}{'vs text PDF':>14}")
    print(f"{'text PDF pages (baseline)':<34}{base:>10.1f}{1.0:>14.4f}")
    print(f"{'images (1000x200 PNG)':<34}{images:>10.2f}{images / base:>14.4f}")
    print(f"{'scanned pages (A4, 150 dpi)':<34}{scanned:>10.2f}{scanned / base:>14.4f}")
    print(f"scanned A4 page CER: {scan_cer:.4f}")
    print()
    print(f"{'CER (mean / max)':<20}{'16 px':>16}{'20 px':>16}{'28 px':>16}")
    for name, pages in (("dev", DEV_PAGES), ("held-out", HELD_OUT_PAGES)):
        cells = []
        for size in (16, 20, 28):
            rates = []
            for page in pages:
                png = encode(draw_page(page, size=size), "PNG")
                rates.append(char_error_rate("\n".join(page), parse_all([png], "c.png")[0]))
            cells.append(f"{statistics.mean(rates):.4f} / {max(rates):.3f}")
        print(f"{name:<20}" + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
