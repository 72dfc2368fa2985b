"""Settings of the search package (environment prefix ``ASSETLENS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from assetlens.search.vectors.ann import IndexConfig

VOCABULARY_FILE = "vocabulary.txt"
# Near-duplicate decision, measured on a generated set (tests/benchmarks/bench_duplicates.py):
# least CLIP similarity, and most differing perceptual-hash bits (of 128). Both must hold.
DUPLICATES_THRESHOLD = 0.90
DUPLICATES_MAX_DISTANCE = 22


class SearchSettings(BaseSettings):
    """Where the library lives, and how its vector index is built.

    The ``index_*`` settings override :class:`search.vectors.ann.IndexConfig`'s defaults (unset: its
    default; see there for what each does and the measurements behind the defaults).

    Attributes:
        data_dir: Holds the library only: ``assetlens.db`` (SQLite, the truth), the FAISS index,
            thumbnails and uploads. Model files live in the machine cache (:mod:`models.cache`).
        index_kind: ``auto`` (flat up to ``index_flat_max`` vectors, then IVF-PQ), ``flat``,
            ``hnsw``, ``ivf`` or ``ivfpq``. A writer rebuilds an index of another kind on its
            next run. Memory per 512-d vector: flat 2048 bytes, hnsw ~2340 (M=32), ivf 2056,
            ivfpq 72 in memory plus 1024 in the memory-mapped re-rank file.
        index_flat_max: ``auto`` keeps an exact flat index up to this many vectors.
        index_hnsw_m: HNSW graph degree (about ``8 * m`` bytes of graph per vector).
        index_hnsw_ef_construction: HNSW build effort.
        index_hnsw_ef_search: HNSW search effort for an unfiltered top-10.
        index_ivf_nlist: IVF lists (unset: about ``4 * sqrt(n)``).
        index_ivf_nprobe: IVF (and IVF-PQ) lists probed for an unfiltered top-10.
        index_pq_m: IVF-PQ code bytes per vector (unset: ``dim / 8``).
        index_rerank: IVF-PQ shortlist re-ranked exactly (at least; also ``4 * k``).
        index_max_deleted_fraction: Deleted vectors beyond this share make a writer rebuild.
        index_max_delta: New vectors kept beside an ANN index (scored exactly) before a writer
            folds them in.
        duplicates_threshold: Least CLIP similarity of two near-duplicates (their perceptual
            hashes must agree too; see :mod:`search.duplicates`).
        duplicates_max_distance: Most differing perceptual-hash bits (of 128) of two near-duplicates.
    """

    model_config = SettingsConfigDict(env_prefix="ASSETLENS_", extra="ignore")

    data_dir: Path = Path("assetlens-data")
    index_kind: Literal["auto", "flat", "hnsw", "ivf", "ivfpq"] | None = None
    index_flat_max: int | None = Field(default=None, ge=0)
    index_hnsw_m: int | None = Field(default=None, ge=4, le=256)
    index_hnsw_ef_construction: int | None = Field(default=None, ge=8, le=4096)
    index_hnsw_ef_search: int | None = Field(default=None, ge=1, le=65536)
    index_ivf_nlist: int | None = Field(default=None, ge=1)
    index_ivf_nprobe: int | None = Field(default=None, ge=1)
    index_pq_m: int | None = Field(default=None, ge=1, le=4096)
    index_rerank: int | None = Field(default=None, ge=1, le=100_000)
    index_max_deleted_fraction: float | None = Field(default=None, gt=0, le=1)
    index_max_delta: int | None = Field(default=None, ge=0)
    # The bounds are those of the pairs kept (search.duplicates.PAIR_MIN_SIMILARITY, PAIR_MAX_DISTANCE).
    duplicates_threshold: float = Field(default=DUPLICATES_THRESHOLD, ge=0.80, le=1.0)
    duplicates_max_distance: int = Field(default=DUPLICATES_MAX_DISTANCE, ge=0, le=40)

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return self.data_dir / "assetlens.db"

    @property
    def vocabulary_path(self) -> Path:
        """The vocabulary file given once and kept for later runs (``enrich.vocabulary``)."""
        return self.data_dir / VOCABULARY_FILE

    @property
    def legacy_weights_dir(self) -> Path:
        """Where libraries made before the machine cache kept hub weights (still read, never written)."""
        return self.data_dir / "models"

    def index_config(self) -> IndexConfig:
        """The vector index's configuration: the ``index_*`` settings given, defaults for the rest."""
        from assetlens.search.vectors.ann import IndexConfig  # imported late: it loads FAISS

        given = {
            name.removeprefix("index_"): value
            for name, value in self
            if name.startswith("index_") and value is not None
        }
        return IndexConfig(**given)
