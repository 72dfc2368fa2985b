"""Text inside pictures (OCR): lines of text with their box and confidence.

The engine is RapidOCR (PyPI ``rapidocr``, pinned to :data:`RAPIDOCR_VERSION`): PaddleOCR's
PP-OCRv6 small detector and recogniser as ONNX files *inside the wheel*, run on ONNX Runtime.
Nothing is downloaded, so it works offline. The package's newest release at the time (3.10.0)
ships PP-OCRv6; the older ``rapidocr_onnxruntime`` 1.4.4 ships PP-OCRv4 and is not used.

:class:`TextReader` loads the models once and offers:

- :meth:`TextReader.read`: detection at :attr:`~models.settings.OcrSettings.ocr_side` (long
  side), then recognition of each line from the picture as given; returns :class:`OcrLine`
  records after the quality rules below. Given regions, it reads only around them.
- :meth:`TextReader.find_text`: the detector alone on a small copy of the picture
  (:attr:`~models.settings.OcrSettings.ocr_gate_side`, ~8 ms at 256 px): the gate that
  ``ASSETLENS_OCR=auto`` runs first, whose boxes are the regions then read
  (:meth:`TextReader.has_text`: whether it found any).

Quality rules, applied to every line:

- lines under :attr:`~models.settings.OcrSettings.ocr_min_confidence` are dropped: on a
  text-free photo the recogniser can invent a stray glyph, with a low score;
- lines whose letters are mostly in a script outside ``ASSETLENS_OCR_LANGS`` are dropped
  (digits and punctuation belong to every script);
- lines with fewer than two letters or digits are dropped: the glyph a recogniser invents
  in a texture is nearly always a lone one ("8" over a whole coffee cup, score 0.998), and
  nobody searches for one character;
- text is whitespace-normalised.

The gate counts only line-shaped boxes: at least :data:`GATE_MIN_ASPECT` times wider than
high and at most a third of the picture high. The detector's false alarms on text-free
photos (foam, fur, leaves) are blobs; on the test set the rule removed 7 of 9 of them at a
long side of 320 without losing a rendered line.

The angle classifier (text upside down) is off: photos, banners and slides carry upright or
slightly tilted text, and it costs time on every line.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from assetlens.models.errors import OcrError
from assetlens.models.scripts import in_scripts, parse_langs
from assetlens.models.settings import OcrSettings

if TYPE_CHECKING:
    from rapidocr import RapidOCR

__all__ = ["RAPIDOCR_VERSION", "OcrLine", "TextReader"]


RAPIDOCR_VERSION = "3.10.0"
"""The pinned engine release: its wheel carries the two models named in the model id."""
Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` as fractions of a picture's width and height."""
REGION_MARGIN = 1.5
"""How far a region read around a gate box reaches, in heights of that box (twice that sideways)."""
GATE_MIN_ASPECT = 1.5
"""A gate box must be this many times longer than high to count as a line of text."""
_ENGINE_MAX_SIDE = 2000  # RapidOCR's Global.max_side_len (default kept)
_DET_MODEL = "PP-OCRv6_det_small"
_REC_MODEL = "PP-OCRv6_rec_small"


@dataclass(frozen=True)
class OcrLine:
    """One line of text found in a picture.

    Attributes:
        text: The line as read, whitespace-normalised.
        box: ``(x0, y0, x1, y1)``: the line's axis-aligned bounding box as fractions of the
            picture's width and height (0-1, top-left origin); a tilted line's box encloses it.
        confidence: The recogniser's score for the line, in ``[0, 1]``.
    """

    text: str
    box: Box
    confidence: float


class TextReader:
    """Reads lines of text in pictures with RapidOCR; load once, call from many threads.

    Args:
        settings: OCR settings; read from the environment when omitted.

    Raises:
        OcrError: ``ASSETLENS_OCR_LANGS`` names an unknown script.
    """

    def __init__(self, settings: OcrSettings | None = None) -> None:
        self.settings = settings or OcrSettings()
        self.scripts = parse_langs(self.settings.ocr_langs)
        self._lock = threading.Lock()
        self._engine: RapidOCR | None = None
        self._gate: RapidOCR | None = None

    @property
    def model_id(self) -> str:
        """Identity of the engine and its models; every stored line records it."""
        return f"rapidocr-{RAPIDOCR_VERSION}:{_DET_MODEL}+{_REC_MODEL}"

    @property
    def cache_key(self) -> str:
        """The model id plus a digest of every setting that changes which lines come out."""
        s = self.settings
        rules = f"{sorted(self.scripts)}|{s.ocr_min_confidence}|{s.ocr_side}"
        return f"{self.model_id}#{hashlib.blake2b(rules.encode(), digest_size=4).hexdigest()}"

    @property
    def loaded(self) -> bool:
        """Whether the recognition models are in memory."""
        return self._engine is not None

    def load(self) -> None:
        """Load the detector and recogniser (idempotent).

        Raises:
            OcrError: ``rapidocr`` is not installed or its model files cannot be opened.
        """
        with self._lock:
            if self._engine is None:
                self._engine = self._build(self.settings.ocr_side, recognise=True)

    def _gate_engine(self) -> RapidOCR:
        with self._lock:
            if self._gate is None:
                self._gate = self._build(self.settings.ocr_gate_side, recognise=False)
            return self._gate

    def _build(self, side: int, *, recognise: bool) -> RapidOCR:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise OcrError(
                f"OCR needs the package rapidocr=={RAPIDOCR_VERSION} "
                f"(pip install 'rapidocr=={RAPIDOCR_VERSION}'), or set ASSETLENS_OCR=off"
            ) from exc
        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.use_cls": False,
            "Global.use_rec": recognise,
            "Det.limit_type": "max",
            "Det.limit_side_len": side,
            # The engine's own score filter is ours (ocr_min_confidence), applied after it.
            "Global.text_score": 0.0,
        }
        if self.settings.ocr_threads:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = self.settings.ocr_threads
        try:
            engine = RapidOCR(params=params)
            # Open the ONNX sessions now (RapidOCR opens them on first use): a broken install
            # fails here, once, not on every picture. Private loaders, hence the exact pin.
            engine._load_det_model()
            if recognise:
                engine._load_rec_model()
        except Exception as exc:
            raise OcrError(f"cannot load the OCR models of rapidocr {RAPIDOCR_VERSION}: {exc}") from exc
        return engine

    def read(
        self, image: Image.Image | np.ndarray, regions: Sequence[Box] | None = None
    ) -> tuple[OcrLine, ...]:
        """The lines of text in a picture, top to bottom, after the quality rules.

        Args:
            image: An RGB picture (PIL image or ``(H, W, 3)`` uint8 array). Recognition reads
                each line from it as given, so more pixels help small text.
            regions: Read only around these boxes (fractions of the picture, as
                :meth:`find_text` gives them): each is widened by :data:`REGION_MARGIN` line
                heights, overlapping ones are joined, and the detector runs on those crops
                alone, a fraction of the cost of the whole picture. None: the whole picture.

        Returns:
            The kept lines (empty for a text-free picture).

        Raises:
            OcrError: The engine failed on this picture.
        """
        self.load()
        bgr = _bgr(image)
        height, width = bgr.shape[:2]
        if regions is None:
            return tuple(self._keep(self._run(bgr), (0.0, 0.0, 1.0, 1.0)))
        lines: list[OcrLine] = []
        for region in _join(_widened(r) for r in regions):
            x0, y0, x1, y1 = (
                round(v * n) for v, n in zip(region, (width, height, width, height), strict=True)
            )
            for line in self._keep(self._run(np.ascontiguousarray(bgr[y0:y1, x0:x1])), region):
                if not any(x.text == line.text and _overlap(x.box, line.box) for x in lines):
                    lines.append(line)
        return tuple(sorted(lines, key=lambda x: (x.box[1], x.box[0])))

    def _run(self, bgr: np.ndarray) -> Any:
        assert self._engine is not None
        height, width = bgr.shape[:2]
        # The engine first shrinks the long side to _ENGINE_MAX_SIDE and rounds sides to
        # multiples of 32: a strip whose short side ends under 16 px would round to nothing
        # (an error), and holds no legible line anyway.
        if min(height, width) * min(1.0, _ENGINE_MAX_SIDE / max(height, width)) < 16:
            return None
        try:
            return self._engine(bgr)
        except Exception as exc:
            raise OcrError(f"OCR failed: {exc}") from exc

    def _keep(self, result: Any, region: Box) -> list[OcrLine]:
        """The engine's lines that pass the quality rules, boxes mapped from ``region`` to the picture."""
        if getattr(result, "txts", None) is None:
            return []
        height, width = result.img.shape[:2]
        lines = []
        for quad, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
            text = " ".join(str(text).split())
            if (
                score < self.settings.ocr_min_confidence
                or sum(c.isalnum() for c in text) < 2
                or not in_scripts(text, self.scripts)
            ):
                continue
            x0, y0, x1, y1 = _normalised_box(np.asarray(quad), width, height)
            rx, ry, rw, rh = region[0], region[1], region[2] - region[0], region[3] - region[1]
            box = (
                round(rx + x0 * rw, 4),
                round(ry + y0 * rh, 4),
                round(rx + x1 * rw, 4),
                round(ry + y1 * rh, 4),
            )
            lines.append(OcrLine(text, box, round(float(score), 4)))
        return lines

    def find_text(self, image: Image.Image | np.ndarray) -> tuple[Box, ...]:
        """Where a quick, low-resolution detection finds lines of text in the picture.

        Args:
            image: An RGB picture of any size; a small draft is enough.

        Returns:
            The line-shaped boxes scoring at least ``ocr_gate_score``, as fractions of the
            picture (empty: no text seen at this resolution).

        Raises:
            OcrError: The detector failed on this picture.
        """
        gate = self._gate_engine()
        small = _shrunk(image, self.settings.ocr_gate_side)
        try:
            result: Any = gate(_bgr(small))
        except Exception as exc:
            raise OcrError(f"OCR text check failed: {exc}") from exc
        scores = getattr(result, "scores", None)
        if scores is None:
            return ()
        limit = small.height / 3
        return tuple(
            _normalised_box(np.asarray(quad), small.width, small.height)
            for quad, score in zip(result.boxes, scores, strict=True)
            if score >= self.settings.ocr_gate_score and _line_shaped(np.asarray(quad), limit)
        )

    def has_text(self, image: Image.Image | np.ndarray) -> bool:
        """Whether :meth:`find_text` finds any line."""
        return bool(self.find_text(image))


def _widened(box: Box) -> Box:
    x0, y0, x1, y1 = box
    pad = REGION_MARGIN * (y1 - y0)
    return (max(0.0, x0 - 2 * pad), max(0.0, y0 - pad), min(1.0, x1 + 2 * pad), min(1.0, y1 + pad))


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _join(boxes: Iterable[Box]) -> list[Box]:
    """Overlapping boxes joined into their bounding boxes (until none overlap)."""
    out: list[Box] = []
    for box in boxes:
        while hit := next((b for b in out if _overlap(b, box)), None):
            out.remove(hit)
            box = (min(box[0], hit[0]), min(box[1], hit[1]), max(box[2], hit[2]), max(box[3], hit[3]))
        out.append(box)
    return out


def _line_shaped(quad: np.ndarray, max_height: float) -> bool:
    """Whether a detected quadrilateral looks like a line of text (not a textured blob)."""
    width = float(np.linalg.norm(quad[1] - quad[0]))
    height = float(np.linalg.norm(quad[2] - quad[1]))
    long, short = max(width, height), min(width, height)
    return long >= GATE_MIN_ASPECT * short and short <= max_height


def _shrunk(image: Image.Image | np.ndarray, side: int) -> Image.Image:
    im = image if isinstance(image, Image.Image) else Image.fromarray(image)
    if max(im.size) > side:
        scale = side / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return im


def _bgr(image: Image.Image | np.ndarray) -> np.ndarray:
    """The picture as a contiguous BGR uint8 array, as the engine expects arrays."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise OcrError(f"OCR needs an RGB uint8 picture, got an array of shape {image.shape} ({image.dtype})")
    return np.ascontiguousarray(image[:, :, ::-1])


def _normalised_box(quad: np.ndarray, width: int, height: int) -> Box:
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)

    def frac(v: float, full: int) -> float:
        return round(min(max(float(v) / full, 0.0), 1.0), 4)

    return frac(x0, width), frac(y0, height), frac(x1, width), frac(y1, height)
