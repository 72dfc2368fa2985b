"""The core of one library (a data dir): the objects that work on it, opened lazily.

The public facade (``assetlens.open``), the CLI and the HTTP API all start here, so they
resolve models, stores and indexes the same way.
"""

from __future__ import annotations

from functools import cached_property

from assetlens.models.clip import ClipEncoder
from assetlens.models.errors import UnknownModelError
from assetlens.models.registry import ModelSpec, resolve_model
from assetlens.models.settings import ModelSettings
from assetlens.search.duplicates import NearDuplicates
from assetlens.search.query import SearchEngine
from assetlens.search.settings import SearchSettings
from assetlens.search.store import Store
from assetlens.search.vectors.index import VectorIndex

DEFAULT_MODEL = "ViT-B-32"


class LibraryCore:
    """A data dir with its store, index, CLIP encoder and query engine.

    The data dir holds the library only; model files (weights, ONNX exports, label
    embeddings) come from the machine cache, ``model_settings.cache_dir``.

    Args:
        settings: Where the library lives.
        model_settings: Which model to run; with no model named, the library's own model is used.
    """

    def __init__(self, settings: SearchSettings, model_settings: ModelSettings) -> None:
        self.settings = settings
        self.model_settings = model_settings
        legacy = settings.legacy_weights_dir
        if legacy.is_dir() and legacy not in model_settings.extra_weights_dirs:
            # Weights fetched into the library by an older AssetLens: offline, the only copy.
            extra = (*model_settings.extra_weights_dirs, legacy)
            self.model_settings = model_settings.model_copy(update={"extra_weights_dirs": extra})

    @cached_property
    def store(self) -> Store:
        """The SQLite store (created on first use)."""
        return Store(self.settings.db_path)

    @cached_property
    def index(self) -> VectorIndex:
        """The FAISS index (not yet synced)."""
        return VectorIndex(self.store, self.settings.data_dir, self.settings.index_config())

    @cached_property
    def spec(self) -> ModelSpec:
        """The model to run: the one named in settings, else the library's, else the default."""
        name = self.model_settings.clip_model
        if name is None:
            stored = self.store.model_id if self.settings.db_path.exists() else None
            if stored is None:
                name = DEFAULT_MODEL
            elif "@file:" in stored:  # a local checkpoint: the id names the architecture, not the file
                if self.model_settings.clip_checkpoint is None:
                    raise UnknownModelError(
                        f"this library was embedded with a local checkpoint ({stored}): set "
                        f"ASSETLENS_CLIP_MODEL to its architecture and ASSETLENS_CLIP_CHECKPOINT to the file"
                    )
                name = stored.split("@", 1)[0]
            else:
                name = stored
        return resolve_model(name, self.model_settings.clip_checkpoint)

    @cached_property
    def encoder(self) -> ClipEncoder:
        """The CLIP encoder (weights load on first use)."""
        return ClipEncoder(self.spec, self.model_settings)

    @cached_property
    def duplicates(self) -> NearDuplicates:
        """The near-duplicate groups, at the library's thresholds."""
        s = self.settings
        return NearDuplicates(self.store, s.duplicates_threshold, s.duplicates_max_distance)

    @cached_property
    def engine(self) -> SearchEngine:
        """The query engine."""
        return SearchEngine(self.store, self.index, self.encoder)

    def close(self) -> None:
        """Close the store and let go of the index and query engine (a later use opens them again)."""
        for part in ("engine", "index"):
            self.__dict__.pop(part, None)
        store = self.__dict__.pop("store", None)
        if store is not None:
            store.close()
