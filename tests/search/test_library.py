"""LibraryCore: the data dir holds the library only; model files come from the machine cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ingester_for, open_library

from assetlens.models.precision import onnx_available
from assetlens.models.registry import resolve_model
from assetlens.models.settings import ModelSettings
from assetlens.models.weights import resolve_weights
from assetlens.search.library import LibraryCore
from assetlens.search.settings import SearchSettings

VIT_B_32_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


def test_the_data_dir_holds_the_library_and_the_cache_the_model_files(tmp_path: Path, photos: Path) -> None:
    if not onnx_available():
        pytest.skip("onnx/onnxruntime not installed")
    cache = tmp_path / "machine cache"
    lib = open_library(tmp_path / "data", cache_dir=cache, clip_precision="onnx-int8", device="cpu")
    report = ingester_for(lib).ingest([photos])
    lib.close()

    assert report.added > 0 and report.failed == 0
    kept = {p.name for p in (tmp_path / "data").iterdir()}
    assert "assetlens.db" in kept and not kept & {"models", "cache", "onnx", "labels"}, kept
    assert [p.name for p in (cache / "labels").iterdir()] and [p.name for p in (cache / "onnx").iterdir()]


def _fake_hub_cache(cache_dir: Path) -> Path:
    commit = "a" * 40
    repo = cache_dir / ("models--" + VIT_B_32_REPO.replace("/", "--"))
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "open_clip_pytorch_model.bin").write_bytes(b"dummy weights")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return repo / "snapshots" / commit / "open_clip_pytorch_model.bin"


def test_weights_kept_in_a_library_by_older_versions_are_still_found(tmp_path: Path) -> None:
    # Older versions fetched weights into DATA_DIR/models and told offline users to copy them
    # there: such a library still finds them offline, and nothing new is written there.
    weights = _fake_hub_cache(tmp_path / "data" / "models")
    settings = ModelSettings(hub_offline=True, cache_dir=tmp_path / "cache")
    lib = LibraryCore(SearchSettings(data_dir=tmp_path / "data"), settings)
    assert resolve_weights(resolve_model("ViT-B-32"), lib.model_settings) == weights
    assert not (tmp_path / "cache").exists()

    fresh = LibraryCore(SearchSettings(data_dir=tmp_path / "new"), ModelSettings(hub_offline=True))
    assert fresh.model_settings.extra_weights_dirs == ()
