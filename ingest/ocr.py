"""OCR: the PP-OCRv4 models shipped in ``rapidocr-onnxruntime==1.4.4`` — the only module here
that knows rapidocr.

The model files are found through the installed package and checked against sha256
digests pinned here before anything is loaded; nothing is ever downloaded. Models load on
first use (a worker that never sees an image never pays for them) and the engine is shared
by the parsers of one process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from core.errors import SieveError

__all__ = [
    "OCR_MODEL_PINS",
    "OcrConfig",
    "OcrIntegrityError",
    "RapidOcrEngine",
    "RecognizedLine",
    "Recognizer",
    "reading_order",
    "verify_ocr_models",
]

log = logging.getLogger(__name__)

# sha256 of the files inside rapidocr-onnxruntime==1.4.4 (rapidocr_onnxruntime/models/).
OCR_MODEL_PINS: dict[str, str] = {
    "ch_PP-OCRv4_det_infer.onnx": (
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
    ),
    "ch_PP-OCRv4_rec_infer.onnx": (
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"
    ),
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": (
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"
    ),
}
_DET, _REC, _CLS = OCR_MODEL_PINS


class OcrIntegrityError(SieveError):
    """The OCR models are missing or differ from the pinned files (refuse to OCR)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="ocr_unavailable")


class OcrConfig(BaseModel):
    """How the detector sees a page; defaults measured with ``bench/ocr.py --dev``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # rapidocr's default scales the *shorter* side up to 736 px before detection; on the
    # drawn dev set that merged words ("RoomB-204,second", CER 0.031) and took 4x longer
    # than capping the *longer* side at 1280 px (CER 0.006; 960-2000 tied). README, OCR.
    det_limit_side_len: Annotated[int, Field(ge=320, le=4096)] = 1280
    det_limit_type: str = "max"
    # Lines the recogniser scores below this are dropped as noise.
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.5
    # ONNX threads per model: 1 keeps a prefork worker on its own core.
    intra_op_threads: Annotated[int, Field(ge=1, le=64)] = 1


@dataclass(frozen=True, slots=True)
class RecognizedLine:
    """One text line the OCR read: its text, confidence in [0, 1] and box in image pixels."""

    text: str
    confidence: float
    left: float
    top: float
    right: float
    bottom: float

    @property
    def height(self) -> float:
        """The box height in pixels."""
        return self.bottom - self.top


class Recognizer(Protocol):
    """Anything that reads the text lines of an RGB image (the parsers' OCR port)."""

    def recognize(self, image: Any) -> list[RecognizedLine]:
        """Return the lines found in a PIL RGB image (any order; see ``reading_order``)."""
        ...


def _models_dir() -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise OcrIntegrityError(
            "rapidocr-onnxruntime==1.4.4 (which ships the OCR models) is missing"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def verify_ocr_models(directory: Path) -> None:
    """Check each pinned OCR model file's sha256.

    Raises:
        OcrIntegrityError: a file is missing or altered.
    """
    for name, expected in OCR_MODEL_PINS.items():
        path = directory / name
        if not path.is_file():
            raise OcrIntegrityError(f"OCR model {name} is missing from {directory}")
        with path.open("rb") as fh:
            actual = hashlib.file_digest(fh, "sha256").hexdigest()
        if actual != expected:
            raise OcrIntegrityError(
                f"OCR model {name} has sha256 {actual[:16]}…, expected {expected[:16]}…"
            )


class RapidOcrEngine:
    """PP-OCRv4 detection, angle classification and recognition via rapidocr (lazy, shared)."""

    def __init__(self, config: OcrConfig | None = None, *, models_dir: Path | None = None) -> None:
        self._config = config or OcrConfig()
        self._models_dir = models_dir
        self._engine: Any = None
        self._lock = threading.Lock()

    @property
    def config(self) -> OcrConfig:
        """The detector settings in use."""
        return self._config

    def load(self) -> None:
        """Verify and load the models now (else on first use).

        Raises:
            OcrIntegrityError: the models are missing, altered or unloadable.
        """
        with self._lock:
            if self._engine is not None:
                return
            directory = self._models_dir or _models_dir()
            verify_ocr_models(directory)
            from rapidocr_onnxruntime import RapidOCR  # noqa: PLC0415 - heavy, on first use

            c = self._config
            threads = c.intra_op_threads
            try:
                self._engine = RapidOCR(
                    det_model_path=str(directory / _DET),
                    rec_model_path=str(directory / _REC),
                    cls_model_path=str(directory / _CLS),
                    det_limit_side_len=c.det_limit_side_len,
                    det_limit_type=c.det_limit_type,
                    text_score=c.min_confidence,
                    intra_op_num_threads=threads,
                    inter_op_num_threads=1,
                )
            except Exception as exc:  # onnxruntime raises its own bare types
                raise OcrIntegrityError(
                    f"cannot load the OCR models ({type(exc).__name__})"
                ) from exc
            log.info("ocr models loaded", extra={"path": str(directory)})

    def recognize(self, image: Any) -> list[RecognizedLine]:
        """Read the lines of a PIL RGB image (empty when it has no text).

        Raises:
            OcrIntegrityError: the models could not be verified or loaded.
        """
        self.load()
        with self._lock:
            # One image at a time per engine: the ONNX sessions are sized for one core.
            result, _ = self._engine(image)
        lines: list[RecognizedLine] = []
        for box, text, score in result or ():
            xs = [float(p[0]) for p in box]
            ys = [float(p[1]) for p in box]
            clean = " ".join(str(text).split())
            if clean and float(score) >= self._config.min_confidence:
                lines.append(
                    RecognizedLine(clean, float(score), min(xs), min(ys), max(xs), max(ys))
                )
        return lines


def reading_order(lines: Sequence[RecognizedLine]) -> list[list[RecognizedLine]]:
    """Group boxes into visual rows (top to bottom), each row left to right.

    Two boxes share a row when their vertical centres are closer than half the smaller
    box's height: the detector often splits one printed line at wide gaps.
    """
    rows: list[list[RecognizedLine]] = []
    for line in sorted(lines, key=lambda ln: (ln.top + ln.bottom) / 2):
        centre = (line.top + line.bottom) / 2
        if rows:
            last = rows[-1]
            ref = last[0]
            ref_centre = (ref.top + ref.bottom) / 2
            if abs(centre - ref_centre) < min(ref.height, line.height) / 2:
                last.append(line)
                continue
        rows.append([line])
    return [sorted(row, key=lambda ln: ln.left) for row in rows]
