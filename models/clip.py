"""CLIP encoder: images and texts to L2-normalised float32 vectors.

The model loads lazily on first use. Images are prepared (resized, centre-cropped to uint8)
by :func:`prepare_image`, which callers may run in decode workers so that the inference
thread only normalises and runs the network.

The numeric precision (``ASSETLENS_CLIP_PRECISION``, see :mod:`models.precision`) changes how
the network is computed, never which network: the model id is the same in every mode, and
each mode's embeddings keep a cosine of at least 0.99 to fp32's.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from models.errors import CheckpointError, PrecisionError, WeightsMissingError
from models.precision import (
    autocast,
    cpu_supports_bf16,
    quantize_int8,
    resolve_precision,
    vit_param_estimate,
)
from models.registry import RANDOM_SEED, ModelSpec, _arch_config, _register_tiny_config
from models.settings import ModelSettings
from models.text import can_trim, encode_text_trimmed, full_text_features, text_features, trim_tokens

__all__ = ["ClipEncoder", "cpu_supports_bf16", "encode_text_trimmed", "prepare_image", "resolve_weights"]

log = logging.getLogger(__name__)


def prepare_image(image: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` (bicubic) and centre-crop: CLIP's own preprocessing.

    Args:
        image: An RGB image of any size.
        size: The model's input side.

    Returns:
        ``uint8`` array of shape ``(size, size, 3)``.
    """
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
        self._model: Any = None
        self._onnx: Any = None  # models.onnx_towers.OnnxTowers in the onnx-int8 mode
        self._loaded = False
        self._tokenizer: Any = None
        self._mean: torch.Tensor | None = None
        self._std: torch.Tensor | None = None
        self._lock = threading.Lock()
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        vision = _arch_config(spec.arch)["vision_cfg"]
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
        """Where this model's ONNX towers are cached (used by the ``onnx-int8`` mode only)."""
        from models.onnx_towers import cache_dir_for

        return cache_dir_for(self.settings.model_cache_dir or default_cache_root(), self.model_id)

    @property
    def onnx_meta(self) -> dict[str, Any] | None:
        """Export facts of the ONNX towers in use (accuracy check, export time), else None."""
        return dict(self._onnx.meta) if self._onnx is not None else None

    def load(self) -> None:
        """Build the network and load its weights (idempotent, thread-safe).

        In the ``onnx-int8`` mode a cached export is loaded without building the PyTorch model;
        without one, the model is built, exported, quantised and checked once (about half a
        minute for ViT-B-32 on 2 cores).
        """
        with self._lock:
            if self._loaded:
                return
            _register_tiny_config()
            if self.precision == "onnx-int8" and self._open_onnx():
                self._tokenizer, self._loaded = open_clip.get_tokenizer(self.spec.arch), True
                self._warn_if_random()
                return
            model = self._build_model()
            tokenizer = open_clip.get_tokenizer(self.spec.arch)
            if self.precision == "onnx-int8":
                self._export_onnx(model, tokenizer)
                if self._onnx is not None:
                    model = None  # the ONNX sessions hold the weights now
            elif self.precision == "int8":
                model = quantize_int8(model)
            elif self.precision == "bf16":
                # bf16 weights, not autocast: autocast re-casts every weight on every call, and on
                # a 2-core AVX-512 BF16 EPYC ran ViT-B-32 slower than fp32 (15 vs 19 img/s);
                # converted weights ran at 40 img/s with the same 0.9999 cosine to fp32.
                model = model.to(torch.bfloat16)
            if self.settings.clip_threads and self._onnx is None:
                torch.set_num_threads(self.settings.clip_threads)
            self._tokenizer, self._model, self._loaded = tokenizer, model, True
            self._warn_if_random()

    def _build_model(self) -> Any:
        weights = resolve_weights(self.spec, self.settings)
        # Random weights must be identical on every run and machine: seed a private RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = open_clip.create_model(self.spec.arch, pretrained=None)
        if weights is not None:
            try:
                open_clip.load_checkpoint(model, str(weights))
            except Exception as exc:
                raise CheckpointError(
                    f"cannot load CLIP weights from {weights} into {self.spec.arch}: {exc}"
                ) from exc
        model.eval().to(self.device)
        cfg = open_clip.get_model_preprocess_cfg(model)
        tag_cfg = open_clip.get_pretrained_cfg(self.spec.arch, self.spec.pretrained or "")
        mean = torch.tensor(tag_cfg.get("mean", cfg["mean"]), dtype=torch.float32) * 255.0
        std = torch.tensor(tag_cfg.get("std", cfg["std"]), dtype=torch.float32) * 255.0
        self._mean = mean.reshape(1, 3, 1, 1).to(self.device)
        self._std = std.reshape(1, 3, 1, 1).to(self.device)
        return model

    def _open_onnx(self) -> bool:
        """Use a cached export; False when there is none (or auto fell back to fp32)."""
        from models.onnx_towers import OnnxTowers, read_meta

        meta = read_meta(self.onnx_cache, self.model_id)
        if meta is None:
            return False
        if not meta.get("passed"):
            self._reject_onnx(meta)
            return False
        self._onnx = OnnxTowers(self.onnx_cache, self.settings.clip_threads)
        return True

    def _export_onnx(self, model: Any, tokenizer: Any) -> None:
        from models.onnx_towers import PROBE_TEXTS, OnnxTowers, export_towers

        log.warning(
            "preparing the int8 ONNX version of %s in %s (once per model; ViT-B-32 takes about "
            "half a minute)",
            self.model_id,
            self.onnx_cache,
        )
        trimmed = can_trim(model)
        tokens = tokenizer(list(PROBE_TEXTS))
        assert self._mean is not None and self._std is not None
        try:
            meta = export_towers(
                model,
                self.onnx_cache,
                model_id=self.model_id,
                image_size=self.image_size,
                mean=self._mean.flatten().cpu().numpy(),
                std=self._std.flatten().cpu().numpy(),
                tokens=trim_tokens(tokens) if trimmed else tokens,
                text_forward=text_features if trimmed else full_text_features,
                text_trimmed=trimmed,
            )
        except Exception as exc:  # an architecture the exporter cannot handle, a full disk...
            if self.requested_precision != "auto":
                raise PrecisionError(
                    f"cannot build the onnx-int8 version of {self.model_id} in {self.onnx_cache}: "
                    f"{type(exc).__name__}: {exc}; use fp32 or int8"
                ) from exc
            log.warning("onnx-int8 export of %s failed (%s): running fp32", self.model_id, exc)
            self.precision = "fp32"
            return
        if meta["passed"]:
            self._onnx = OnnxTowers(self.onnx_cache, self.settings.clip_threads)
        else:
            self._reject_onnx(meta)

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

    @property
    def _input_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

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
        if self._onnx is not None:
            return _normalise_array(self._onnx.encode_pixels(pixels))
        assert self._mean is not None and self._std is not None
        tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.uint8))
        if self.device.type == "cuda":
            # uint8 crosses the bus (a quarter of float32's bytes) from pinned memory, so the
            # copy is asynchronous; the GPU then normalises.
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        with torch.inference_mode(), autocast(self.device, self.precision):
            batch = (tensor.permute(0, 3, 1, 2).float() - self._mean) / self._std
            features = self._model.encode_image(batch.to(self._input_dtype))
        return _normalise(features)

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
            return self._encode_tokens(list(texts))
        # Take the vectors out while locked: another thread may evict them while we encode.
        with self._lock:
            found = {t: self._text_cache[t] for t in dict.fromkeys(texts) if t in self._text_cache}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            found.update(zip(missing, self._encode_tokens(missing), strict=True))
        with self._lock:
            for text in texts:
                self._text_cache[text] = found[text]
                self._text_cache.move_to_end(text)
            while len(self._text_cache) > self.settings.text_cache_size:
                self._text_cache.popitem(last=False)
        return np.stack([found[t] for t in texts])

    def _encode_tokens(self, texts: list[str]) -> np.ndarray:
        self.load()
        tokens = self._tokenizer(texts)
        if self._onnx is not None:
            tokens = trim_tokens(tokens) if self._onnx.trimmed else tokens
            return _normalise_array(self._onnx.encode_tokens(tokens.numpy()))
        with torch.inference_mode(), autocast(self.device, self.precision):
            return _normalise(encode_text_trimmed(self._model, tokens.to(self.device)))


def default_cache_root() -> Path:
    """Model cache used when no ``model_cache_dir`` is set (the CLI and API always set one)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assetlens"


def _normalise_array(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _normalise(features: torch.Tensor) -> np.ndarray:
    return _normalise_array(features.float().cpu().numpy())


def _pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise PrecisionError("ASSETLENS_DEVICE=cuda but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_weights(spec: ModelSpec, settings: ModelSettings) -> Path | None:
    """Find the weights file for a spec: local checkpoint, hub cache, or a hub download.

    Returns:
        The file to load, or None for seeded random weights.

    Raises:
        WeightsMissingError: Hub weights are not cached and cannot be fetched; the message names
            the missing file and the two ways to provide it.
    """
    if spec.checkpoint is not None:
        return spec.checkpoint
    if spec.pretrained is None:
        return None
    import huggingface_hub  # imported late: only real weights need it

    repo_id, filename = _hub_location(spec)
    cache_dirs = [settings.model_cache_dir, None]
    for cache_dir in cache_dirs:
        for name in (open_clip.constants.HF_SAFE_WEIGHTS_NAME, filename):
            found = huggingface_hub.try_to_load_from_cache(
                repo_id, name, cache_dir=str(cache_dir) if cache_dir else None
            )
            if isinstance(found, str):
                return Path(found)
    offline = settings.hub_offline or os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "")
    reason = "offline mode is on (ASSETLENS_HUB_OFFLINE / HF_HUB_OFFLINE)"
    if not offline:
        try:
            return Path(
                huggingface_hub.hf_hub_download(
                    repo_id, filename, cache_dir=str(settings.model_cache_dir or "") or None
                )
            )
        except Exception as exc:
            reason = f"the hub could not be reached ({type(exc).__name__})"
    looked = f"{settings.model_cache_dir} and " if settings.model_cache_dir else ""
    raise WeightsMissingError(
        f"CLIP weights for {spec.name} ({spec.arch}, {spec.pretrained}) are missing: file "
        f"{filename} of hub repo {repo_id} is not cached (looked in {looked}the default "
        f"Hugging Face cache) and {reason}. Fix: set ASSETLENS_CLIP_CHECKPOINT=/path/to/{filename} "
        f"to a local copy, or on a networked machine run `assetlens models fetch {spec.name} "
        f"--data-dir DIR` and copy DIR/models into this data dir. "
        f"For a non-semantic offline demo use ASSETLENS_CLIP_MODEL=tiny."
    )


def _hub_location(spec: ModelSpec) -> tuple[str, str]:
    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained or "")
    hub = cfg.get("hf_hub")
    if not hub:
        raise WeightsMissingError(
            f"{spec.name}: open_clip has no hub location for {spec.arch}@{spec.pretrained}; "
            f"set ASSETLENS_CLIP_CHECKPOINT=/path/to/weights"
        )
    parts = hub.strip("/").split("/")
    repo_id = "/".join(parts[:2])
    filename = "/".join(parts[2:]) or open_clip.constants.HF_WEIGHTS_NAME
    return repo_id, filename
