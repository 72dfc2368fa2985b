"""Server paths a client may ask to ingest: inside the configured library roots, and nowhere else.

A path is refused (403) when it holds a NUL or another control character, a ``..`` component
(also after Unicode compatibility normalisation, which turns fullwidth dots U+FF0E into ``..``),
a percent-encoded sequence (``%2e%2e``: clients send the real characters, we never decode), a
backslash or a look-alike of ``/``, or when it is not inside a root, lexically or once symlinks
are resolved. A folder is also refused when a symlink inside it leads out of the roots, because
the scanner follows symlinks.

Existence is only reported (404) for paths that are lexically inside a root, so the API does
not reveal which files exist elsewhere.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from assetlens.search.api.errors import ApiError

log = logging.getLogger("assetlens.api")

MAX_PATH = 4096
MAX_WALK = 200_000  # entries looked at for escaping symlinks before the folder is refused as too big
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _refuse(raw: str, reason: str, client: str) -> ApiError:
    log.warning("ingest path refused (%s) from %s: %r", reason, client, raw[:300])
    return ApiError(403, f"path refused: {reason}", "path-refused", title="Path outside the library roots")


def _inside(path: str, roots: Sequence[Path]) -> bool:
    return any(path == str(root) or path.startswith(str(root).rstrip("/") + "/") for root in roots)


def check_text(raw: str, client: str) -> None:
    """Refuse a path whose text is suspicious, whatever it points to (403)."""
    if not raw or len(raw) > MAX_PATH:
        raise _refuse(raw, f"empty or longer than {MAX_PATH} characters", client)
    if _CONTROL.search(raw):
        raise _refuse(raw, "control characters (NUL...) in the path", client)
    if _PERCENT.search(raw):
        raise _refuse(raw, "percent-encoded characters: send the path as plain text", client)
    normalised = unicodedata.normalize("NFKC", raw)
    for form in (raw, normalised):
        if ".." in re.split(r"[/\\]", form):
            raise _refuse(raw, "'..' components are not allowed (Unicode look-alikes included)", client)
    if normalised.count("/") != raw.count("/") or "\\" in normalised:
        # Other tools may read a look-alike (fullwidth solidus U+FF0F...) as a separator: refuse.
        raise _refuse(raw, "Unicode look-alikes of path separators, or backslashes", client)


def resolve(raw: str, roots: Sequence[Path], client: str) -> Path:
    """The real path of a client's path, checked to lie inside ``roots``.

    A relative path is taken relative to each root in turn (the first that holds it wins).

    Raises:
        ApiError: 403 when refused (logged), 404 when it is inside a root but does not exist.
    """
    check_text(raw, client)
    if not roots:
        raise _refuse(raw, "no library roots are configured (ASSETLENS_API_ROOTS)", client)
    candidates = [raw] if os.path.isabs(raw) else [os.path.join(root, raw) for root in roots]
    for candidate in candidates:
        lexical = os.path.normpath(candidate)
        if not _inside(lexical, roots):
            raise _refuse(raw, "not inside a library root", client)
        if not os.path.lexists(lexical):
            continue
        real = os.path.realpath(lexical)
        if not _inside(real, roots):
            raise _refuse(raw, "a symlink leads out of the library roots", client)
        if not os.path.exists(real):
            continue
        if os.path.isdir(real):
            _check_tree(real, roots, raw, client)
        return Path(real)
    raise ApiError(
        404, f"no such file or folder in the library roots: {raw}", "path-not-found", title="Path not found"
    )


def _check_tree(folder: str, roots: Sequence[Path], raw: str, client: str) -> None:
    """Refuse a folder holding a symlink that leads out of the roots (the scan would follow it)."""
    seen = 0
    for top, dirs, files in os.walk(folder, followlinks=False):
        for name in (*dirs, *files):
            seen += 1
            if seen > MAX_WALK:
                raise ApiError(
                    413,
                    f"{raw} holds more than {MAX_WALK} entries: ingest its subfolders, or use the CLI",
                    "too-many-files",
                    title="Folder too large",
                )
            entry = os.path.join(top, name)
            if os.path.islink(entry) and not _inside(os.path.realpath(entry), roots):
                raise _refuse(raw, f"a symlink inside it leads out of the library roots: {entry}", client)
