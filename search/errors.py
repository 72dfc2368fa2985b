"""Errors of the search package. Each names what is at fault and what to do."""


class SearchError(Exception):
    """Base class for store, index and query errors."""


class StoreError(SearchError):
    """The store cannot be opened or is inconsistent."""


class ModelMismatchError(StoreError):
    """Vectors of a second model would be mixed into a store holding another model's vectors."""


class AssetNotFoundError(SearchError):
    """An asset id or path that the store does not hold."""


class QueryError(SearchError):
    """A query that cannot be run as given."""
