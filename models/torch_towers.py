"""CLIP's towers in PyTorch: the ``fp32``, ``bf16``, ``fp16`` and ``int8`` precision modes.

Also the fp32 source of the ``onnx-int8`` export (:mod:`models.onnx_export`). Imported only when
a PyTorch model is needed: a library whose ONNX export is cached never loads torch or open_clip.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import open_clip
import torch

from assetlens.models.errors import CheckpointError
from assetlens.models.precision import QUANT_ENGINES
from assetlens.models.registry import RANDOM_SEED, ModelSpec, register_tiny_config
from assetlens.models.settings import ModelSettings
from assetlens.models.text import can_trim, full_text_features, text_features
from assetlens.models.weights import resolve_weights


class TorchTowers:
    """Both towers of one open_clip model, in one PyTorch precision.

    Built in fp32 by :meth:`build`; :meth:`convert` then switches to another mode.

    Attributes:
        model: The open_clip model.
        trimmed: Whether :meth:`encode_tokens` takes tokens cut by :func:`models.text.trim_tokens`.
        mean, std: Per-channel normalisation on the 0..255 scale, ``(1, 3, 1, 1)`` on the device.
    """

    def __init__(self, model: Any, mean: torch.Tensor, std: torch.Tensor, device: str) -> None:
        self.model, self.mean, self.std = model, mean, std
        self.device = torch.device(device)
        self.precision = "fp32"
        self.trimmed = can_trim(model)
        # What the text tower computes: on trimmed tokens where it can, else the full 77.
        self.text_forward = text_features if self.trimmed else full_text_features

    @classmethod
    def build(cls, spec: ModelSpec, settings: ModelSettings, device: str) -> TorchTowers:
        """Build the network in fp32 and load its weights (hub cache, checkpoint or seeded random).

        Raises:
            WeightsMissingError: Hub weights are not cached and cannot be fetched.
            CheckpointError: The weights file does not fit the architecture.
        """
        weights = resolve_weights(spec, settings)
        register_tiny_config()
        # Random weights must be identical on every run and machine: seed a private RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = open_clip.create_model(spec.arch, pretrained=None)
        if weights is not None:
            try:
                open_clip.load_checkpoint(model, str(weights))
            except Exception as exc:
                raise CheckpointError(
                    f"cannot load CLIP weights from {weights} into {spec.arch}: {exc}"
                ) from exc
        model.eval().to(device)
        cfg = open_clip.get_model_preprocess_cfg(model)
        tag_cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained or "")
        mean = torch.tensor(tag_cfg.get("mean", cfg["mean"]), dtype=torch.float32) * 255.0
        std = torch.tensor(tag_cfg.get("std", cfg["std"]), dtype=torch.float32) * 255.0
        if settings.clip_threads:
            torch.set_num_threads(settings.clip_threads)
        shape = (1, 3, 1, 1)
        return cls(model, mean.reshape(shape).to(device), std.reshape(shape).to(device), device)

    def convert(self, precision: str) -> None:
        """Switch from fp32 to ``bf16``, ``fp16`` or ``int8`` (once; ``fp32`` changes nothing)."""
        if precision == "int8":
            self.model = quantize_int8(self.model)
        elif precision == "bf16":
            # bf16 weights, not autocast: autocast re-casts every weight on every call, and on
            # a 2-core AVX-512 BF16 EPYC ran ViT-B-32 slower than fp32 (15 vs 19 img/s);
            # converted weights ran at 40 img/s with the same 0.9999 cosine to fp32.
            self.model = self.model.to(torch.bfloat16)
        self.precision = precision

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Raw (unnormalised) float32 image features of ``uint8`` crops ``(N, size, size, 3)``."""
        tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.uint8))
        if self.device.type == "cuda":
            # uint8 crosses the bus (a quarter of float32's bytes) from pinned memory, so the
            # copy is asynchronous; the GPU then normalises.
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        with torch.inference_mode(), self._autocast():
            batch = (tensor.permute(0, 3, 1, 2).float() - self.mean) / self.std
            return _to_numpy(self.model.encode_image(batch.to(dtype)))

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Raw float32 text features of ``int64`` tokens (trimmed when :attr:`trimmed`)."""
        with torch.inference_mode(), self._autocast():
            return _to_numpy(self.text_forward(self.model, torch.from_numpy(tokens).to(self.device)))

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        # fp16 only: bf16 converts the weights instead (see convert).
        if self.precision == "fp16":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """PyTorch dynamic int8 quantisation of every ``nn.Linear`` (weights once, activations per call).

    open_clip's attention keeps its packed in-projection and its out-projection (a
    ``NonDynamicallyQuantizableLinear``) in float: only the MLP layers, about two thirds of the
    FLOPs, become int8, which is why this mode gains less than ``onnx-int8``.
    """
    engines = torch.backends.quantized.supported_engines
    if torch.backends.quantized.engine not in engines or torch.backends.quantized.engine == "none":
        torch.backends.quantized.engine = next(e for e in QUANT_ENGINES if e in engines)
    from torch.ao.quantization import quantize_dynamic  # deprecated upstream, still the only CPU path

    with warnings.catch_warnings():
        # Deprecation notices of torch.ao (moving to torchao, not installed here); nothing to act on.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated", category=UserWarning)
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _to_numpy(features: torch.Tensor) -> np.ndarray:
    return features.float().cpu().numpy()
