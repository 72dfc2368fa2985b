"""CLIP encoder: images and texts to L2-normalised float32 vectors.

The model loads lazily on first use. Images are prepared (resized, centre-cropped to uint8)
by :func:`prepare_image`, which callers may run in decode workers so that the inference
thread only normalises and runs the network.

The numeric precision (``ASSETLENS_CLIP_PRECISION``, see :mod:`models.precision`) changes how
the network is computed, never which network: the model id is the same in every mode, and
each mode's embeddings keep a cosine of at least 0.99 to fp32's. The computation itself is a
backend: :class:`models.torch_towers.TorchTowers` (PyTorch modes) or
:class:`models.onnx_towers.OnnxTowers` (``onnx-int8``). This module imports neither torch nor
open_clip: with a cached ONNX export (in the machine cache, :mod:`models.cache`), encoding
images or texts never loads them (texts are tokenized by :mod:`models.tokenizer`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from assetlens.models.cache import onnx_dir
from assetlens.models.errors import PrecisionError
from assetlens.models.onnx_towers import OnnxTowers, read_meta
from assetlens.models.precision import resolve_precision, vit_param_estimate
from assetlens.models.registry import ModelSpec, arch_config
from assetlens.models.settings import ModelSettings

if TYPE_CHECKING:
    from assetlens.models.torch_towers import TorchTowers

__all__ = ["MAX_ASPECT", "ClipEncoder", "prepare_image"]

log = logging.getLogger(__name__)


MAX_ASPECT = 8
"""Longest side kept, in multiples of the shorter one, before the square centre crop."""


def prepare_image(image: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` (bicubic) and centre-crop: CLIP's own preprocessing.

    Extreme strips are first cut to their centre (at most :data:`MAX_ASPECT` times longer than
    wide): scaling a 1 x 20 000 strip's shorter side to 224 would make 224 x 4 480 000 pixels
    (3 GB and 13 s) to keep one square of them; the cut keeps the same square for kilobytes.

    Args:
        image: An RGB image of any size.
        size: The model's input side.

    Returns:
        ``uint8`` array of shape ``(size, size, 3)``.
    """
    w, h = image.size
    short = min(w, h)
    if max(w, h) > MAX_ASPECT * short:
        keep = MAX_ASPECT * short
        left, top = (w - keep) // 2 if w > h else 0, (h - keep) // 2 if h > w else 0
        image = image.crop((left, top, left + min(w, keep), top + min(h, keep)))
        w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    # reducing_gap lets Pillow shrink by an integer factor first: same result, far less work.
    resized = image.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)


class ClipEncoder:
    """Encodes images and texts with one CLIP model.

    Args:
        spec: The resolved model (see :func:`models.registry.resolve_model`).
        settings: Device, precision, threads, cache locations.

    Raises:
        PrecisionError: The precision (or device) is not supported on this machine.
    """

    def __init__(self, spec: ModelSpec, settings: ModelSettings | None = None) -> None:
        self.spec = spec
        self.settings = settings or ModelSettings()
        self._towers: TorchTowers | OnnxTowers | None = None
        self._tokenizer: Callable[[list[str]], np.ndarray] | None = None
        self._lock = threading.Lock()
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        vision = arch_config(spec.arch)["vision_cfg"]
        assert isinstance(vision, dict)
        self.image_size = int(vision["image_size"])
        self.dim = spec.embed_dim
        self.device = _pick_device(self.settings.device)
        self.requested_precision = self.settings.clip_precision
        # The mode in use. ``auto`` is resolved here; an onnx-int8 chosen by ``auto`` may still
        # become fp32 in load() if it fails its accuracy check.
        self.precision = resolve_precision(
            self.requested_precision, self.device, vit_params=vit_param_estimate(vision)
        )

    @property
    def model_id(self) -> str:
        """Identity of the weights (recorded with every vector); the same in every precision."""
        return self.spec.model_id

    @property
    def onnx_cache(self) -> Path:
        """This model's ONNX towers in the machine cache (used by the ``onnx-int8`` mode only)."""
        return onnx_dir(self.settings.cache_dir, self.model_id)

    @property
    def onnx_meta(self) -> dict[str, Any] | None:
        """Export facts of the ONNX towers in use (accuracy check, export time), else None."""
        return dict(self._towers.meta) if isinstance(self._towers, OnnxTowers) else None

    @property
    def torch_model(self) -> Any:
        """The open_clip model in the PyTorch modes once loaded; None in ``onnx-int8``."""
        return None if self._towers is None or isinstance(self._towers, OnnxTowers) else self._towers.model

    def load(self) -> None:
        """Build the network and load its weights (idempotent, thread-safe).

        In the ``onnx-int8`` mode a cached export is loaded without building the PyTorch model
        (or importing torch); without one, the model is built, exported, quantised and checked
        once (about half a minute for ViT-B-32 on 2 cores).
        """
        with self._lock:
            if self._towers is not None:
                return
            if self.precision == "onnx-int8" and self._open_onnx():
                self._warn_if_random()
                return
            from assetlens.models.torch_towers import TorchTowers

            towers = TorchTowers.build(self.spec, self.settings, self.device)
            if self.precision == "onnx-int8":
                # The ONNX sessions hold the weights once exported: the PyTorch model is dropped.
                self._towers = self._export_onnx(towers) or towers
            else:
                towers.convert(self.precision)
                self._towers = towers
            self._warn_if_random()

    def _open_onnx(self) -> bool:
        """Use a cached export; False when there is none (or auto fell back to fp32)."""
        meta = read_meta(self.onnx_cache, self.model_id)
        if meta is None:
            return False
        if not meta.get("passed"):
            self._reject_onnx(meta)
            return False
        self._towers = OnnxTowers(self.onnx_cache, meta, self.settings.clip_threads)
        return True

    def _export_onnx(self, towers: TorchTowers) -> OnnxTowers | None:
        """Export, quantise and check the towers; None (and fp32) when ``auto`` cannot use them."""
        from assetlens.models.onnx_export import PROBE_TEXTS, export_towers

        log.warning(
            "preparing the int8 ONNX version of %s in %s (once per model; ViT-B-32 takes about "
            "half a minute)",
            self.model_id,
            self.onnx_cache,
        )
        tokens = self._tokens(list(PROBE_TEXTS))
        try:
            meta = export_towers(
                towers,
                self.onnx_cache,
                model_id=self.model_id,
                image_size=self.image_size,
                tokens=_text_input(tokens, towers.trimmed),
            )
        except Exception as exc:  # an architecture the exporter cannot handle, a full disk...
            if self.requested_precision != "auto":
                raise PrecisionError(
                    f"cannot build the onnx-int8 version of {self.model_id} in {self.onnx_cache}: "
                    f"{type(exc).__name__}: {exc}; use fp32 or int8"
                ) from exc
            log.warning("onnx-int8 export of %s failed (%s): running fp32", self.model_id, exc)
            self.precision = "fp32"
            return None
        if meta["passed"]:
            return OnnxTowers(self.onnx_cache, meta, self.settings.clip_threads)
        self._reject_onnx(meta)
        return None

    def _reject_onnx(self, meta: dict[str, Any]) -> None:
        worst = min(meta.get("image_min_cosine", 0.0), meta.get("text_min_cosine", 0.0))
        why = (
            f"the int8 ONNX version of {self.model_id} reaches a cosine of only {worst:.4f} to fp32 "
            f"(at least 0.99 is needed for its vectors to mix with other modes'; verdict cached in "
            f"{self.onnx_cache})"
        )
        if self.requested_precision != "auto":
            raise PrecisionError(f"ASSETLENS_CLIP_PRECISION=onnx-int8 refused: {why}; use fp32 or int8")
        log.warning("%s: running fp32", why)
        self.precision = "fp32"

    def _warn_if_random(self) -> None:
        if not self.spec.semantic:
            log.warning("CLIP model %s has random weights: results carry no meaning", self.spec.name)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Encode RGB images (any size) to an ``(N, dim)`` float32 array of unit vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.encode_prepared(np.stack([prepare_image(im, self.image_size) for im in images]))

    def encode_prepared(self, pixels: np.ndarray) -> np.ndarray:
        """Encode images already prepared by :func:`prepare_image`.

        Int8 modes quantise activations per call, so an image's vector varies very slightly
        (cosine > 0.999) with the other images of its batch.

        Args:
            pixels: ``uint8`` array ``(N, size, size, 3)``.

        Returns:
            ``(N, dim)`` float32 unit vectors.
        """
        self.load()
        assert self._towers is not None
        return _normalise(self._towers.encode_pixels(pixels))

    def encode_texts(self, texts: Sequence[str], *, remember: bool = True) -> np.ndarray:
        """Encode texts to ``(N, dim)`` float32 unit vectors.

        Args:
            texts: The texts.
            remember: Keep the embeddings in the LRU cache of query texts (bulk work such as
                vocabulary prompts passes False so it does not evict users' queries).
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if not remember:
            return self._encode_texts(list(texts))
        # Take the vectors out while locked: another thread may evict them while we encode.
        with self._lock:
            found = {t: self._text_cache[t] for t in dict.fromkeys(texts) if t in self._text_cache}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            found.update(zip(missing, self._encode_texts(missing), strict=True))
        with self._lock:
            for text in texts:
                self._text_cache[text] = found[text]
                self._text_cache.move_to_end(text)
            while len(self._text_cache) > self.settings.text_cache_size:
                self._text_cache.popitem(last=False)
        return np.stack([found[t] for t in texts])

    def _encode_texts(self, texts: list[str]) -> np.ndarray:

        self.load()
        assert self._towers is not None
        tokens = self._tokens(texts)
        return _normalise(self._towers.encode_tokens(_text_input(tokens, self._towers.trimmed)))

    def _tokens(self, texts: list[str]) -> np.ndarray:
        if self._tokenizer is None:
            from assetlens.models.tokenizer import tokenizer_for  # imported late: ftfy takes 40 ms

            self._tokenizer = tokenizer_for(self.spec.arch)
        return self._tokenizer(texts)


def _text_input(tokens: np.ndarray, trimmed: bool) -> np.ndarray:
    """Tokens as a text tower takes them: cut after the longest text when it is a trimmed one."""
    from assetlens.models.tokenizer import trim_tokens

    return trim_tokens(tokens) if trimmed else tokens


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _pick_device(choice: str) -> str:
    """``cpu`` or ``cuda``. Asks torch only where a GPU driver exists: importing it costs ~2 s."""
    if choice == "cpu" or (choice == "auto" and not _gpu_driver_present()):
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if choice == "cuda":
        raise PrecisionError("ASSETLENS_DEVICE=cuda but no CUDA device is available")
    return "cpu"


def _gpu_driver_present() -> bool:
    # Without the NVIDIA (or ROCm) kernel driver torch cannot see a GPU either.
    # (/dev/dxg is WSL2's GPU bridge, /dev/kfd AMD's ROCm.)
    gpu_paths = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd")
    return any(Path(path).exists() for path in gpu_paths)
