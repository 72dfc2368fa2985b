"""Export of CLIP's towers to int8 ONNX models, for the ``onnx-int8`` mode (:mod:`models.onnx_towers`).

Each tower is exported from the loaded fp32 PyTorch model once per model, its matrix products
dynamically quantised to int8 (weights once, activations per call), checked against fp32 on
probe inputs, and published to the machine cache (:func:`models.cache.onnx_dir`) that
:class:`models.onnx_towers.OnnxTowers` reads.

Why these choices (measured on ViT-B-32, 2-core AVX-512 VNNI EPYC; see BENCHMARKS.md):

- Only ``MatMul`` is quantised. ORT's ``ConvInteger`` ran the 32x32 patch embedding (1% of the
  FLOPs) in 17% of the image tower's time. The patch embedding is traced as a matrix product
  instead (:class:`_ExportPatchify`), so it is quantised with the rest.
- Attention is traced from a plain implementation (:class:`_ExportAttention`, same weights):
  PyTorch's own bakes the traced sequence length into reshapes (the text graph would accept one
  length only) and emits many transposes. With it the image tower did ~15% more images per
  CPU-second; with ORT's thread spinning off, ~20% more again on a shared 2-core machine.
- ORT's transformer graph optimiser (LayerNorm/GELU fusion) made the quantised image tower
  slower here, so the exported graph is quantised as it is.
- The token embedding is stored in float16 (:func:`_halve_lookup_tables`): a CLI search loads
  the text tower in 0.12 s instead of 0.23.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from assetlens.models.cache import publish_dir, staging_dir
from assetlens.models.onnx_towers import FORMAT, OPSET, QUANTISATION, OnnxTowers, read_meta
from assetlens.models.precision import MIN_COSINE
from assetlens.models.torch_towers import TorchTowers

PROBE_TEXTS = (
    "a photo of a red sneaker on a white background",
    "",
    "quarterly sales chart 2024, blue bars",
    "a dog running on the beach at sunset, wide angle, golden hour, shallow depth of field",
)


class _ImageTower(torch.nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, towers: TorchTowers) -> None:
        super().__init__()
        self.model = towers.model
        self.register_buffer("mean", towers.mean.cpu())
        self.register_buffer("std", towers.std.cpu())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.permute(0, 3, 1, 2).float() - self.mean) / self.std
        return self.model.encode_image(x)


class _TextTower(torch.nn.Module):
    def __init__(self, towers: TorchTowers) -> None:
        super().__init__()
        self.model = towers.model
        self._forward = towers.text_forward

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._forward(self.model, tokens)


def export_towers(
    towers: TorchTowers, directory: Path, *, model_id: str, image_size: int, tokens: np.ndarray
) -> dict[str, Any]:
    """Export, quantise and check both towers of an fp32 model; write the cache directory.

    Args:
        towers: The loaded fp32 model (on CPU).
        directory: The cache entry (see :func:`models.cache.onnx_dir`); published atomically.
        model_id: Recorded in ``meta.json``.
        image_size: Input side of the image tower.
        tokens: Tokenised probe texts (``PROBE_TEXTS``), trimmed when ``towers.trimmed``.

    Returns:
        The metadata written, with ``passed`` and the measured cosines.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    start = time.perf_counter()
    with staging_dir(directory) as work:
        pixels = probe_pixels(image_size)
        image, text = _ImageTower(towers).eval(), _TextTower(towers).eval()
        token_tensor = torch.from_numpy(tokens)
        text_axes = {0: "n", 1: "length"} if towers.trimmed else {0: "n"}
        _export(image, torch.from_numpy(pixels[:2]), work / "image.fp32.onnx", "pixels", {0: "n"})
        _export(text, token_tensor[:2], work / "text.fp32.onnx", "tokens", text_axes)
        for tower in ("image", "text"):
            with _quiet_root_logger():
                quantize_dynamic(
                    work / f"{tower}.fp32.onnx",
                    work / f"{tower}.onnx",
                    op_types_to_quantize=["MatMul"],
                    weight_type=QuantType.QInt8,
                )
            (work / f"{tower}.fp32.onnx").unlink()
            _halve_lookup_tables(work / f"{tower}.onnx")
        with torch.inference_mode():
            want_images = image(torch.from_numpy(pixels)).float().numpy()
            want_texts = text(token_tensor).float().numpy()
        meta: dict[str, Any] = {
            "model_id": model_id, "format": FORMAT, "opset": OPSET, "quantisation": QUANTISATION,
            "image_size": image_size, "text_trimmed": towers.trimmed,
        }  # fmt: skip
        onnx = OnnxTowers(work, meta)
        image_cos = _min_cosine(onnx.encode_pixels(pixels), want_images)
        text_cos = _min_cosine(onnx.encode_tokens(tokens), want_texts)
        del onnx
        meta |= {
            "image_min_cosine": round(image_cos, 6),
            "text_min_cosine": round(text_cos, 6),
            "passed": min(image_cos, text_cos) >= MIN_COSINE,
            "export_s": round(time.perf_counter() - start, 1),
            "torch": torch.__version__,
            "onnxruntime": _ort_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if not meta["passed"]:  # keep the verdict, not the files: they will not be used
            for tower in ("image", "text"):
                (work / f"{tower}.onnx").unlink()
        (work / "meta.json").write_text(json.dumps(meta, indent=2))
        # Another process may finish the same export first: its entry is as good as ours.
        publish_dir(work, directory, lambda found: read_meta(found, model_id) is not None)
    return meta


def probe_pixels(size: int, count: int = 8) -> np.ndarray:
    """Deterministic photo-like test crops ``(count, size, size, 3)`` for the accuracy check.

    Smooth colour fields with detail at several scales (plain noise would not resemble the
    activations real photos produce), plus one flat grey and one hard-edged image.
    """
    rng = np.random.default_rng(0)
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        field = np.zeros((size, size, 3), np.float32)
        for cells, weight in ((2, 0.5), (8, 0.3), (32, 0.15), (size, 0.05)):
            coarse = Image.fromarray((rng.random((cells, cells, 3)) * 255).astype(np.uint8))
            field += weight * np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), np.float32)
        out[i] = np.clip(field, 0, 255).astype(np.uint8)
    out[-2] = 128
    out[-1] = 0
    out[-1, :, size // 3 : 2 * size // 3] = (255, 40, 40)
    return out


class _ExportAttention(torch.nn.Module):
    """Self-attention of a ``nn.MultiheadAttention`` (batch first, packed projections), traceable.

    PyTorch's own attention function bakes the sequence length seen while tracing into its
    reshapes, which would fix the text graph to one length. This computes the same thing with
    the same weights, with ``-1`` for the sequence axis, and with fewer transposes.
    """

    def __init__(self, mha: torch.nn.MultiheadAttention) -> None:
        super().__init__()
        self.heads, self.width = mha.num_heads, mha.embed_dim
        self.in_proj_weight, self.in_proj_bias, self.out_proj = (
            mha.in_proj_weight,
            mha.in_proj_bias,
            mha.out_proj,
        )

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:  # fmt: skip
        if k is not q or v is not q:
            raise NotImplementedError("only self-attention is exported")
        n, head = q.shape[0], self.width // self.heads
        qkv = torch.nn.functional.linear(q, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.reshape(n, -1, 3, self.heads, head).permute(2, 0, 3, 1, 4)
        scores = (qkv[0] * head**-0.5) @ qkv[1].transpose(-2, -1)
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:  # True marks a position that may not be attended
                attn_mask = torch.zeros_like(attn_mask, dtype=scores.dtype).masked_fill(attn_mask, -torch.inf)
            scores = scores + attn_mask
        out = (scores.softmax(dim=-1) @ qkv[2]).transpose(1, 2).reshape(n, -1, self.width)
        return self.out_proj(out), None


class _ExportPatchify(torch.nn.Module):
    """A ViT's patch embedding (a ``Conv2d`` whose stride is its kernel) as one matrix product.

    The same arithmetic, but ONNX Runtime quantises it with the other matrix products: as a
    float convolution it took 7% of the int8 image tower's time for 1% of its FLOPs.
    """

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        self.kh, self.kw = conv.kernel_size
        self.out = conv.out_channels
        self.weight = torch.nn.Parameter(conv.weight.detach().reshape(self.out, -1).t().contiguous())
        self.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        gh, gw = h // self.kh, w // self.kw
        patches = x.reshape(n, c, gh, self.kh, gw, self.kw).permute(0, 2, 4, 1, 3, 5)
        y = patches.reshape(n, gh * gw, -1) @ self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.transpose(1, 2).reshape(n, self.out, gh, gw)


def _export_form(child: torch.nn.Module) -> torch.nn.Module | None:
    """The traceable stand-in of a module, or None to keep it."""
    if (
        isinstance(child, torch.nn.MultiheadAttention)
        and child.batch_first
        and child._qkv_same_embed_dim
        and child.bias_k is None
        and not child.add_zero_attn
    ):
        return _ExportAttention(child)
    if (
        isinstance(child, torch.nn.Conv2d)
        and child.stride == child.kernel_size
        and child.padding == (0, 0)
        and child.dilation == (1, 1)
        and child.groups == 1
    ):
        return _ExportPatchify(child)
    return None


@contextlib.contextmanager
def _traceable_attention(model: torch.nn.Module) -> Iterator[None]:
    """Swap attention and patch embeddings for their export forms (see above), then restore."""
    swapped: list[tuple[torch.nn.Module, str, torch.nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            stand_in = _export_form(child)
            if stand_in is not None:
                setattr(parent, name, stand_in)
                swapped.append((parent, name, child))
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def _export(
    module: torch.nn.Module, example: torch.Tensor, path: Path, name: str, axes: dict[int, str]
) -> None:
    with warnings.catch_warnings(), _traceable_attention(module):
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs the
        # onnxscript package; the TorchScript one exports these graphs correctly and quickly.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[name],
            output_names=["features"],
            dynamic_axes={name: axes, "features": {0: "n"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _halve_lookup_tables(path: Path, min_size: int = 1 << 20) -> None:
    """Store big float lookup tables (the token embedding) in float16, cast back after the lookup.

    The text tower's token embedding (49 408 x 512 floats for ViT-B-32) was 72% of its int8
    file, and loading it half the time of a CLI search's model load. In float16 the file loses
    a third and the load half (0.23 -> 0.12 s), at a relative error of 2^-11 per element (int8
    with one scale for the table could lose whole rows to an outlier elsewhere). The export's
    accuracy check runs on the result.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    tables = {t.name: t for t in graph.initializer if t.data_type == TensorProto.FLOAT}
    uses = collections.Counter(name for node in graph.node for name in node.input)
    for node in list(graph.node):
        table = tables.get(node.input[0]) if node.op_type == "Gather" and node.input else None
        if table is None or uses[table.name] != 1 or np.prod(table.dims) < min_size:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(table).astype(np.float16), f"{table.name}.fp16")
        graph.initializer.remove(table)
        graph.initializer.append(half)
        looked_up = node.output[0]
        node.input[0], node.output[0] = half.name, f"{looked_up}.fp16"
        cast = helper.make_node("Cast", [node.output[0]], [looked_up], to=TensorProto.FLOAT)
        graph.node.insert(list(graph.node).index(node) + 1, cast)
    onnx.save(model, str(path))


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # The quantiser logs advice ("consider pre-processing") on the root logger on every call;
    # shape-inference pre-processing changed neither speed nor accuracy of these graphs.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float(np.min(np.sum(a * b, axis=1)))


def _ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)
