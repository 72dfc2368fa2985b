"""Tests of the CLIP encoder: preprocessing, embeddings, text cache, precision, device, a real-size model."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from clip_support import TEXTS, assert_unit_rows, random_image, tiny_encoder, tiny_settings
from PIL import Image

from assetlens.models.clip import ClipEncoder, prepare_image
from assetlens.models.errors import ModelError, PrecisionError
from assetlens.models.precision import cpu_supports_bf16
from assetlens.models.registry import resolve_model
from assetlens.models.settings import ModelSettings

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
    with caplog.at_level(logging.WARNING, logger="assetlens.models.clip"):
        enc.load()
        model = enc.torch_model
        enc.load()
    assert model is not None and enc.torch_model is model
    warnings = [r for r in caplog.records if r.name == "assetlens.models.clip"]
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
        ModelSettings(device="cpu", hub_offline=True, cache_dir=module_tmp / "cache", clip_precision="fp32"),
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
