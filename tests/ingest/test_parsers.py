"""Each format parses from a real file built in the test; bad files fail with a stable reason."""

from __future__ import annotations

import io
import random

import pytest
from pypdf import PdfReader, PdfWriter

from ingest import (
    DocumentKind,
    ExtractedDocument,
    FailureReason,
    FileType,
    IngestLimits,
    ParseFailure,
    ParseOutcome,
    detect_type,
    parse_document,
)
from tests.ingest.samples import make_docx, make_pdf, make_zip


def _ok(outcome: ParseOutcome) -> ExtractedDocument:
    assert isinstance(outcome, ExtractedDocument), outcome
    return outcome


def _failed(outcome: ParseOutcome, reason: FailureReason) -> ParseFailure:
    assert isinstance(outcome, ParseFailure), outcome
    assert outcome.reason is reason, outcome
    assert outcome.message
    return outcome


# ---------------------------------------------------------------- text


def test_utf8_text_keeps_content_and_normalises_newlines(limits: IngestLimits) -> None:
    doc = _ok(parse_document(b"first line\r\nsecond line\rthird\n", "notes.txt", limits))
    assert doc.text == "first line\nsecond line\nthird\n"
    assert doc.kind is DocumentKind.TXT
    assert doc.title == "notes"
    assert doc.size_bytes == 30
    assert len(doc.content_sha256) == 64


def test_latin1_text_is_decoded_not_mangled(limits: IngestLimits) -> None:
    original = (
        "Le café de la gare est fermé. Les élèves déjeunent à côté, près de la forêt.\n"
        "Où sont les châteaux? Ça dépend de l'été et de la météo en février.\n"
    ) * 3
    doc = _ok(parse_document(original.encode("latin-1"), "fr.txt", limits))
    assert doc.text == original


def test_utf16_with_bom_is_text_not_binary(limits: IngestLimits) -> None:
    doc = _ok(parse_document("héllo wörld\r\n".encode("utf-16"), "u16.txt", limits))
    assert doc.text == "héllo wörld\n"


def test_binary_junk_is_refused_not_turned_into_garbage(limits: IngestLimits) -> None:
    junk = random.Random(7).randbytes(4096)
    _failed(parse_document(junk, "junk.txt", limits), FailureReason.UNSUPPORTED_TYPE)
    # No NUL bytes at all, but still control characters everywhere.
    no_nul = bytes(b if b else 1 for b in junk)
    _failed(parse_document(no_nul, "junk2.txt", limits), FailureReason.UNSUPPORTED_TYPE)


def test_png_named_txt_is_identified_by_content(limits: IngestLimits) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    failure = _failed(parse_document(png, "photo.txt", limits), FailureReason.UNSUPPORTED_TYPE)
    assert "PNG" in failure.message


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  "])
def test_empty_or_blank_file_fails(limits: IngestLimits, data: bytes) -> None:
    _failed(parse_document(data, "empty.txt", limits), FailureReason.EMPTY_DOCUMENT)


def test_file_over_the_byte_limit_fails(limits: IngestLimits) -> None:
    small = IngestLimits(max_file_bytes=100)
    _failed(parse_document(b"x" * 101, "big.txt", small), FailureReason.TOO_LARGE)
    _ok(parse_document(b"x" * 100, "ok.txt", small))


# ---------------------------------------------------------------- markdown


def test_markdown_headings_become_sections_and_raw_text_is_kept(limits: IngestLimits) -> None:
    source = (
        "Intro line.\n\n# Guide\n\nSome *text*.\n\n```bash\n# not a heading\n```\n\n"
        "Setext Title\n------------\n\nBody.\n\n## Deep ##\nMore.\n"
    )
    doc = _ok(parse_document(source.encode(), "guide.md", limits))
    assert doc.text == source  # not rendered: the emphasis and fences stay
    assert doc.kind is DocumentKind.MD
    assert doc.title == "Guide"
    titles = [(s.title, s.level) for s in doc.sections]
    assert titles == [(None, 0), ("Guide", 1), ("Setext Title", 2), ("Deep", 2)]
    assert doc.sections[0].char_start == 0
    assert doc.sections[-1].char_end == len(source)
    for before, after in zip(doc.sections, doc.sections[1:], strict=False):
        assert before.char_end == after.char_start
    assert doc.text[doc.sections[1].char_start :].startswith("# Guide")
    assert doc.text[doc.sections[2].char_start :].startswith("Setext Title")


def test_markdown_front_matter_title_wins(limits: IngestLimits) -> None:
    source = b"---\ntitle: 'Front Title'\ntags: [a]\n---\n\n# Heading\n\nText.\n"
    assert _ok(parse_document(source, "x.md", limits)).title == "Front Title"


# ---------------------------------------------------------------- html


PAGE = b"""<!DOCTYPE html>
<html><head><title> The  Page </title><style>p { color: red }</style>
<script>var tracking = "SCRIPT-TEXT";</script></head>
<body>
<header><a href="/">SITE-HEADER</a></header>
<nav><ul><li>NAV-HOME</li><li>NAV-ABOUT</li></ul></nav>
<main>
  <header><h1>Main Heading</h1></header>
  <p>First <b>bold</b> paragraph
     spread over lines.</p>
  <script>alert("INLINE-SCRIPT")</script>
  <h2>Details</h2>
  <p>Second paragraph.</p>
  <table><tr><th>Name</th><th>Value</th></tr><tr><td>alpha</td><td>1</td></tr></table>
  <form><input name="q"><button>FORM-BUTTON</button></form>
  <aside>ASIDE-TEXT</aside>
</main>
<footer>FOOTER-TEXT</footer>
</body></html>"""


def test_html_keeps_main_content_and_drops_chrome(limits: IngestLimits) -> None:
    doc = _ok(parse_document(PAGE, "page.bin", limits))
    assert doc.kind is DocumentKind.HTML
    assert doc.title == "The Page"
    for junk in ("SCRIPT", "SITE-HEADER", "NAV-", "FORM-BUTTON", "ASIDE", "FOOTER", "color"):
        assert junk not in doc.text
    assert "First bold paragraph spread over lines." in doc.text
    assert "Name\tValue\nalpha\t1" in doc.text
    assert [s.title for s in doc.sections] == ["Main Heading", "Details"]
    details = doc.sections[1]
    assert doc.text[details.char_start : details.char_end].startswith("Details\n\nSecond")


def test_html_without_main_drops_page_header_and_footer(limits: IngestLimits) -> None:
    page = b"<html><body><header>TOP</header><div><p>Body text.</p></div><footer>END</footer>"
    doc = _ok(parse_document(page + b"</body></html>", "p.html", limits))
    assert doc.text == "Body text."


def test_html_with_only_navigation_is_empty(limits: IngestLimits) -> None:
    page = b"<html><body><nav>Home About</nav><script>x()</script></body></html>"
    _failed(parse_document(page, "nav.html", limits), FailureReason.EMPTY_DOCUMENT)


# ---------------------------------------------------------------- pdf


def test_pdf_text_per_page_with_page_numbers(limits: IngestLimits) -> None:
    data = make_pdf([["Alpha page one.", "Still one."], None, ["Gamma page three."]], title="Doc")
    doc = _ok(parse_document(data, "report.bin", limits))
    assert doc.kind is DocumentKind.PDF
    assert doc.page_count == 3
    assert doc.title == "Doc"
    pages = {p.number: doc.text[p.char_start : p.char_end] for p in doc.pages}
    assert set(pages) == {1, 3}  # page 2 has no text, so it has no span
    assert "Alpha page one." in pages[1]
    assert "Still one." in pages[1]
    assert pages[3].strip() == "Gamma page three."


def test_pdf_without_text_layer_fails_with_its_own_reason(limits: IngestLimits) -> None:
    _failed(parse_document(make_pdf([None, None]), "scan.pdf", limits), FailureReason.NO_TEXT_LAYER)
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    _failed(parse_document(out.getvalue(), "blank.pdf", limits), FailureReason.NO_TEXT_LAYER)


def test_truncated_pdf_is_corrupt(limits: IngestLimits) -> None:
    data = make_pdf([["Some text."]])
    _failed(parse_document(data[:60], "broken.pdf", limits), FailureReason.CORRUPT_FILE)


def test_pdf_over_the_page_limit_fails(limits: IngestLimits) -> None:
    data = make_pdf([["one"], ["two"], ["three"]])
    _failed(
        parse_document(data, "long.pdf", IngestLimits(max_pages=2)), FailureReason.TOO_MANY_PAGES
    )


def test_password_protected_pdf_is_refused(limits: IngestLimits) -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([["Secret text."]]))))
    writer.encrypt(user_password="pw", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    failure = _failed(
        parse_document(out.getvalue(), "locked.pdf", limits), FailureReason.CORRUPT_FILE
    )
    assert "encrypted" in failure.message


# ---------------------------------------------------------------- docx


def test_docx_paragraphs_headings_and_tables_in_order(limits: IngestLimits) -> None:
    doc = _ok(parse_document(make_docx(), "report.docx", limits))
    assert doc.kind is DocumentKind.DOCX
    assert doc.title == "Annual Report"
    order = [
        "Opening paragraph",
        "Results",
        "Revenue grew",
        "Region\tRevenue\nNorth\t42",
        "After the table.",
        "Outlook",
    ]
    positions = [doc.text.index(part) for part in order]
    assert positions == sorted(positions)
    assert [s.title for s in doc.sections] == ["Annual Report", "Results", "Outlook"]
    assert [s.level for s in doc.sections] == [1, 1, 2]


def test_zip_that_only_looks_like_docx_is_corrupt(limits: IngestLimits) -> None:
    fake = make_zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<not-xml"})
    assert detect_type(fake, "x.docx").type is FileType.DOCX
    _failed(parse_document(fake, "fake.docx", limits), FailureReason.CORRUPT_FILE)


def test_pdf_named_docx_is_parsed_as_pdf(limits: IngestLimits) -> None:
    doc = _ok(parse_document(make_pdf([["Really a PDF."]]), "letter.docx", limits))
    assert doc.kind is DocumentKind.PDF


def test_an_archive_is_not_a_single_document(limits: IngestLimits) -> None:
    _failed(
        parse_document(make_zip({"a.txt": b"x"}), "a.zip", limits), FailureReason.UNSUPPORTED_TYPE
    )


def test_failure_maps_to_domain_error_code(limits: IngestLimits) -> None:
    failure = _failed(parse_document(b"", "e.txt", limits), FailureReason.EMPTY_DOCUMENT)
    assert failure.to_error().code == "empty_document"
    too_big = parse_document(b"xx", "b.txt", IngestLimits(max_file_bytes=1))
    assert isinstance(too_big, ParseFailure)
    assert too_big.to_error().code == "too_large"
