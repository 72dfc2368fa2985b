"""Errors of the search package. Each names what is at fault and what to do."""

from typing import ClassVar

from assetlens.models.errors import AssetLensError


class SearchError(AssetLensError):
    """Base class for store, index and query errors."""


class StoreError(SearchError):
    """The store cannot be opened or is inconsistent."""


class LibraryNotFoundError(StoreError):
    """A library to read from that does not exist yet (no ``assetlens.db`` in its folder)."""

    def __init__(self, data_dir: object) -> None:
        super().__init__(
            f"no AssetLens library in {data_dir} yet: ingest some files first "
            f"(`assetlens ingest FOLDER`), or point --data-dir (ASSETLENS_DATA_DIR) at a library"
        )


class ModelMismatchError(StoreError):
    """Vectors of a second model would be mixed into a store holding another model's vectors."""


class AssetNotFoundError(SearchError):
    """An asset id or path that the store does not hold."""


class QueryError(SearchError):
    """A query that cannot be run as given."""


class QueryVectorError(QueryError):
    """A raw query vector that cannot be searched with (wrong length, NaN or infinite values, zero)."""


class FilterError(QueryError):
    """A filter that cannot be parsed or compiled.

    Attributes:
        position: 0-based offset of the fault in a string filter (the message says column
            ``position + 1``), else None.
        path: JSON path of the faulty node in a JSON filter (``$.and[2].field``), else None.
    """

    def __init__(self, message: str, *, position: int | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.position = position
        self.path = path


class FieldTypeError(FilterError):
    """A value that does not fit the declared (or built-in) type of its field.

    Attributes:
        field: The field as users write it (``meta.rights_expires``, ``size``).
        expected: The field type (``date``, ``number``, ``boolean``, ``list``, ``string``).
        value: The offending value.
    """

    DESCRIPTIONS: ClassVar[dict[str, str]] = {
        "date": "a date (YYYY-MM-DD or ISO datetime)",
        "number": "a number",
        "boolean": "a boolean (true/false, yes/no)",
        "list": "a list (or a comma-separated string)",
        "string": "a string",
    }

    def __init__(
        self,
        field: str,
        expected: str,
        value: object,
        *,
        message: str | None = None,
        position: int | None = None,
        path: str | None = None,
    ) -> None:
        self.field = field
        self.expected = expected
        self.value = value
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        described = self.DESCRIPTIONS.get(expected, expected)
        hint = "; now, today and offsets like now-30d or today+1y also work" if expected == "date" else ""
        text = message or f"{field} must be {described}, got {shown}{hint}"
        super().__init__(text, position=position, path=path)


class LearnedTagError(SearchError):
    """A learned tag that cannot be learned as asked (too few examples, contradictory ones, a
    name taken by the vocabulary, a library without vectors) or does not exist."""
