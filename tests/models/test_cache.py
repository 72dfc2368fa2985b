"""The machine-wide cache: keys, atomic publication, and two real processes creating one entry."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from assetlens.models.cache import (
    entry_key,
    hub_dir,
    labels_file,
    onnx_dir,
    publish_dir,
    publish_file,
    staging_dir,
)
from assetlens.models.onnx_towers import read_meta
from assetlens.models.precision import onnx_available


def test_keys_are_stable_and_change_with_every_part(tmp_path: Path) -> None:
    assert onnx_dir(tmp_path, "ViT-B-32@random") == onnx_dir(tmp_path, "ViT-B-32@random")
    assert onnx_dir(tmp_path, "ViT-B-32@random") != onnx_dir(tmp_path, "ViT-B-16@random")
    assert onnx_dir(tmp_path, "ViT-B-32@random").name.startswith("ViT-B-32_random-")  # readable
    assert onnx_dir(tmp_path, "a/../../b").parent == tmp_path / "onnx"  # ids never escape the cache
    base = labels_file(tmp_path, "m@x", "digest", {"templates": ["a {}"]})
    assert base == labels_file(tmp_path, "m@x", "digest", {"templates": ["a {}"]})
    assert base.parent == tmp_path / "labels" and base.suffix == ".npy"
    others = [
        labels_file(tmp_path, "m@y", "digest", {"templates": ["a {}"]}),
        labels_file(tmp_path, "m@x", "other digest", {"templates": ["a {}"]}),
        labels_file(tmp_path, "m@x", "digest", {"templates": ["an {}"]}),
    ]
    assert len({base, *others}) == 4
    assert hub_dir(tmp_path) == tmp_path / "hub"
    assert entry_key("a", 1) != entry_key("a", "1")


def test_keys_change_with_the_versions_that_make_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (onnx_dir(tmp_path, "m@random"), labels_file(tmp_path, "m@random", "d", None))
    real = importlib.metadata.version

    def upgraded(name: str) -> str:
        return "99.0" if name in ("onnxruntime", "open_clip_torch") else real(name)

    monkeypatch.setattr(importlib.metadata, "version", upgraded)
    after = (onnx_dir(tmp_path, "m@random"), labels_file(tmp_path, "m@random", "d", None))
    assert after[0] != before[0] and after[1] != before[1]


def test_publish_file_replaces_whole_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "entry.bin"
    publish_file(target, lambda f: f.write(b"first"))
    publish_file(target, lambda f: f.write(b"second"))
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o644  # other users of the machine can read it

    def half_then_fail(f: object) -> None:
        f.write(b"half")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        publish_file(target, half_then_fail)
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["entry.bin"]


def test_publish_file_into_an_unwritable_place_raises_oserror(tmp_path: Path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        publish_file(blocker / "labels" / "x.npy", lambda f: f.write(b"x"))


def _valid(directory: Path) -> bool:
    return (directory / "done").is_file()


def test_publish_dir_keeps_a_valid_entry_and_replaces_an_invalid_one(tmp_path: Path) -> None:
    target = tmp_path / "onnx" / "entry"
    with staging_dir(target) as work:
        (work / "done").write_text("mine")
        publish_dir(work, target, _valid)
    assert (target / "done").read_text() == "mine"

    with staging_dir(target) as work:  # another process finishing the same entry later
        (work / "done").write_text("theirs")
        publish_dir(work, target, _valid)
    assert (target / "done").read_text() == "mine"

    (target / "done").unlink()  # damaged: replaced by the next complete one
    with staging_dir(target) as work:
        (work / "done").write_text("new")
        publish_dir(work, target, _valid)
    assert (target / "done").read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["entry"]  # no staging debris


def test_a_failed_build_leaves_no_entry_and_no_debris(tmp_path: Path) -> None:
    target = tmp_path / "onnx" / "entry"
    with pytest.raises(RuntimeError), staging_dir(target) as work:
        (work / "half").write_text("x")
        raise RuntimeError("export crashed")
    assert list(target.parent.iterdir()) == []


# Builds the tiny model's int8 ONNX export and the default vocabulary's label embeddings in a
# cache folder, starting when the file named by argv[2] appears (so two copies start together).
_CREATE = """
import json, sys, time
from pathlib import Path
from assetlens.enrich.tagging import Tagger
from assetlens.models.clip import ClipEncoder
from assetlens.models.registry import resolve_model
from assetlens.models.settings import ModelSettings
from assetlens.models.vocab import load_vocabulary
cache, go = Path(sys.argv[1]), Path(sys.argv[2])
settings = ModelSettings(cache_dir=cache, clip_precision="onnx-int8", device="cpu", clip_threads=1)
encoder = ClipEncoder(resolve_model("tiny"), settings)
while not go.exists():
    time.sleep(0.01)
labels = Tagger(encoder, load_vocabulary()).label_embeddings()
print(json.dumps({"onnx": str(encoder.onnx_cache), "labels": labels[:3].tolist()}))
"""


@pytest.mark.slow
def test_two_processes_creating_the_same_entries_at_once_both_succeed(tmp_path: Path) -> None:
    if not onnx_available():
        pytest.skip("onnx/onnxruntime not installed")
    cache, go = tmp_path / "cache", tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", _CREATE, str(cache), str(go)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen(command, env=env, **pipes) for _ in range(2)]  # type: ignore[call-overload]
    time.sleep(2.0)  # both processes imported and waiting
    go.touch()
    outputs = [proc.communicate(timeout=600) for proc in procs]

    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "preparing the int8 ONNX version" in err  # both raced to export: neither waited
    results = [json.loads(out.splitlines()[-1]) for out, _ in outputs]
    assert results[0]["onnx"] == results[1]["onnx"]
    entry = Path(results[0]["onnx"])
    meta = read_meta(entry, "assetlens-tiny@random")
    assert meta is not None and meta["passed"] is True
    assert sorted(p.name for p in entry.iterdir()) == ["image.onnx", "meta.json", "text.onnx"]
    (labels,) = (cache / "labels").iterdir()
    stored = np.load(labels)
    assert stored.dtype == np.float32 and stored.shape[1] == 64
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)
    for result in results:  # each process's own labels are what the cache holds
        np.testing.assert_allclose(result["labels"], stored[:3], atol=1e-3)
    leftovers = [p.name for folder in (cache / "onnx", cache / "labels") for p in folder.iterdir()]
    assert not [name for name in leftovers if name.startswith(".")], leftovers  # no temp files
