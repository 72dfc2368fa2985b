"""Tests of the CLIP encoder: preprocessing, embeddings, text cache, checkpoints, offline errors.

Everything runs offline on the seeded tiny model; one module-scoped ViT-B-32@random encoder checks
a real-size architecture.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from models.clip import ClipEncoder, prepare_image
from models.errors import CheckpointError, ModelError, PrecisionError, WeightsMissingError
from models.precision import cpu_supports_bf16
from models.registry import register_tiny_config, resolve_model
from models.settings import ModelSettings
from models.weights import resolve_weights

PHOTOS = Path(__file__).parents[1] / "data" / "photos"
TEXTS = ["a photo of a cat", "an astronaut in a space suit", "a cup of coffee", "a rocket on the launch pad"]
VIT_B_32_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


@pytest.fixture(autouse=True)
def _offline_and_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, no Hugging Face cache outside tmp_path, no ASSETLENS_* settings from the shell."""
    for key in list(os.environ):
        if key.startswith("ASSETLENS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    # huggingface_hub reads these once at import time; the env alone would not redirect it. Its
    # offline flag is also the safety net should our code ever try a download in these tests.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def tiny_settings(tmp: Path, **overrides: object) -> ModelSettings:
    values: dict[str, object] = {
        "clip_model": "tiny",
        "device": "cpu",
        "hub_offline": True,
        "model_cache_dir": tmp / "models",
    }
    values.update(overrides)
    return ModelSettings(**values)  # type: ignore[arg-type]


def tiny_encoder(tmp: Path, checkpoint: Path | None = None, **overrides: object) -> ClipEncoder:
    return ClipEncoder(resolve_model("tiny", checkpoint=checkpoint), tiny_settings(tmp, **overrides))


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clip")


@pytest.fixture(scope="module")
def encoder(module_tmp: Path) -> ClipEncoder:
    """A loaded tiny encoder shared by tests that only read from it (its text cache is not inspected)."""
    enc = tiny_encoder(module_tmp)
    enc.load()
    return enc


@pytest.fixture(scope="module")
def photo_images() -> list[Image.Image]:
    paths = sorted(PHOTOS.glob("*.jpg"))
    assert len(paths) >= 4
    images = []
    for path in paths:
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    return images


def assert_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (n, dim)
    assert vectors.flags.c_contiguous
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def random_image(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


# --- prepare_image ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (5000, 10), (10, 5000), (7, 3), (224, 224), (640, 427)])
def test_prepare_image_gives_a_square_uint8_crop_for_any_size(size: tuple[int, int]) -> None:
    pixels = prepare_image(random_image(0, size), 224)
    assert pixels.shape == (224, 224, 3)
    assert pixels.dtype == np.uint8


def test_prepare_image_keeps_an_image_of_the_right_size_unchanged() -> None:
    image = random_image(1, (224, 224))
    np.testing.assert_array_equal(prepare_image(image, 224), np.asarray(image))


def _red_centre_blue_edges(width: int, height: int) -> Image.Image:
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[...] = (0, 0, 255)
    # The red band is a little wider than the centre square, so the crop holds only red.
    if width >= height:
        lo, hi = (width - height) // 2 - 10, (width + height) // 2 + 10
        arr[:, lo:hi] = (255, 0, 0)
    else:
        lo, hi = (height - width) // 2 - 10, (height + width) // 2 + 10
        arr[lo:hi, :] = (255, 0, 0)
    return Image.fromarray(arr)


@pytest.mark.parametrize("size", [(300, 100), (100, 300), (900, 500)])
def test_prepare_image_centre_crops(size: tuple[int, int]) -> None:
    image = _red_centre_blue_edges(*size)
    # The whole image does hold blue at its edges ...
    whole = np.asarray(image)
    assert whole[0, 0].tolist() == [0, 0, 255] and whole[-1, -1].tolist() == [0, 0, 255]
    pixels = prepare_image(image, 64).astype(int)
    # ... but the crop is red from the centre to every edge.
    assert pixels[32, 32].tolist() == [255, 0, 0]
    assert np.all(pixels[..., 0] > 200), "blue edges leaked into the centre crop"
    assert np.all(pixels[..., 2] < 55), "blue edges leaked into the centre crop"


def test_prepare_image_matches_open_clips_own_preprocessing(
    encoder: ClipEncoder, photo_images: list[Image.Image]
) -> None:
    # What the weights were trained with: open_clip's transform (resize shorter side, centre crop).
    _, _, preprocess = open_clip.create_model_and_transforms("assetlens-tiny")
    with torch.inference_mode():
        batch = torch.stack([preprocess(im) for im in photo_images])
        reference = encoder.torch_model.encode_image(batch).numpy()
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    cosine = np.sum(encoder.encode_images(photo_images) * reference, axis=1)
    assert np.all(cosine > 0.995), cosine


# --- images ----------------------------------------------------------------------------------------


def test_encode_images_returns_unit_float32_rows(
    encoder: ClipEncoder, photo_images: list[Image.Image]
) -> None:
    vectors = encoder.encode_images(photo_images)
    assert_unit_rows(vectors, len(photo_images), 64)
    assert encoder.dim == 64 and encoder.model_id == "assetlens-tiny@random"
    # Different photo_images, different vectors.
    gram = vectors @ vectors.T
    assert np.all(gram[~np.eye(len(photo_images), dtype=bool)] < 0.9999)


def test_empty_inputs_give_empty_arrays_of_the_right_width(tmp_path: Path) -> None:
    enc = tiny_encoder(tmp_path)
    images, texts = enc.encode_images([]), enc.encode_texts([])
    for empty in (images, texts):
        assert empty.shape == (0, 64) and empty.dtype == np.float32


@pytest.mark.parametrize("size", [(1, 1), (5000, 10), (10, 5000), (3, 7)])
def test_encode_images_of_odd_sizes(encoder: ClipEncoder, size: tuple[int, int]) -> None:
    assert_unit_rows(encoder.encode_images([random_image(2, size)]), 1, 64)


def test_greyscale_converted_to_rgb_encodes_like_the_equivalent_rgb(encoder: ClipEncoder) -> None:
    grey = Image.fromarray(np.tile(np.arange(0, 256, 2, dtype=np.uint8), (96, 1)), mode="L")
    vectors = encoder.encode_images([grey.convert("RGB"), Image.merge("RGB", [grey, grey, grey])])
    assert_unit_rows(vectors, 2, 64)
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_image_embeddings_do_not_depend_on_the_batch(
    encoder: ClipEncoder, photo_images: list[Image.Image]
) -> None:
    together = encoder.encode_images(photo_images[:3])
    one_by_one = np.concatenate([encoder.encode_images([im]) for im in photo_images[:3]])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_encode_prepared_equals_encode_images(encoder: ClipEncoder, photo_images: list[Image.Image]) -> None:
    pixels = np.stack([prepare_image(im, encoder.image_size) for im in photo_images[:3]])
    np.testing.assert_allclose(
        encoder.encode_prepared(pixels), encoder.encode_images(photo_images[:3]), atol=1e-6
    )


def test_two_fresh_encoders_give_identical_embeddings(
    tmp_path: Path, photo_images: list[Image.Image]
) -> None:
    # Someone else's seeding must not leak into our "random" weights.
    torch.manual_seed(12345)
    first = tiny_encoder(tmp_path)
    a_img, a_txt = first.encode_images(photo_images[:3]), first.encode_texts(TEXTS)
    torch.manual_seed(999)
    torch.rand(1000)
    second = tiny_encoder(tmp_path)
    np.testing.assert_allclose(second.encode_images(photo_images[:3]), a_img, atol=1e-6)
    np.testing.assert_allclose(second.encode_texts(TEXTS), a_txt, atol=1e-6)


def test_registry_name_and_its_model_id_load_the_same_weights(
    tmp_path: Path, encoder: ClipEncoder, photo_images: list[Image.Image]
) -> None:
    by_id = ClipEncoder(resolve_model("assetlens-tiny@random"), tiny_settings(tmp_path))
    assert by_id.model_id == encoder.model_id
    np.testing.assert_allclose(
        by_id.encode_images(photo_images[:2]), encoder.encode_images(photo_images[:2]), atol=1e-6
    )


def test_loading_does_not_disturb_the_callers_random_state(tmp_path: Path) -> None:
    torch.manual_seed(7)
    expected = torch.rand(5)
    torch.manual_seed(7)
    tiny_encoder(tmp_path).load()
    assert torch.equal(torch.rand(5), expected)


def test_loading_is_lazy_idempotent_and_warns_about_random_weights(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    enc = tiny_encoder(tmp_path)
    assert enc.torch_model is None  # constructing costs nothing
    with caplog.at_level(logging.WARNING, logger="models.clip"):
        enc.load()
        model = enc.torch_model
        enc.load()
    assert model is not None and enc.torch_model is model
    warnings = [r for r in caplog.records if r.name == "models.clip"]
    assert len(warnings) == 1 and "no meaning" in warnings[0].getMessage()


# --- texts -----------------------------------------------------------------------------------------


def test_encode_texts_returns_unit_rows_and_same_text_same_vector(tmp_path: Path) -> None:
    enc = tiny_encoder(tmp_path)
    vectors = enc.encode_texts(TEXTS)
    assert_unit_rows(vectors, len(TEXTS), 64)
    assert np.all((vectors @ vectors.T)[~np.eye(len(TEXTS), dtype=bool)] < 0.9999)
    again = enc.encode_texts([TEXTS[2], TEXTS[0], TEXTS[2]])
    np.testing.assert_array_equal(again, vectors[[2, 0, 2]])
    # Uncached encoding gives the same vectors.
    np.testing.assert_allclose(enc.encode_texts(TEXTS, remember=False), vectors, atol=1e-6)


def test_text_edge_cases_encode(encoder: ClipEncoder) -> None:
    long = " ".join(["a very long product description"] * 60)  # far beyond 77 tokens
    assert_unit_rows(encoder.encode_texts(["", long, "Straße, 東京, emoji 👟"], remember=False), 3, 64)


def test_mutating_a_result_does_not_corrupt_the_cache(tmp_path: Path) -> None:
    enc = tiny_encoder(tmp_path)
    first = enc.encode_texts(["red shoe"])
    expected = first.copy()
    first[:] = 0.0
    np.testing.assert_array_equal(enc.encode_texts(["red shoe"]), expected)


def test_text_cache_is_lru_and_bounded(tmp_path: Path) -> None:
    enc = tiny_encoder(tmp_path, text_cache_size=2)
    a = enc.encode_texts(["a"])
    enc.encode_texts(["b"])
    assert list(enc._text_cache) == ["a", "b"]
    enc.encode_texts(["a"])  # a is now the most recent
    enc.encode_texts(["c"])  # evicts b, the least recently used
    assert list(enc._text_cache) == ["a", "c"]
    np.testing.assert_array_equal(enc.encode_texts(["a"]), a)
    # One call with more distinct texts than the cache holds still answers every text.
    out = enc.encode_texts(["d", "e", "f", "d"])
    assert_unit_rows(out, 4, 64)
    np.testing.assert_array_equal(out[0], out[3])
    assert list(enc._text_cache) == ["f", "d"]


def test_remember_false_leaves_the_cache_alone(tmp_path: Path) -> None:
    enc = tiny_encoder(tmp_path, text_cache_size=2)
    enc.encode_texts(["query one", "query two"])
    enc.encode_texts([f"vocabulary prompt {i}" for i in range(10)], remember=False)
    enc.encode_texts(["query one"], remember=False)  # does not refresh its place either
    assert list(enc._text_cache) == ["query one", "query two"]


def test_concurrent_text_queries_with_a_full_cache(tmp_path: Path) -> None:
    # Several API requests at once: a cached text evicted by another thread while this one encodes
    # must still be answered.
    enc = tiny_encoder(tmp_path, text_cache_size=2)
    expected = {f"mine {i}": v for i, v in enumerate(enc.encode_texts([f"mine {i}" for i in range(4)]))}
    errors: list[BaseException] = []
    wrong: list[str] = []

    def work(i: int) -> None:
        try:
            for j in range(15):
                out = enc.encode_texts([f"mine {i}", f"thread {i} text {j}"])
                if not np.allclose(out[0], expected[f"mine {i}"], atol=1e-6):
                    wrong.append(f"mine {i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and wrong == []
    assert len(enc._text_cache) <= 2


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
    enc = ClipEncoder(
        resolve_model("ViT-B-32"), ModelSettings(hub_offline=True, model_cache_dir=tmp_path / "models")
    )
    with pytest.raises(WeightsMissingError) as info:
        enc.load()
    message = str(info.value)
    _assert_says_how_to_fix(message)
    assert "offline mode is on" in message
    assert str(tmp_path / "models") in message  # where it looked


def test_missing_hub_weights_with_hf_hub_offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = ClipEncoder(
        resolve_model("ViT-B-32"), ModelSettings(hub_offline=False, model_cache_dir=tmp_path / "models")
    )
    with pytest.raises(WeightsMissingError) as info:
        enc.encode_texts(["a cat"])
    _assert_says_how_to_fix(str(info.value))
    assert "offline mode is on" in str(info.value)
    assert isinstance(info.value, ModelError)


def test_random_and_checkpoint_specs_never_need_the_hub(tmp_path: Path) -> None:
    settings = ModelSettings(hub_offline=True, model_cache_dir=tmp_path / "models")
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


def test_weights_in_the_model_cache_dir_are_found_offline(tmp_path: Path) -> None:
    snapshot = _fake_hub_cache(tmp_path / "models", ["open_clip_pytorch_model.bin"])
    settings = ModelSettings(hub_offline=True, model_cache_dir=tmp_path / "models")
    assert resolve_weights(resolve_model("ViT-B-32"), settings) == snapshot / "open_clip_pytorch_model.bin"


def test_weights_in_the_default_hf_cache_are_found_offline(tmp_path: Path) -> None:
    snapshot = _fake_hub_cache(tmp_path / "hf" / "hub", ["open_clip_pytorch_model.bin"])
    settings = ModelSettings(hub_offline=True, model_cache_dir=tmp_path / "empty models dir")
    assert resolve_weights(resolve_model("ViT-B-32"), settings) == snapshot / "open_clip_pytorch_model.bin"


def test_cached_safetensors_are_preferred(tmp_path: Path) -> None:
    snapshot = _fake_hub_cache(
        tmp_path / "models", ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"]
    )
    settings = ModelSettings(hub_offline=True, model_cache_dir=tmp_path / "models")
    assert resolve_weights(resolve_model("ViT-B-32"), settings) == snapshot / "open_clip_model.safetensors"


def test_cache_of_another_model_does_not_count(tmp_path: Path) -> None:
    _fake_hub_cache(tmp_path / "models", ["open_clip_pytorch_model.bin"])
    settings = ModelSettings(hub_offline=True, model_cache_dir=tmp_path / "models")
    with pytest.raises(WeightsMissingError, match="laion/CLIP-ViT-B-16-laion2B-s34B-b88K"):
        resolve_weights(resolve_model("ViT-B-16"), settings)


# --- precision and device --------------------------------------------------------------------------


def test_bf16_matches_fp32_or_is_refused(
    tmp_path: Path, encoder: ClipEncoder, photo_images: list[Image.Image]
) -> None:
    if not cpu_supports_bf16():
        with pytest.raises(PrecisionError, match="fp32"):
            tiny_encoder(tmp_path, clip_precision="bf16")
        return
    bf16 = tiny_encoder(tmp_path, clip_precision="bf16")
    assert bf16.precision == "bf16"
    images, texts = bf16.encode_images(photo_images), bf16.encode_texts(TEXTS)
    assert_unit_rows(images, len(photo_images), 64)
    assert_unit_rows(texts, len(TEXTS), 64)
    assert np.all(np.sum(images * encoder.encode_images(photo_images), axis=1) >= 0.99)
    assert np.all(np.sum(texts * encoder.encode_texts(TEXTS, remember=False), axis=1) >= 0.99)


def test_cuda_without_cuda_is_a_clear_error(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError, match=r"ASSETLENS_DEVICE=cuda.*no CUDA device"):
        tiny_encoder(tmp_path, device="cuda")


def test_auto_and_cpu_devices(tmp_path: Path) -> None:
    assert tiny_encoder(tmp_path, device="cpu").device == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert tiny_encoder(tmp_path, device="auto").device == expected


# --- a real-size architecture (built once: a few seconds) ------------------------------------------


@pytest.fixture(scope="module")
def vit_b_32_random(module_tmp: Path) -> ClipEncoder:
    # The reference precision: tests/models/test_precision.py covers the other modes (and
    # ``auto``, which exports this architecture to ONNX on CPUs with VNNI) on the same network.
    enc = ClipEncoder(
        resolve_model("ViT-B-32@random"),
        ModelSettings(
            device="cpu", hub_offline=True, model_cache_dir=module_tmp / "models", clip_precision="fp32"
        ),
    )
    enc.load()
    return enc


def test_real_size_architecture_keeps_the_contract(
    vit_b_32_random: ClipEncoder, photo_images: list[Image.Image]
) -> None:
    enc = vit_b_32_random
    assert (enc.dim, enc.image_size, enc.model_id) == (512, 224, "ViT-B-32@random")
    assert enc.spec.semantic is False
    assert_unit_rows(enc.encode_images([photo_images[0], random_image(4, (50, 10))]), 2, 512)
    assert_unit_rows(enc.encode_texts(TEXTS[:2], remember=False), 2, 512)
