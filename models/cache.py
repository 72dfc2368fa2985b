"""The machine-wide cache: one-off model work, done once per machine and shared by every library.

A library (data dir) holds only the library. What depends on the model alone lives here, under
``ASSETLENS_CACHE_DIR`` (default ``$XDG_CACHE_HOME/assetlens``, else ``~/.cache/assetlens``)::

    hub/                      Hugging Face hub cache: downloaded weights, in the hub's own layout
    onnx/<model>-<key>/       int8 ONNX towers of one model: image.onnx, text.onnx, meta.json
    labels/<key>.npy          label embeddings of one model, vocabulary and prompt set

Keys are digests of everything that changes an entry's bytes (:func:`entry_key`): the model id,
the vocabulary digest, our own format versions, and the versions of the packages that compute
the entry (:func:`package_versions`). A new version makes a new entry rather than reusing one
that might differ; old entries are left for the user to delete.

Entries are published atomically, as the hub publishes its blobs: a file is written under a
temporary name beside its target and renamed (:func:`publish_file`); a directory is built
under a temporary name and renamed (:func:`publish_dir`). Readers see an entry whole or not at
all, and two processes creating the same entry at once both succeed: the last rename wins a
file, the first wins a directory, and both results are equally valid.

Libraries made before this cache kept weights in ``DATA_DIR/models`` and derived files in
``DATA_DIR/models/onnx`` and ``DATA_DIR/cache``. Weights there are still read (see
:attr:`models.settings.ModelSettings.extra_weights_dirs`): offline they cannot be fetched
again. The derived files are ignored and rebuilt here once per machine; they can be deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "default_cache_dir",
    "entry_key",
    "hub_dir",
    "labels_file",
    "onnx_dir",
    "package_versions",
    "publish_dir",
    "publish_file",
]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/assetlens``, else ``~/.cache/assetlens`` (read when settings are made)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assetlens"


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of distributions, from their metadata (imports none of them).

    A missing distribution reads as ``"none"``: an entry made without it is keyed apart.
    """
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "none"
    return found


def entry_key(*parts: object) -> str:
    """A short, exact digest of JSON-serialisable parts (16 hex digits)."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def hub_dir(root: Path) -> Path:
    """The Hugging Face hub cache of downloaded weights."""
    return root / "hub"


def onnx_dir(root: Path, model_id: str) -> Path:
    """The directory of one model's int8 ONNX towers (see :mod:`models.onnx_export`).

    Keyed by the export's own format (opset, quantisation, format version) and the versions of
    the packages that build it: the model code (open_clip), the tracer (torch) and the
    quantiser (onnx, onnxruntime). The name starts with the model id, for people.
    """
    from assetlens.models.onnx_towers import FORMAT, OPSET, QUANTISATION  # the format's own module

    versions = package_versions("torch", "open_clip_torch", "onnx", "onnxruntime")
    key = entry_key("onnx", model_id, OPSET, QUANTISATION, FORMAT, versions)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[:80]
    return root / "onnx" / f"{slug}-{key}"


def labels_file(root: Path, model_id: str, vocabulary_digest: str, recipe: object) -> Path:
    """The ``.npy`` file of one model's label embeddings of one vocabulary.

    Keyed by model, vocabulary and ``recipe`` (the caller's prompt templates and format
    version, JSON-serialisable), and by the versions that decide the
    network (open_clip, and torch's seeded initialisation of random-weight models) and the
    tokens (ftfy and regex clean and split the text). Not by precision: every mode computes the
    same network within a cosine of 0.99 (:mod:`models.precision`), and so do its labels.
    """
    versions = package_versions("open_clip_torch", "torch", "ftfy", "regex")
    key = entry_key("labels", model_id, vocabulary_digest, recipe, versions)
    return root / "labels" / f"{key}.npy"


def publish_file(target: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``target`` atomically: ``write`` fills a temporary file beside it, then it is renamed.

    Args:
        target: The entry's path; its folder is created.
        write: Writes the content to the binary file object it is given.

    Raises:
        OSError: The cache cannot be written (read-only, full disk); nothing is left behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the entry from the machine's other users
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A new empty directory beside ``target`` to build an entry in; removed on leaving.

    Pass it to :func:`publish_dir` before leaving to make it the entry.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    work.chmod(0o755)  # as above: mkdtemp's 0700 would hide it
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish_dir(work: Path, target: Path, is_valid: Callable[[Path], bool]) -> None:
    """Rename a built directory to ``target`` atomically.

    When ``target`` exists already, a valid one (another process finished the same entry
    first) is kept and ``work`` is left for :func:`staging_dir` to remove; an invalid one (a
    crash of a pre-atomic version, a format from elsewhere) is moved aside and replaced.

    Args:
        work: The complete directory, made by :func:`staging_dir` beside ``target``.
        target: The entry's path.
        is_valid: Whether a directory is a complete, usable entry.

    Raises:
        OSError: The rename failed and no valid entry took its place.
    """
    for attempt in range(3):
        try:
            os.rename(work, target)
            return
        except OSError:
            if is_valid(target):
                return
            if attempt == 2:
                raise
        _move_aside_and_remove(target)


def _move_aside_and_remove(path: Path) -> None:
    # Renamed before removal: a rename is atomic, so no reader ever sees half an entry.
    stale = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".stale", dir=path.parent))
    try:
        os.replace(path, stale / "entry")
    except FileNotFoundError:
        pass  # another process moved it first
    finally:
        shutil.rmtree(stale, ignore_errors=True)
