"""Tests of weight resolution: local checkpoints, hub cache layouts, offline errors, refused files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from clip_support import TEXTS, assert_unit_rows, random_image, tiny_encoder
from PIL import Image
from safetensors.torch import save_file

from assetlens.models.clip import ClipEncoder, prepare_image
from assetlens.models.errors import CheckpointError, ModelError, WeightsMissingError
from assetlens.models.registry import register_tiny_config, resolve_model
from assetlens.models.settings import ModelSettings
from assetlens.models.weights import resolve_weights

VIT_B_32_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


# --- local checkpoints -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_model() -> torch.nn.Module:
    """The tiny architecture with weights other than our seeded ones (as if fine-tuned)."""
    register_tiny_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        model = open_clip.create_model("assetlens-tiny")
    return model.eval()


@pytest.fixture(scope="module")
def checkpoints(module_tmp: Path, other_model: torch.nn.Module) -> dict[str, Path]:
    state = other_model.state_dict()
    pt = module_tmp / "my weights ü.pt"
    torch.save(state, pt)
    st = module_tmp / "my weights ü.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    # What open_clip's training script writes: a dict with the state under "state_dict", and
    # keys prefixed "module." by DistributedDataParallel.
    training = module_tmp / "epoch_3.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, training)
    return {"pt": pt, "safetensors": st, "training": training}


def _direct_embeddings(
    model: torch.nn.Module, images: list[Image.Image], texts: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    pixels = np.stack([prepare_image(im, 224) for im in images])
    batch = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    with torch.inference_mode():
        img = model.encode_image(batch).numpy()
        txt = model.encode_text(open_clip.get_tokenizer("assetlens-tiny")(texts)).numpy()
    return (
        img / np.linalg.norm(img, axis=1, keepdims=True),
        txt / np.linalg.norm(txt, axis=1, keepdims=True),
    )


@pytest.mark.parametrize("kind", ["pt", "safetensors", "training"])
def test_checkpoint_weights_are_the_ones_used(
    kind: str,
    tmp_path: Path,
    checkpoints: dict[str, Path],
    other_model: torch.nn.Module,
    encoder: ClipEncoder,
    photo_images: list[Image.Image],
) -> None:
    path = checkpoints[kind]
    enc = tiny_encoder(tmp_path, checkpoint=path)
    assert enc.model_id.startswith("assetlens-tiny@file:")
    assert enc.spec.semantic is True
    images, texts = enc.encode_images(photo_images[:2]), enc.encode_texts(TEXTS)
    assert_unit_rows(images, 2, 64)
    want_images, want_texts = _direct_embeddings(other_model, photo_images[:2], TEXTS)
    np.testing.assert_allclose(images, want_images, atol=1e-5)
    np.testing.assert_allclose(texts, want_texts, atol=1e-5)
    # ... and not our seeded default weights.
    seeded_images, seeded_texts = (
        encoder.encode_images(photo_images[:2]),
        encoder.encode_texts(TEXTS, remember=False),
    )
    assert np.max(np.abs(images - seeded_images)) > 0.1
    assert np.max(np.abs(texts - seeded_texts)) > 0.1


def test_two_files_with_the_same_weights_embed_alike_but_keep_their_own_ids(
    tmp_path: Path, checkpoints: dict[str, Path], photo_images: list[Image.Image]
) -> None:
    pt = tiny_encoder(tmp_path, checkpoint=checkpoints["pt"])
    st = tiny_encoder(tmp_path, checkpoint=checkpoints["safetensors"])
    np.testing.assert_allclose(
        pt.encode_images(photo_images[:2]), st.encode_images(photo_images[:2]), atol=1e-6
    )
    assert pt.model_id != st.model_id


def test_corrupt_checkpoint_is_reported_on_load(tmp_path: Path) -> None:
    for name in ("broken ü.pt", "broken.safetensors"):
        path = tmp_path / name
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        enc = tiny_encoder(tmp_path, checkpoint=path)
        with pytest.raises(CheckpointError) as info:
            enc.encode_texts(["x"])
        assert str(path) in str(info.value)
        assert "assetlens-tiny" in str(info.value)


def test_checkpoint_of_another_architecture_is_refused(tmp_path: Path, other_model: torch.nn.Module) -> None:
    state = dict(other_model.state_dict())
    # A 32-d model: projections of another shape.
    state["text_projection"] = torch.zeros(64, 32)
    state["visual.proj"] = torch.zeros(64, 32)
    wrong = tmp_path / "wrong shape.pt"
    torch.save(state, wrong)
    with pytest.raises(CheckpointError) as info:
        tiny_encoder(tmp_path, checkpoint=wrong).encode_images([random_image(3, (32, 32))])
    assert str(wrong) in str(info.value) and "text_projection" in str(info.value)


def test_checkpoint_missing_weights_is_refused(tmp_path: Path, other_model: torch.nn.Module) -> None:
    state = {k: v for k, v in other_model.state_dict().items() if not k.startswith("visual.")}
    partial = tmp_path / "text tower only.pt"
    torch.save(state, partial)
    with pytest.raises(CheckpointError, match="visual"):
        tiny_encoder(tmp_path, checkpoint=partial).load()


def test_failed_load_can_be_retried_after_fixing_the_file(
    tmp_path: Path, checkpoints: dict[str, Path]
) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(b"not yet written")
    enc = tiny_encoder(tmp_path, checkpoint=path)
    with pytest.raises(CheckpointError):
        enc.load()
    path.write_bytes(checkpoints["pt"].read_bytes())
    enc.load()
    assert_unit_rows(enc.encode_texts(["ok"]), 1, 64)


# --- hub weights, offline --------------------------------------------------------------------------


def _assert_says_how_to_fix(message: str) -> None:
    for needed in (
        "open_clip_pytorch_model.bin",
        VIT_B_32_REPO,
        "ASSETLENS_CLIP_CHECKPOINT",
        "assetlens models fetch",
    ):
        assert needed in message, f"{needed!r} missing from: {message}"


def test_missing_hub_weights_with_hub_offline_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the setting alone must keep us off the network
    settings = ModelSettings(hub_offline=True, cache_dir=tmp_path / "cache")
    enc = ClipEncoder(resolve_model("ViT-B-32"), settings)
    with pytest.raises(WeightsMissingError) as info:
        enc.load()
    message = str(info.value)
    _assert_says_how_to_fix(message)
    assert "offline mode is on" in message
    assert str(tmp_path / "cache" / "hub") in message  # where it looked, and where to copy the fetch


def test_missing_hub_weights_with_hf_hub_offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = ModelSettings(hub_offline=False, cache_dir=tmp_path / "cache")
    enc = ClipEncoder(resolve_model("ViT-B-32"), settings)
    with pytest.raises(WeightsMissingError) as info:
        enc.encode_texts(["a cat"])
    _assert_says_how_to_fix(str(info.value))
    assert "offline mode is on" in str(info.value)
    assert isinstance(info.value, ModelError)


def test_random_and_checkpoint_specs_never_need_the_hub(tmp_path: Path) -> None:
    settings = ModelSettings(hub_offline=True, cache_dir=tmp_path / "cache")
    assert resolve_weights(resolve_model("tiny"), settings) is None
    assert resolve_weights(resolve_model("ViT-B-32@random"), settings) is None
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"w")
    assert resolve_weights(resolve_model("ViT-B-32", checkpoint=weights), settings) == weights


def _fake_hub_cache(cache_dir: Path, filenames: list[str], commit: str = "a" * 40) -> Path:
    repo = cache_dir / ("models--" + VIT_B_32_REPO.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in filenames:
        (snapshot / name).write_bytes(b"dummy weights")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_weights_in_the_machine_cache_are_found_offline(tmp_path: Path) -> None:
    snapshot = _fake_hub_cache(tmp_path / "cache" / "hub", ["open_clip_pytorch_model.bin"])
    settings = ModelSettings(hub_offline=True, cache_dir=tmp_path / "cache")
    assert resolve_weights(resolve_model("ViT-B-32"), settings) == snapshot / "open_clip_pytorch_model.bin"


def test_machine_cache_defaults_to_the_xdg_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASSETLENS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ModelSettings().cache_dir == tmp_path / "xdg" / "assetlens"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ModelSettings().cache_dir == tmp_path / "home" / ".cache" / "assetlens"
    monkeypatch.setenv("ASSETLENS_CACHE_DIR", str(tmp_path / "mine"))
    assert ModelSettings().cache_dir == tmp_path / "mine"


def test_weights_in_the_default_hf_cache_are_found_offline(tmp_path: Path) -> None:
    snapshot = _fake_hub_cache(tmp_path / "hf" / "hub", ["open_clip_pytorch_model.bin"])
    settings = ModelSettings(hub_offline=True, cache_dir=tmp_path / "empty cache dir")
    assert resolve_weights(resolve_model("ViT-B-32"), settings) == snapshot / "open_clip_pytorch_model.bin"


def test_cached_safetensors_are_preferred(tmp_path: Path) -> None:
    snapshot = _fake_hub_cache(
        tmp_path / "cache" / "hub", ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"]
    )
    settings = ModelSettings(hub_offline=True, cache_dir=tmp_path / "cache")
    assert resolve_weights(resolve_model("ViT-B-32"), settings) == snapshot / "open_clip_model.safetensors"


def test_cache_of_another_model_does_not_count(tmp_path: Path) -> None:
    _fake_hub_cache(tmp_path / "cache" / "hub", ["open_clip_pytorch_model.bin"])
    settings = ModelSettings(hub_offline=True, cache_dir=tmp_path / "cache")
    with pytest.raises(WeightsMissingError, match="laion/CLIP-ViT-B-16-laion2B-s34B-b88K"):
        resolve_weights(resolve_model("ViT-B-16"), settings)
