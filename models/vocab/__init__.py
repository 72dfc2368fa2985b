"""Tag vocabularies: the shipped default list plus optional user files.

File format (UTF-8 text; a leading BOM is accepted):

* A line whose first non-blank character is ``#`` is a comment; blank lines are
  ignored. Comments take whole lines only: ``#`` inside a tag line is an error.
* ``[category]`` on its own line sets the category of the lines that follow
  (``general`` before any header).
* A tag line is ``tag [= synonym, synonym ...] [> parent, parent ...]``; the
  ``=`` part comes before the ``>`` part and both are optional, e.g.
  ``sneaker = trainer, athletic shoe > shoe, footwear``.
* Whitespace around tokens is stripped; tags, synonyms, parents and categories are
  lowercased, NFC-normalised and internal whitespace collapsed. Duplicate
  synonyms/parents are dropped; a tag may appear only once per file.
* Malformed lines (empty tag, a line starting with ``=``/``>``, ``=`` or ``>``
  with nothing after it, an empty list item, an unclosed ``[``, a tag listing
  itself as parent...) raise :class:`VocabularyError` naming file and line.

When loading, a user file is merged over the default: new tags are appended, known
tags keep their category and gain the extra synonyms and parents. Any parent that is
not a tag becomes one (category of its first child, no synonyms). Parent cycles are
allowed; :meth:`Vocabulary.ancestors` terminates on them.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from assetlens.models.errors import VocabularyError

DEFAULT_VOCABULARY: Path = Path(__file__).with_name("default.txt")
DEFAULT_CATEGORY = "general"


class UnknownTagError(VocabularyError, KeyError):
    """A tag that is not in the vocabulary; also a ``KeyError``."""

    def __str__(self) -> str:
        return Exception.__str__(self)


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


def _unique(items: Iterable[str], exclude: str = "") -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in map(_norm, items) if i and i != exclude))


@dataclass(frozen=True)
class VocabTerm:
    """One tag with its category, synonyms and parent tags (all normalised)."""

    tag: str
    category: str
    synonyms: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        tag = _norm(self.tag)
        if not tag:
            raise VocabularyError("a vocabulary term needs a non-empty tag")
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "category", _norm(self.category) or DEFAULT_CATEGORY)
        object.__setattr__(self, "synonyms", _unique(self.synonyms, exclude=tag))
        object.__setattr__(self, "parents", _unique(self.parents))


def _digest(terms: Iterable[VocabTerm]) -> str:
    rows = [[t.tag, t.category, list(t.synonyms), list(t.parents)] for t in terms]
    blob = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Vocabulary:
    """An ordered, immutable set of terms.

    Attributes:
        terms: The terms, in file order (implicit parent tags last).
        digest: SHA-256 hex of the canonical content (tags, categories, synonyms and
            parents, in order); derived from ``terms``, so not a constructor argument.
    """

    terms: tuple[VocabTerm, ...]
    digest: str = field(init=False)
    _index: dict[str, VocabTerm] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        terms = tuple(self.terms)
        index: dict[str, VocabTerm] = {}
        for term in terms:
            if term.tag in index:
                raise VocabularyError(f"duplicate tag {term.tag!r} in vocabulary")
            index[term.tag] = term
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "digest", _digest(terms))
        object.__setattr__(self, "_index", index)

    def tags(self) -> tuple[str, ...]:
        """Return all tags, in order."""
        return tuple(t.tag for t in self.terms)

    def categories(self) -> tuple[str, ...]:
        """Return the distinct categories, in order of first appearance."""
        return tuple(dict.fromkeys(t.category for t in self.terms))

    def term(self, tag: str) -> VocabTerm:
        """Return the term of ``tag`` (normalised first); UnknownTagError if missing."""
        try:
            return self._index[_norm(tag)]
        except KeyError:
            raise UnknownTagError(f"unknown tag {tag!r}: not in the vocabulary") from None

    def ancestors(self, tag: str) -> tuple[str, ...]:
        """Return the transitive parents of ``tag``, nearest first, without duplicates.

        Cycle-safe: the tag itself is never included. UnknownTagError if ``tag`` is missing.
        """
        start = self.term(tag)
        seen: set[str] = {start.tag}
        out: list[str] = []
        queue = deque(start.parents)
        while queue:
            parent = queue.popleft()
            if parent in seen:
                continue
            seen.add(parent)
            out.append(parent)
            if parent in self._index:
                queue.extend(self._index[parent].parents)
        return tuple(out)

    def __contains__(self, tag: object) -> bool:
        return isinstance(tag, str) and _norm(tag) in self._index

    def __len__(self) -> int:
        return len(self.terms)


def _split(part: str, what: str) -> list[str]:
    items = [_norm(i) for i in part.split(",")]
    if not any(items):
        raise ValueError(f"{what} marker with nothing after it")
    if not all(items):
        raise ValueError(f"empty item in the {what} list")
    return items


def _parse_line(line: str, category: str) -> VocabTerm:
    for char in "[]#":
        if char in line:
            raise ValueError(f"unexpected {char!r} in a tag line")
    head, gt, parent_part = line.partition(">")
    if "=" in parent_part:
        raise ValueError("'=' synonyms must come before '>' parents")
    if ">" in parent_part or head.count("=") > 1:
        raise ValueError("more than one '=' or '>' on the line")
    tag_part, eq, synonym_part = head.partition("=")
    tag = _norm(tag_part)
    if not tag:
        raise ValueError("missing tag before '=' or '>'")
    synonyms = _split(synonym_part, "'=' synonym") if eq else []
    parents = _split(parent_part, "'>' parent") if gt else []
    if tag in parents:
        raise ValueError(f"tag {tag!r} lists itself as a parent")
    return VocabTerm(tag, category, tuple(synonyms), tuple(parents))


def parse_vocabulary(text: str, source: str = "<string>") -> tuple[VocabTerm, ...]:
    """Parse vocabulary text (format in the module docstring).

    Args:
        text: The file content.
        source: Name used in error messages (usually the file path).

    Returns:
        The terms in file order.

    Raises:
        VocabularyError: A malformed line or a tag defined twice, as ``source:line: ...``.
    """
    terms: list[VocabTerm] = []
    first_seen: dict[str, int] = {}
    category = DEFAULT_CATEGORY
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("["):
                if not line.endswith("]") or line.count("[") > 1 or line.count("]") > 1:
                    raise ValueError("unclosed or malformed '[category]' header")
                category = _norm(line[1:-1])
                if not category:
                    raise ValueError("empty category name in '[]'")
                continue
            term = _parse_line(line, category)
            if term.tag in first_seen:
                first = first_seen[term.tag]
                raise ValueError(f"duplicate tag {term.tag!r} (first defined on line {first})")
        except ValueError as exc:
            raise VocabularyError(f"{source}:{lineno}: {exc}: {raw.strip()!r}") from None
        first_seen[term.tag] = lineno
        terms.append(term)
    return tuple(terms)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise VocabularyError(f"vocabulary file not found: {path}") from None
    except UnicodeDecodeError as exc:
        msg = f"vocabulary file {path} is not valid UTF-8 (byte offset {exc.start}); save as UTF-8"
        raise VocabularyError(msg) from None
    except OSError as exc:
        raise VocabularyError(f"cannot read vocabulary file {path}: {exc}") from exc


def load_vocabulary(extra: Path | None = None, *, include_default: bool = True) -> Vocabulary:
    """Load the default vocabulary, merged with an optional user file.

    Args:
        extra: A user vocabulary file merged over the default (see module docstring).
        include_default: Start from the shipped :data:`DEFAULT_VOCABULARY`.

    Returns:
        The merged vocabulary, implicit parent tags appended.

    Raises:
        VocabularyError: Nothing to load, a file missing, unreadable, not UTF-8 or
            malformed, or the result holds no tags.
    """
    if not include_default and extra is None:
        raise VocabularyError("nothing to load: include_default=False and no extra file given")
    sources = [DEFAULT_VOCABULARY] if include_default else []
    if extra is not None:
        sources.append(Path(extra))
    merged: dict[str, VocabTerm] = {}
    for path in sources:
        for term in parse_vocabulary(_read(path), str(path)):
            old = merged.get(term.tag)
            if old is not None:
                term = VocabTerm(
                    old.tag, old.category, old.synonyms + term.synonyms, old.parents + term.parents
                )
            merged[term.tag] = term
    for term in list(merged.values()):
        for parent in term.parents:
            merged.setdefault(parent, VocabTerm(parent, term.category))
    if not merged:
        raise VocabularyError(f"vocabulary is empty: no tags in {', '.join(map(str, sources))}")
    return Vocabulary(tuple(merged.values()))
