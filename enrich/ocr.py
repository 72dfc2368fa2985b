"""The OCR stage: text lines of an image or of a video's keyframes, as store records.

Pure: pictures in, :class:`~search.store.TextLine` records out; the pipeline writes them with
``Store.ocr.replace``. :class:`TextStage` applies the ``ASSETLENS_OCR`` mode:

- ``on``: every picture is read;
- ``auto``: the detector runs alone on a small copy of the picture
  (:meth:`models.ocr.TextReader.find_text`, ~10 ms); a picture where it finds no line-shaped
  box is not read, and one where it does is read only around those boxes (a margin of
  :data:`models.ocr.REGION_MARGIN` line heights): a third of the cost of reading the whole
  picture, at the price of small text that the small copy does not show;
- ``off``: the pipeline builds no stage and never loads the model.

Images are gated on the draft the pipeline already decoded for CLIP. ``on`` decodes each image
again at OCR resolution (shorter side at least :attr:`~models.settings.OcrSettings.ocr_side`,
a JPEG at its smallest DCT scale that keeps it) unless the draft is the full image; ``auto``
decodes again only when the lines it found are under :data:`READ_LINE_HEIGHT` pixels high in
the draft, and only as large as they need.
Video keyframes are read as given, each with its time; the same text seen on several
keyframes (a slide held for a minute, a footer on every slide) becomes one line, at the time
it first appears, with the best reading of it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from assetlens.enrich.decode import DEFAULT_MAX_PIXELS, decode_image
from assetlens.models.ocr import OcrLine, TextReader
from assetlens.search.store import TextLine

READ_LINE_HEIGHT = 32
"""Height in pixels a gate box (a detected line, with the detector's margin) is read at in ``auto``.

Measured on the benchmark's camera JPEGs (``tests/benchmarks/bench_ocr.py``): 24, 32 and 48
read every phrase the gate found alike; 32 keeps a margin for harder text, and still reads
most banners straight from the draft, without decoding the file again.
"""
SAME_TEXT = 0.85
"""Two keyframes' lines whose texts are at least this similar (difflib ratio, case-folded) are one."""


class TextStage:
    """Reads text in pictures for the pipeline, in the mode of the reader's settings.

    Args:
        reader: The OCR model (loaded on first use).
        mode: ``auto`` (gate first) or ``on`` (read everything); default: the reader's setting.
            ``off`` is refused: the pipeline builds no stage then.
        max_pixels: Largest image decoded again for reading (the pipeline's limit).

    Raises:
        ValueError: ``mode`` is ``off`` or unknown.
    """

    def __init__(
        self, reader: TextReader, mode: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> None:
        self.reader = reader
        self.mode = mode or reader.settings.ocr
        if self.mode not in ("auto", "on"):
            raise ValueError(f"a text stage reads in mode auto or on, not {self.mode!r}")
        self.max_pixels = max_pixels

    @property
    def model(self) -> str:
        """What the stored lines and read marks record: the reader's cache key."""
        return self.reader.cache_key

    def image(self, path: Path, draft: Image.Image, full_size: tuple[int, int]) -> tuple[TextLine, ...]:
        """The lines of a still image.

        Args:
            path: The image file (decoded again at OCR resolution when the draft is reduced).
            draft: The image as decoded for CLIP (RGB, orientation applied).
            full_size: The image's full width and height (after orientation).

        Raises:
            DecodeError: The second decode failed (the file changed since the first).
            OcrError: The model failed on this picture.
        """
        regions = self.reader.find_text(draft) if self.mode == "auto" else None
        if regions == ():
            return ()
        # "on" reads the whole picture at OCR resolution; "auto" only needs its lines to be
        # READ_LINE_HEIGHT px high, which the draft often already is (a banner, a slide).
        side = self.reader.settings.ocr_side
        if regions:
            smallest = min(y1 - y0 for _, y0, _, y1 in regions) * draft.height
            side = math.ceil(min(draft.size) * READ_LINE_HEIGHT / max(smallest, 1.0))
        side = min(side, *full_size)
        picture = draft
        if draft.size != full_size and min(draft.size) < side:
            picture = decode_image(path, min_side=side, max_pixels=self.max_pixels).image
        return self._records(self.reader.read(picture, regions), None)

    def frames(self, frames: Sequence[tuple[Image.Image | np.ndarray, float | None]]) -> tuple[TextLine, ...]:
        """The lines of a video's keyframes (picture, time), repeats merged.

        Raises:
            OcrError: The model failed on a keyframe.
        """
        lines: list[TextLine] = []
        for picture, t in frames:
            regions = self.reader.find_text(picture) if self.mode == "auto" else None
            if regions != ():
                lines += self._records(self.reader.read(picture, regions), t)
        return merge_repeats(lines)

    def _records(self, lines: Sequence[OcrLine], t: float | None) -> tuple[TextLine, ...]:
        model = self.reader.model_id
        return tuple(TextLine(x.text, x.box, x.confidence, t, model) for x in lines)


def merge_repeats(lines: Sequence[TextLine]) -> tuple[TextLine, ...]:
    """One line per distinct text of a video, at the time it first appears, with its best reading.

    Lines are compared case-folded with whitespace and punctuation ignored; texts at least
    :data:`SAME_TEXT` similar with the same numbers count as one (OCR reads a held slide
    slightly differently from frame to frame, but "Exit B2" and "Exit B3" are two signs). The
    kept line takes the earliest time and the text, box and confidence of its most confident
    reading.
    """
    kept: list[tuple[str, TextLine, float | None]] = []  # key, best reading, first time
    for line in sorted(lines, key=lambda x: (x.t is None, x.t or 0.0)):
        key = " ".join(re.findall(r"\w+", line.text.casefold()))
        for i, (other, best, first) in enumerate(kept):
            if key == other or _near(key, other):
                if line.confidence > best.confidence:
                    kept[i] = (key, line, first)
                break
        else:
            kept.append((key, line, line.t))
    return tuple(TextLine(best.text, best.box, best.confidence, first, best.model) for _, best, first in kept)


def _near(a: str, b: str) -> bool:
    same_numbers = re.findall(r"\d+", a) == re.findall(r"\d+", b)
    return same_numbers and difflib.SequenceMatcher(None, a, b).ratio() >= SAME_TEXT
