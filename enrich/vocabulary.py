"""The vocabulary a library tags with: the default one plus a file given once and kept.

A vocabulary file given to ``ingest`` or ``tag`` is copied into the data dir and used by every
later run of that library, so a re-run without ``--vocab`` tags the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from assetlens.models.vocab import Vocabulary, load_vocabulary
from assetlens.search.settings import VOCABULARY_FILE as SAVED_VOCABULARY


def library_vocabulary(data_dir: Path, vocab: Path | None) -> Vocabulary:
    """The vocabulary to tag with: ``vocab`` (with the default one), else the one kept.

    Raises:
        VocabularyError: The file is missing or malformed.
    """
    saved = data_dir / SAVED_VOCABULARY
    if vocab is None:
        return load_vocabulary(saved if saved.exists() else None)
    return load_vocabulary(vocab)


def keep_vocabulary(data_dir: Path, vocab: Path) -> None:
    """Keep a copy of ``vocab`` in the library, for every later run (call under the writer lock)."""
    saved = data_dir / SAVED_VOCABULARY
    saved.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: a half-written copy (full disk, crash) would silently tag every later
    # run with part of the vocabulary.
    tmp = saved.with_name(f".{saved.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(vocab.read_bytes())
        os.replace(tmp, saved)
    finally:
        tmp.unlink(missing_ok=True)
