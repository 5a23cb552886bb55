"""Plain text: detect the encoding, normalise newlines, refuse binary junk."""

from __future__ import annotations

import unicodedata

from charset_normalizer import from_bytes

from ingest.documents import FailureReason, ParseError
from ingest.limits import IngestLimits
from ingest.parsers.assembly import ParsedText, normalise_newlines

__all__ = ["decode_text", "parse_txt"]

_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v")
# C0 controls other than tab, LF, VT, FF, CR (ESC included: real text rarely has it either).
_CONTROL_BYTES = bytes([*range(9), *range(14, 32), 127])
# Real text has next to no control characters; decoded binary has several per hundred.
_MAX_CONTROL_RATIO = 0.005


def decode_text(data: bytes) -> str:
    """Decode ``data`` (BOM, then strict UTF-8, then detected) with LF newlines.

    Raises:
        ParseError: ``unsupported_type`` for binary content, ``encoding_error`` when no
            encoding fits.
    """
    text = _decode(data)
    sample = text[:65536]
    controls = sum(
        1 for ch in sample if ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) == "Cc"
    )
    if controls > len(sample) * _MAX_CONTROL_RATIO:
        raise ParseError(FailureReason.UNSUPPORTED_TYPE, "binary content, not text")
    return normalise_newlines(text)


def _decode(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise ParseError(
                    FailureReason.ENCODING_ERROR, f"invalid {encoding} text: {exc.reason}"
                ) from exc
    sample = data[:65536]
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if b"\x00" in data or controls > len(sample) * _MAX_CONTROL_RATIO:
        raise ParseError(FailureReason.UNSUPPORTED_TYPE, "binary content, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None:
        raise ParseError(FailureReason.ENCODING_ERROR, "could not detect the text encoding")
    return str(best)


def parse_txt(data: bytes, limits: IngestLimits) -> ParsedText:
    """Parse a plain text file; its text is kept as written (newlines normalised)."""
    text = decode_text(data)
    if len(text) > limits.max_text_chars:
        raise ParseError(
            FailureReason.TOO_LARGE,
            f"text is over the limit of {limits.max_text_chars} characters",
        )
    return ParsedText(text=text)
