"""Errors raised by the enrichment layer. Each names what is at fault and why."""

from pathlib import Path


class EnrichError(Exception):
    """Base for enrichment errors."""


class DecodeError(EnrichError):
    """A file could not be decoded (image, video or audio).

    Attributes:
        path: The file that failed.
        reason: A short human-readable cause, e.g. ``"not an image Pillow can read"``.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type["DecodeError"], tuple[Path, str]]:
        # Default exception pickling replays ``args`` (the formatted message) into
        # ``__init__``, which takes two arguments; process pools need this to work.
        return (type(self), (self.path, self.reason))
