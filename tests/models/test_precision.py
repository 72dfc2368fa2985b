"""Precision modes of the CLIP encoder: accuracy against fp32, refusals, ``auto``, the ONNX cache.

Every mode must embed the same real photos and texts within a cosine of 0.99 of fp32, on the
tiny model and once (module-scoped, marked slow) on the real-size ViT-B-32 architecture.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from assetlens.models.cache import onnx_dir
from assetlens.models.clip import ClipEncoder
from assetlens.models.errors import PrecisionError
from assetlens.models.onnx_towers import FORMAT
from assetlens.models.precision import (
    AUTO_ONNX_MIN_PARAMS,
    cpu_supports_bf16,
    cpu_supports_int8_dot,
    onnx_available,
    resolve_precision,
    vit_param_estimate,
)
from assetlens.models.registry import arch_config, register_tiny_config, resolve_model
from assetlens.models.settings import ModelSettings

PHOTOS = Path(__file__).parents[1] / "data" / "photos"
TEXTS = [
    "a photo of a cat",
    "",
    "an astronaut",
    "a cup of coffee on a wooden table next to an open laptop, morning light",
    " ".join(["a very long product description"] * 30),  # beyond 77 tokens: truncated
    "Straße, 東京, emoji 👟",
]
CPU_MODES = ["bf16", "int8", "onnx-int8"]
MIN_COSINE = 0.99


def settings(cache: Path, model: str = "tiny", **overrides: object) -> ModelSettings:
    values: dict[str, object] = {
        "clip_model": model,
        "device": "cpu",
        "hub_offline": True,
        "cache_dir": cache,
    }
    values.update(overrides)
    return ModelSettings(**values)  # type: ignore[arg-type]


def encoder(cache: Path, precision: str, model: str = "tiny", checkpoint: Path | None = None) -> ClipEncoder:
    return ClipEncoder(resolve_model(model, checkpoint), settings(cache, model, clip_precision=precision))


def skip_unless_supported(mode: str) -> None:
    if mode == "bf16" and not cpu_supports_bf16():
        pytest.skip("no AVX-512 BF16/AMX here (the refusal is tested in test_clip.py)")
    if mode == "onnx-int8" and not onnx_available():
        pytest.skip("onnx/onnxruntime not installed")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    images = []
    for path in sorted(PHOTOS.glob("*.jpg")):
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    assert len(images) >= 8
    return images


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("precision")


@pytest.fixture(scope="module")
def tiny_fp32(module_tmp: Path, photos: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    enc = encoder(module_tmp / "fp32", "fp32")
    return enc.encode_images(photos), enc.encode_texts(TEXTS, remember=False)


# --- accuracy of every mode against fp32 -----------------------------------------------------------


@pytest.mark.parametrize("mode", CPU_MODES)
def test_tiny_model_modes_match_fp32_on_real_photos(
    mode: str, tmp_path: Path, photos: list[Image.Image], tiny_fp32: tuple[np.ndarray, np.ndarray]
) -> None:
    skip_unless_supported(mode)
    enc = encoder(tmp_path, mode)
    images, texts = enc.encode_images(photos), enc.encode_texts(TEXTS, remember=False)
    assert enc.precision == mode
    assert images.shape == tiny_fp32[0].shape and texts.shape == tiny_fp32[1].shape
    assert np.all(cosines(images, tiny_fp32[0]) >= MIN_COSINE), cosines(images, tiny_fp32[0])
    assert np.all(cosines(texts, tiny_fp32[1]) >= MIN_COSINE), cosines(texts, tiny_fp32[1])
    # Vectors stay unit-length float32 in every mode.
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    assert images.dtype == np.float32 and texts.dtype == np.float32


@pytest.fixture(scope="module")
def vit_b_32(
    module_tmp: Path, photos: list[Image.Image]
) -> dict[str, tuple[np.ndarray, np.ndarray, ClipEncoder]]:
    """ViT-B-32@random embeddings of the photos and texts in every supported CPU mode (built once)."""
    out: dict[str, tuple[np.ndarray, np.ndarray, ClipEncoder]] = {}
    for mode in ["fp32", *CPU_MODES]:
        if (mode == "bf16" and not cpu_supports_bf16()) or (mode == "onnx-int8" and not onnx_available()):
            continue
        enc = encoder(module_tmp / "vit", mode, "ViT-B-32@random")
        out[mode] = (enc.encode_images(photos), enc.encode_texts(TEXTS, remember=False), enc)
        enc._towers = None  # keep only the vectors: four ViT-B-32 models are 2 GB
    return out


@pytest.mark.slow
@pytest.mark.parametrize("mode", CPU_MODES)
def test_real_size_modes_match_fp32(
    mode: str, vit_b_32: dict[str, tuple[np.ndarray, np.ndarray, ClipEncoder]]
) -> None:
    skip_unless_supported(mode)
    images, texts, enc = vit_b_32[mode]
    ref_images, ref_texts, ref = vit_b_32["fp32"]
    assert enc.precision == mode
    assert np.all(cosines(images, ref_images) >= MIN_COSINE), cosines(images, ref_images)
    assert np.all(cosines(texts, ref_texts) >= MIN_COSINE), cosines(texts, ref_texts)
    # The precision is not part of the model id: every mode's vectors may share one library.
    assert enc.model_id == ref.model_id == "ViT-B-32@random"


@pytest.mark.slow
def test_auto_on_the_real_size_model(
    module_tmp: Path,
    photos: list[Image.Image],
    vit_b_32: dict[str, tuple[np.ndarray, np.ndarray, ClipEncoder]],
) -> None:
    enc = encoder(module_tmp / "vit", "auto", "ViT-B-32@random")  # the same cache: no second export
    expected = "onnx-int8" if cpu_supports_int8_dot() and onnx_available() else "fp32"
    assert enc.precision == expected
    images = enc.encode_images(photos)
    assert np.all(cosines(images, vit_b_32["fp32"][0]) >= MIN_COSINE)
    if expected == "onnx-int8":
        assert enc.torch_model is None, "a cached export must load without building the PyTorch model"
        np.testing.assert_allclose(images, vit_b_32["onnx-int8"][0], atol=1e-5)


def test_auto_keeps_the_tiny_model_on_fp32(tmp_path: Path) -> None:
    # Exporting costs seconds; the tiny network costs a millisecond: auto never exports it.
    tiny = arch_config(resolve_model("tiny").arch)["vision_cfg"]
    vit = arch_config("ViT-B-32")["vision_cfg"]
    assert vit_param_estimate(tiny) < AUTO_ONNX_MIN_PARAMS <= vit_param_estimate(vit)  # type: ignore[operator]
    enc = encoder(tmp_path, "auto")
    assert enc.precision == "fp32"
    enc.load()
    assert not (tmp_path / "onnx").exists()


def test_auto_is_the_default_and_fp16_on_cuda() -> None:
    assert ModelSettings().clip_precision == "auto"
    assert resolve_precision("auto", "cuda", vit_params=10**8) == "fp16"
    assert resolve_precision("auto", "cpu", vit_params=None) == "fp32"  # ResNet/timm towers


# --- refusals --------------------------------------------------------------------------------------


def test_fp16_is_refused_on_cpu(tmp_path: Path) -> None:
    with pytest.raises(PrecisionError, match=r"fp16 runs on CUDA only"):
        encoder(tmp_path, "fp16")


@pytest.mark.parametrize("mode", ["int8", "onnx-int8"])
def test_cpu_modes_are_refused_on_cuda(mode: str) -> None:
    with pytest.raises(PrecisionError, match=rf"{mode} is a CPU mode.*ASSETLENS_DEVICE=cpu"):
        resolve_precision(mode, "cuda", vit_params=10**8)


def test_onnx_int8_is_refused_without_onnxruntime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the package were not installed
    with pytest.raises(PrecisionError, match=r"needs the onnx and onnxruntime packages.*pip install"):
        encoder(tmp_path, "onnx-int8")
    # auto quietly stays on fp32 instead.
    assert resolve_precision("auto", "cpu", vit_params=10**8) == "fp32"


def test_unknown_precision_is_rejected_with_the_valid_ones() -> None:
    with pytest.raises(ValidationError, match=r"onnx-int8"):
        ModelSettings(clip_precision="int4")  # type: ignore[arg-type]
    with pytest.raises(PrecisionError, match=r"valid: auto, fp32"):
        resolve_precision("int4", "cpu", vit_params=None)


# --- the ONNX cache --------------------------------------------------------------------------------


def _mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(directory.iterdir())}


def test_onnx_cache_is_reused_without_exporting_again(tmp_path: Path, photos: list[Image.Image]) -> None:
    skip_unless_supported("onnx-int8")
    first = encoder(tmp_path, "onnx-int8")
    vectors = first.encode_images(photos[:3])
    cache = first.onnx_cache
    assert cache.parent == tmp_path / "onnx"
    assert {p.name for p in cache.iterdir()} == {"image.onnx", "text.onnx", "meta.json"}
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["model_id"] == "assetlens-tiny@random" and meta["passed"] is True
    assert meta["image_min_cosine"] >= MIN_COSINE and meta["text_min_cosine"] >= MIN_COSINE
    before = _mtimes(cache)

    second = ClipEncoder(
        resolve_model("tiny"), settings(tmp_path, clip_precision="onnx-int8", clip_threads=1)
    )
    np.testing.assert_allclose(second.encode_images(photos[:3]), vectors, atol=1e-6)
    assert _mtimes(cache) == before, "the second load exported again"
    assert second.torch_model is None  # no PyTorch model was built either
    assert second.onnx_meta is not None and second.onnx_meta["export_s"] == meta["export_s"]


def test_the_exported_token_embedding_is_float16_and_the_towers_load_on_use(
    tmp_path: Path, photos: list[Image.Image]
) -> None:
    skip_unless_supported("onnx-int8")
    import onnx

    enc = encoder(tmp_path, "onnx-int8")
    enc.encode_texts(["a cat"])  # exports, then uses the text tower only
    text = onnx.load(str(enc.onnx_cache / "text.onnx"))
    tables = {tuple(t.dims): t.data_type for t in text.graph.initializer if len(t.dims) == 2}
    assert tables[(49408, 64)] == onnx.TensorProto.FLOAT16  # half the bytes to load per search
    assert enc.onnx_meta is not None and enc.onnx_meta["text_min_cosine"] >= MIN_COSINE

    fresh = encoder(tmp_path, "onnx-int8")
    (enc.onnx_cache / "image.onnx").write_bytes(b"truncated")  # damaged after the export
    fresh.encode_texts(["a dog"])  # a text needs no image tower: it is never opened
    damaged = r"cannot load the cached ONNX image tower .*image\.onnx.*delete"
    with pytest.raises(PrecisionError, match=damaged):
        fresh.encode_images(photos[:1])


def test_onnx_cache_follows_the_model_id(tmp_path: Path, photos: list[Image.Image]) -> None:
    skip_unless_supported("onnx-int8")
    seeded = encoder(tmp_path, "onnx-int8")
    seeded_vectors = seeded.encode_images(photos[:2])
    seeded_files = _mtimes(seeded.onnx_cache)
    # Other weights (a local checkpoint) are another model id: their own export, the first kept.
    register_tiny_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        other = open_clip.create_model("assetlens-tiny")
    weights = tmp_path / "fine-tuned.pt"
    torch.save(other.state_dict(), weights)
    tuned = encoder(tmp_path, "onnx-int8", checkpoint=weights)
    tuned_vectors = tuned.encode_images(photos[:2])
    assert tuned.model_id.startswith("assetlens-tiny@file:")
    assert tuned.onnx_cache != seeded.onnx_cache and tuned.onnx_cache.is_dir()
    assert _mtimes(seeded.onnx_cache) == seeded_files
    assert np.max(np.abs(tuned_vectors - seeded_vectors)) > 0.1, "the old export was used"
    reference = encoder(tmp_path / "ref", "fp32", checkpoint=weights).encode_images(photos[:2])
    assert np.all(cosines(tuned_vectors, reference) >= MIN_COSINE)


def test_a_cache_recorded_for_another_model_is_replaced(tmp_path: Path, photos: list[Image.Image]) -> None:
    skip_unless_supported("onnx-int8")
    cache = onnx_dir(tmp_path, "assetlens-tiny@random")
    cache.mkdir(parents=True)
    (cache / "meta.json").write_text(
        json.dumps({"model_id": "something else", "format": FORMAT, "passed": True})
    )
    (cache / "image.onnx").write_bytes(b"not a model")
    (cache / "text.onnx").write_bytes(b"not a model")
    enc = encoder(tmp_path, "onnx-int8")
    assert enc.onnx_cache == cache
    vectors = enc.encode_images(photos[:2])
    assert json.loads((cache / "meta.json").read_text())["model_id"] == "assetlens-tiny@random"
    assert (cache / "image.onnx").stat().st_size > 1000
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def _failed_verdict(cache: Path, model_id: str) -> None:
    cache.mkdir(parents=True)
    meta = {"model_id": model_id, "format": FORMAT, "passed": False,
            "image_min_cosine": 0.42, "text_min_cosine": 0.995}  # fmt: skip
    (cache / "meta.json").write_text(json.dumps(meta))


def test_an_export_that_failed_its_accuracy_check_is_refused(tmp_path: Path) -> None:
    skip_unless_supported("onnx-int8")
    _failed_verdict(onnx_dir(tmp_path, "assetlens-tiny@random"), "assetlens-tiny@random")
    with pytest.raises(PrecisionError, match=r"onnx-int8 refused.*cosine of only 0\.4200.*use fp32"):
        encoder(tmp_path, "onnx-int8").load()


@pytest.mark.slow
def test_auto_falls_back_to_fp32_when_the_export_fails_its_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if not (cpu_supports_int8_dot() and onnx_available()):
        pytest.skip("auto does not choose onnx-int8 on this machine")
    _failed_verdict(onnx_dir(tmp_path, "ViT-B-32@random"), "ViT-B-32@random")
    enc = encoder(tmp_path, "auto", "ViT-B-32@random")
    assert enc.precision == "onnx-int8"
    with caplog.at_level(logging.WARNING, logger="assetlens.models.clip"):
        enc.load()
    assert enc.precision == "fp32"
    assert any("running fp32" in r.getMessage() for r in caplog.records)
    assert enc.encode_texts(["a cat"], remember=False).shape == (1, 512)


# --- int8 specifics --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["int8", "onnx-int8"])
def test_int8_vectors_barely_depend_on_the_batch(
    mode: str, tmp_path: Path, photos: list[Image.Image]
) -> None:
    # Activations are quantised per call, so batch mates shift a vector, but only slightly.
    skip_unless_supported(mode)
    enc = encoder(tmp_path, mode)
    together = enc.encode_images(photos)
    alone = np.concatenate([enc.encode_images([im]) for im in photos])
    assert np.all(cosines(together, alone) >= 0.999)
    texts_together = enc.encode_texts(TEXTS, remember=False)
    texts_alone = np.concatenate([enc.encode_texts([t], remember=False) for t in TEXTS])
    assert np.all(cosines(texts_together, texts_alone) >= 0.999)
