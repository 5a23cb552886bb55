"""Real files built in memory for the ingest tests: PDFs, Word documents and archives."""

from __future__ import annotations

import io
import tarfile
import zipfile
import zlib
from collections.abc import Sequence

import docx

__all__ = ["make_docx", "make_pdf", "make_tar", "make_zip", "shared_stream_pdf"]


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_pdf(pages: Sequence[Sequence[str] | None], *, title: str | None = None) -> bytes:
    """A hand-written PDF: one page per entry, text lines drawn with Helvetica (None: no text)."""
    count = len(pages)
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: (
            "<< /Type /Pages /Kids ["
            + " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
            + f"] /Count {count} >>"
        ).encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for i, lines in enumerate(pages):
        if lines:
            shown = " Tj T* ".join(_pdf_string(line) for line in lines)
            stream = f"BT /F1 11 Tf 14 TL 72 720 Td {shown} Tj ET".encode("latin-1")
        else:
            # A drawing but no text operators: what a scanned page looks like to a text extractor.
            stream = b"0.5 g 72 72 200 200 re f"
        objects[4 + 2 * i] = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
        ).encode()
        objects[5 + 2 * i] = (
            f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream"
        )
    info_ref = b""
    if title is not None:
        info_id = 4 + 2 * count
        objects[info_id] = f"<< /Title {_pdf_string(title)} >>".encode("latin-1")
        info_ref = f" /Info {info_id} 0 R".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref_at = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for number in range(1, size):
        out += f"{offsets[number]:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {size} /Root 1 0 R".encode() + info_ref + b" >>\n"
    out += f"startxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(out)


def make_docx() -> bytes:
    """A Word document with a title, headings, body paragraphs and a table between them."""
    document = docx.Document()
    document.add_heading("Annual Report", level=0)
    document.add_paragraph("Opening paragraph before any section.")
    document.add_heading("Results", level=1)
    document.add_paragraph("Revenue grew in every region.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Region"
    table.cell(0, 1).text = "Revenue"
    table.cell(1, 0).text = "North"
    table.cell(1, 1).text = "42"
    document.add_paragraph("After the table.")
    document.add_heading("Outlook", level=2)
    document.add_paragraph("Next year looks similar.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive holding ``members`` under their names exactly as given."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return out.getvalue()


def make_tar(entries: list[tarfile.TarInfo | tuple[str, bytes]], *, mode: str = "w:gz") -> bytes:
    """A tar archive (gzip by default): ``(name, data)`` files or prepared ``TarInfo`` entries."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tf:  # type: ignore[call-overload]
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tf.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def shared_stream_pdf(pages: int, ops: int) -> bytes:
    """A tiny PDF whose pages all draw one large (compressed) content stream."""
    stream = zlib.compress(b"BT /F1 1 Tf " + b"(a) Tj 0 0 Td " * ops + b"ET", 9)
    kids = " ".join(f"{5 + i} 0 R" for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
        + stream
        + b"\nendstream",
    ]
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
    )
    objects += [page] * pages
    return raw_pdf(objects)


def stroked_pdf(lines: int) -> bytes:
    """A one-page PDF of ``lines`` thick stroked diagonals: no text, no image, a few KB,
    and seconds of rasterising for whoever renders it."""
    stream = zlib.compress(b"20 w " + b"0 0 m 612 792 l S " * lines, 9)
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
            f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
            + stream
            + b"\nendstream",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>",
        ]
    )


def raw_pdf(objects: Sequence[bytes]) -> bytes:
    """A PDF of the given object bodies (numbered from 1, the first is the catalog)."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
