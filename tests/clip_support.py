"""Helpers of the CLIP model tests (tests/models): the tiny encoder and its settings, vector checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from assetlens.models.clip import ClipEncoder
from assetlens.models.registry import resolve_model
from assetlens.models.settings import ModelSettings

TEXTS = ["a photo of a cat", "an astronaut in a space suit", "a cup of coffee", "a rocket on the launch pad"]


def tiny_settings(tmp: Path, **overrides: object) -> ModelSettings:
    values: dict[str, object] = {
        "clip_model": "tiny",
        "device": "cpu",
        "hub_offline": True,
        "cache_dir": tmp / "cache",
    }
    values.update(overrides)
    return ModelSettings(**values)  # type: ignore[arg-type]


def tiny_encoder(tmp: Path, checkpoint: Path | None = None, **overrides: object) -> ClipEncoder:
    return ClipEncoder(resolve_model("tiny", checkpoint=checkpoint), tiny_settings(tmp, **overrides))


def assert_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (n, dim)
    assert vectors.flags.c_contiguous
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def random_image(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
