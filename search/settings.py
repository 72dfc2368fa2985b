"""Settings of the search package (environment prefix ``ASSETLENS_``)."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class SearchSettings(BaseSettings):
    """Where the library lives.

    Attributes:
        data_dir: Holds ``assetlens.db`` (SQLite, the truth), the FAISS index and model caches.
    """

    model_config = SettingsConfigDict(env_prefix="ASSETLENS_", extra="ignore")

    data_dir: Path = Path("assetlens-data")

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return self.data_dir / "assetlens.db"

    @property
    def model_cache_dir(self) -> Path:
        """Hub weights downloaded for this library."""
        return self.data_dir / "models"
