"""Numeric precision of CLIP inference: which modes this machine supports and what ``auto`` means.

Modes (``ASSETLENS_CLIP_PRECISION``):

- ``fp32``: PyTorch, float32. The reference; supported everywhere.
- ``bf16``: PyTorch with the weights in bfloat16. CPUs with AVX-512 BF16 or AMX, or CUDA.
- ``fp16``: PyTorch autocast to float16. CUDA only.
- ``int8``: PyTorch dynamic quantisation of the ``Linear`` layers (weights int8, activations
  quantised per batch). CPUs with a quantised engine (x86/fbgemm, or qnnpack on Arm).
- ``onnx-int8``: both towers exported to ONNX once per model, their matrix products dynamically
  quantised to int8, run by ONNX Runtime (see :mod:`models.onnx_export`). CPU only; needs the
  ``onnx`` and ``onnxruntime`` packages.
- ``auto`` (the default): ``fp16`` on CUDA; on a CPU with int8 dot-product instructions
  (AVX-512 VNNI, AVX-VNNI or AMX) ``onnx-int8`` for ViT towers big enough for it to pay off,
  when it passes the accuracy check (:data:`MIN_COSINE` to fp32); ``fp32`` everywhere else.

Every mode computes the same model: the model id (recorded with each vector) does not depend on
the precision, and a mode is only used when its embeddings keep a cosine of at least
:data:`MIN_COSINE` to fp32's, so vectors of different modes stay comparable in one library.
"""

from __future__ import annotations

import functools
import importlib.util
import platform
from pathlib import Path
from typing import Any, Literal, get_args

from assetlens.models.errors import PrecisionError

Precision = Literal["auto", "fp32", "bf16", "fp16", "int8", "onnx-int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
MIN_COSINE = 0.99
"""Least cosine between a mode's embeddings and fp32's for the mode to be used."""

# Below this the network costs about a millisecond per batch: a one-off ONNX export (seconds)
# would never pay for itself, so ``auto`` keeps such models (the tiny test model) on fp32.
AUTO_ONNX_MIN_PARAMS = 5_000_000
_INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
QUANT_ENGINES = ("x86", "fbgemm", "qnnpack")
"""PyTorch's quantised CPU engines the ``int8`` mode can run on, in order of preference."""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """Instruction-set flags of this CPU (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    info = Path("/proc/cpuinfo")
    try:
        text = info.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    import torch  # imported late: deciding on other modes must not load torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_supports_int8_dot() -> bool:
    """True when this CPU has int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX).

    Without them int8 matrix products are barely faster than float32 ones on x86, so ``auto``
    does not pick an int8 mode (an explicit one still runs).
    """
    return bool(cpu_flags() & _INT8_DOT_FLAGS) and platform.machine().lower() in ("x86_64", "amd64")


def onnx_available() -> bool:
    """True when the packages the ``onnx-int8`` mode needs are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def resolve_precision(requested: str, device: str, *, vit_params: int | None) -> str:
    """The mode to run: ``auto`` resolved, an explicit mode checked against this machine.

    Args:
        requested: ``ASSETLENS_CLIP_PRECISION``.
        device: Where the model runs: ``cpu`` or ``cuda``.
        vit_params: Rough parameter count of the image tower when it is a plain ViT (the only
            kind ``auto`` exports to ONNX), else None.

    Returns:
        A concrete mode (never ``auto``). ``onnx-int8`` may still fall back to ``fp32`` when it
        was chosen by ``auto`` and fails its accuracy check at load time.

    Raises:
        PrecisionError: The mode is unknown or unsupported here; the message says what to use.
    """
    if requested not in PRECISIONS:
        raise PrecisionError(
            f"unknown ASSETLENS_CLIP_PRECISION={requested!r}; valid: {', '.join(PRECISIONS)}"
        )
    cuda = device == "cuda"
    if requested == "auto":
        if cuda:
            return "fp16"
        big_vit = vit_params is not None and vit_params >= AUTO_ONNX_MIN_PARAMS
        return "onnx-int8" if big_vit and cpu_supports_int8_dot() and onnx_available() else "fp32"
    if requested == "bf16" and not cuda and not cpu_supports_bf16():
        raise PrecisionError(
            "ASSETLENS_CLIP_PRECISION=bf16 needs a CPU with AVX-512 BF16 or AMX; "
            "this one has neither: use fp32 (or auto)"
        )
    if requested == "fp16" and not cuda:
        raise PrecisionError(
            "ASSETLENS_CLIP_PRECISION=fp16 runs on CUDA only (CPUs have no fast float16 matrix "
            "products): use auto, fp32, bf16, int8 or onnx-int8 on CPU"
        )
    if requested in ("int8", "onnx-int8") and cuda:
        raise PrecisionError(
            f"ASSETLENS_CLIP_PRECISION={requested} is a CPU mode: on CUDA use fp16, bf16, fp32 or "
            f"auto, or set ASSETLENS_DEVICE=cpu"
        )
    if requested == "int8" and not _torch_quantized_engine():
        raise PrecisionError(
            "ASSETLENS_CLIP_PRECISION=int8 needs a PyTorch build with a quantised CPU engine "
            "(fbgemm/x86 or qnnpack); this one has none: use fp32 or onnx-int8"
        )
    if requested == "onnx-int8" and not onnx_available():
        raise PrecisionError(
            "ASSETLENS_CLIP_PRECISION=onnx-int8 needs the onnx and onnxruntime packages: "
            "pip install onnx onnxruntime (or use fp32 / int8)"
        )
    return requested


def vit_param_estimate(vision_cfg: dict[str, Any]) -> int | None:
    """Rough parameter count of a plain ViT image tower from its open_clip config, else None."""
    layers, width = vision_cfg.get("layers"), vision_cfg.get("width")
    if vision_cfg.get("timm_model_name") or not isinstance(layers, int) or not isinstance(width, int):
        return None  # ResNet (layers is a list) or a timm tower: not what auto was measured on
    return 12 * layers * width * width  # attention (4 W^2) + MLP (8 W^2) per block


def _torch_quantized_engine() -> bool:
    import torch

    engines = torch.backends.quantized.supported_engines
    has_api = importlib.util.find_spec("torch.ao.quantization") is not None
    return has_api and any(e in engines for e in QUANT_ENGINES)
