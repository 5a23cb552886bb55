"""HTML: the page's main content as text; navigation, scripts and forms dropped."""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ingest.documents import FailureReason, ParseError
from ingest.limits import IngestLimits
from ingest.parsers.assembly import ParsedText, TextAssembler, squeeze_blank_lines
from ingest.parsers.plaintext import decode_text

__all__ = ["parse_html"]

# Never content, wherever they appear.
_ALWAYS_DROP = (
    "script, style, noscript, template, iframe, object, embed, svg, canvas, form, button, "
    "select, textarea, nav, aside, dialog, [role=navigation], [role=search], [hidden], "
    "[aria-hidden=true]"
)
# Page chrome when we fall back to <body>; inside <main>/<article> a <header> holds the h1.
_CHROME = "header, footer, [role=banner], [role=contentinfo]"
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = frozenset(
    {
        "address", "article", "blockquote", "body", "dd", "details", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "hr", "li", "main", "ol", "p", "section",
        "summary", "ul", "caption", "center", "html", "header", "footer", "menu",
    }
)  # fmt: skip


def parse_html(data: bytes, limits: IngestLimits) -> ParsedText:
    """Parse an HTML page: ``<main>``/``<article>`` if present, headings as sections."""
    tree = LexborHTMLParser(decode_text(data))
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else ""
    root = tree.css_first("main") or tree.css_first("article")
    if root is None:
        root = tree.body or tree.root
        if root is None:
            raise ParseError(FailureReason.EMPTY_DOCUMENT, "the page has no content")
        _drop(root, _CHROME)
    _drop(root, _ALWAYS_DROP)
    assembler = TextAssembler(max_chars=limits.max_text_chars)
    _walk(root, assembler)
    parsed = assembler.build()
    first_h1 = next((s.title for s in parsed.sections if s.level == 1 and s.title), None)
    return ParsedText(text=parsed.text, title=title or first_h1, sections=parsed.sections)


def _drop(root: LexborNode, selector: str) -> None:
    for node in root.css(selector):
        node.decompose()


def _walk(root: LexborNode, out: TextAssembler) -> None:
    """Depth-first walk with an explicit stack: deeply nested pages cannot hit recursion limits."""
    inline: list[str] = []

    def flush() -> None:
        out.paragraph(" ".join("".join(inline).split()))
        inline.clear()

    stack: list[tuple[LexborNode, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        tag = node.tag or ""
        if leaving:
            flush()
            continue
        if tag == "-text":
            inline.append(node.text(deep=False))
        elif tag == "br":
            inline.append("\n")
        elif tag in _HEADINGS:
            flush()
            out.heading(node.text(deep=True, separator=" "), _HEADINGS[tag])
        elif tag == "pre":
            flush()
            out.paragraph(squeeze_blank_lines(node.text(deep=True)))
        elif tag == "table":
            flush()
            out.paragraph(_table_text(node))
        elif tag in ("img", "input"):
            continue
        elif not tag.startswith("-"):
            if tag in _BLOCKS:
                flush()
                stack.append((node, True))
            children = list(node.iter(include_text=True))
            stack.extend((child, False) for child in reversed(children))
    flush()


def _table_text(table: LexborNode) -> str:
    """Rows on lines, cells separated by tabs."""
    rows = []
    for row in table.css("tr"):
        cells = [" ".join(c.text(deep=True, separator=" ").split()) for c in row.css("th, td")]
        if any(cells):
            rows.append("\t".join(cells))
    return "\n".join(rows)
