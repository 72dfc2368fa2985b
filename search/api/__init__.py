"""The HTTP API (FastAPI): search, similarity, assets, metadata, ingest jobs, keys, metrics.

Start it with ``assetlens serve``, or build it with :func:`create_app`.
"""

from search.api.app import create_app
from search.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
