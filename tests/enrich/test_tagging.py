"""Label embeddings live in the machine cache: made once, shared by every library, never in one."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from helpers import open_library

from assetlens.enrich.tagging import Tagger
from assetlens.models.vocab import load_vocabulary


def _tagger(data_dir: Path, cache: Path) -> Tagger:
    return Tagger(open_library(data_dir, cache_dir=cache).encoder, load_vocabulary())


def test_a_new_library_reuses_the_label_embeddings_of_the_machine(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _tagger(tmp_path / "one", cache)
    labels = first.label_embeddings()
    assert first.cache_file.parent == cache / "labels" and first.cache_file.is_file()
    assert not (tmp_path / "one").exists()  # nothing of it in the library

    second = _tagger(tmp_path / "two", cache)
    np.testing.assert_array_equal(second.label_embeddings(), labels)
    assert second.encoder.torch_model is None  # loaded from the cache: the model never ran


def test_another_vocabulary_gets_its_own_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    default = _tagger(tmp_path / "one", cache)
    vocab = tmp_path / "brand.txt"
    vocab.write_text("[products]\nzorblax widget > gadget\n", encoding="utf-8")
    brand = Tagger(default.encoder, load_vocabulary(vocab, include_default=False))
    assert brand.cache_file != default.cache_file
    assert brand.label_embeddings().shape == (2, 64)


@pytest.mark.parametrize("damage", [b"", b"\x93NUMPY garbage", None])
def test_a_damaged_or_wrong_entry_is_made_again(tmp_path: Path, damage: bytes | None) -> None:
    cache = tmp_path / "cache"
    good = _tagger(tmp_path / "one", cache).label_embeddings()
    path = _tagger(tmp_path / "one", cache).cache_file
    if damage is None:
        np.save(path, np.zeros((3, 64), np.float32))  # readable, but not this vocabulary's shape
    else:
        path.write_bytes(damage)
    again = _tagger(tmp_path / "two", cache)
    np.testing.assert_allclose(again.label_embeddings(), good, atol=1e-6)
    np.testing.assert_allclose(np.load(path), good, atol=1e-6)  # and the entry repaired


def test_an_unwritable_cache_costs_time_not_the_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("a cache cannot live under a file")
    tagger = _tagger(tmp_path / "one", blocker / "cache")
    with caplog.at_level(logging.WARNING, logger="assetlens.enrich.tagging"):
        labels = tagger.label_embeddings()
    assert labels.shape == (len(tagger.tags), 64)
    assert any("not cached" in r.getMessage() and str(blocker) in r.getMessage() for r in caplog.records)
