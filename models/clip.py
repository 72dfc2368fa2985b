"""CLIP encoder: images and texts to L2-normalised float32 vectors.

The model loads lazily on first use. Images are prepared (resized, centre-cropped to uint8)
by :func:`prepare_image`, which callers may run in decode workers so that the inference
thread only normalises and runs the network.
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
from models.registry import RANDOM_SEED, ModelSpec, _arch_config, _register_tiny_config
from models.settings import ModelSettings

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
        settings: Device, precision, cache locations.
    """

    def __init__(self, spec: ModelSpec, settings: ModelSettings | None = None) -> None:
        self.spec = spec
        self.settings = settings or ModelSettings()
        self._model: Any = None
        self._tokenizer: Any = None
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None
        self._lock = threading.Lock()
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        vision = _arch_config(spec.arch)["vision_cfg"]
        assert isinstance(vision, dict)
        self.image_size = int(vision["image_size"])
        self.dim = spec.embed_dim
        self.device = _pick_device(self.settings.device)
        self.precision = self.settings.clip_precision
        _check_precision(self.precision, self.device)

    @property
    def model_id(self) -> str:
        """Identity of the weights (recorded with every vector)."""
        return self.spec.model_id

    def load(self) -> None:
        """Build the network and load its weights (idempotent, thread-safe)."""
        with self._lock:
            if self._model is not None:
                return
            weights = resolve_weights(self.spec, self.settings)
            _register_tiny_config()
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
            mean = tag_cfg.get("mean", cfg["mean"])
            std = tag_cfg.get("std", cfg["std"])
            self._mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 1, 3) * 255.0
            self._std = np.asarray(std, dtype=np.float32).reshape(1, 1, 1, 3) * 255.0
            self._tokenizer = open_clip.get_tokenizer(self.spec.arch)
            self._model = model
            if not self.spec.semantic:
                log.warning("CLIP model %s has random weights: results carry no meaning", self.spec.name)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Encode RGB images (any size) to an ``(N, dim)`` float32 array of unit vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.encode_prepared(np.stack([prepare_image(im, self.image_size) for im in images]))

    def encode_prepared(self, pixels: np.ndarray) -> np.ndarray:
        """Encode images already prepared by :func:`prepare_image`.

        Args:
            pixels: ``uint8`` array ``(N, size, size, 3)``.

        Returns:
            ``(N, dim)`` float32 unit vectors.
        """
        self.load()
        assert self._mean is not None and self._std is not None
        batch = (pixels.astype(np.float32) - self._mean) / self._std
        tensor = torch.from_numpy(batch.transpose(0, 3, 1, 2).copy()).to(self.device)
        with torch.inference_mode(), self._autocast():
            features = self._model.encode_image(tensor)
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
        tokens = self._tokenizer(texts).to(self.device)
        with torch.inference_mode(), self._autocast():
            return _normalise(encode_text_trimmed(self._model, tokens))

    def _autocast(self) -> Any:
        enabled = self.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)


def encode_text_trimmed(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` without the padding: the same result, several times faster.

    CLIP's text tower is causal and pools at the end-of-text token (the highest token id), so
    positions after the longest prompt's end can never influence the result; dropping them
    turns 77-token work into ~10-token work for typical queries and tag prompts. Models of
    another shape fall back to the full computation.
    """
    mask = getattr(model, "attn_mask", None)
    if not isinstance(model, open_clip.model.CLIP) or model.text_pool_type != "argmax" or mask is None:
        return model.encode_text(tokens)
    n = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :n]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:n].to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=mask[:n, :n]))
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


def _normalise(features: torch.Tensor) -> np.ndarray:
    vectors = features.float().cpu().numpy()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise PrecisionError("ASSETLENS_DEVICE=cuda but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _check_precision(precision: str, device: torch.device) -> None:
    if precision == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
        raise PrecisionError(
            "ASSETLENS_CLIP_PRECISION=bf16 needs a CPU with AVX-512 BF16 or AMX; "
            "this one has neither: use fp32"
        )


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
