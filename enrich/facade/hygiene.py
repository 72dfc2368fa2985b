"""Library hygiene and custom taxonomy on :class:`~assetlens.enrich.facade.Library`: near-duplicate
groups, and tags learned from examples."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from assetlens.enrich.facade.catalog import LibraryParts
from assetlens.enrich.facade.records import FilterArg, as_filter
from assetlens.enrich.hash_pass import fill_hashes
from assetlens.enrich.vocabulary import library_vocabulary
from assetlens.search import learned
from assetlens.search.catalog.meta import filter_sql
from assetlens.search.duplicates import Group
from assetlens.search.store.learned import LearnedTag

ExampleRef = int | str


@dataclass(frozen=True)
class DuplicateGroups:
    """What :meth:`HygieneMethods.duplicates` found.

    Attributes:
        groups: Largest first; each lists its representative first.
        threshold: Least CLIP similarity used. max_distance: Most differing hash bits used.
        hashed: Assets whose files were read for their hashes (stored before hashes existed).
        unreadable: ``{"asset_id", "uri", "reason"}`` of files that could not be read for it.
    """

    groups: tuple[Group, ...]
    threshold: float
    max_distance: int
    hashed: int = 0
    unreadable: tuple[dict[str, Any], ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """The ``duplicates --json`` document: ``{"groups": [{"representative", "assets": [...]}], ...}``."""
        return {"groups": [g.as_dict() for g in self.groups], "threshold": self.threshold,
                "max_distance": self.max_distance, "hashed": self.hashed,
                "unreadable": list(self.unreadable)}  # fmt: skip


class HygieneMethods(LibraryParts):
    """Near-duplicates and learned tags (mixed into :class:`Library`)."""

    def duplicates(
        self,
        *,
        threshold: float | None = None,
        max_distance: int | None = None,
        filter: FilterArg = None,
        rebuild: bool = False,
        wait: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> DuplicateGroups:
        """Near-duplicate groups: the same shot at other sizes, crops, compressions, brightness, overlays.

        Assets stored before hashes existed have their files read for them first (``progress``
        follows that), and everything not yet compared is compared; that writes, so it takes
        the library's writer lock (``wait``: wait for another writer).

        Args:
            threshold: Least CLIP similarity (default ``ASSETLENS_DUPLICATES_THRESHOLD``).
            max_distance: Most differing perceptual-hash bits of 128 (default
                ``ASSETLENS_DUPLICATES_MAX_DISTANCE``).
            filter: Only assets passing it take part.
            rebuild: Compare the whole library again (after changing thresholds' floors or code).

        Raises:
            QueryError: A threshold outside the kept pairs' bounds.
            FilterError: A filter that cannot be parsed.
        """
        store, near = self.core.store, self.core.duplicates
        missing = store.duplicates.unhashed()
        filled = None
        if missing or rebuild or store.duplicates.unchecked()[0]:
            with self._writing("duplicates", wait):
                if missing:
                    options = self._ingest_options(
                        None if progress is None else lambda p: progress(p.done, p.total)
                    )
                    filled = fill_hashes(store, list(store.assets(missing).values()), options)
                index = None if rebuild else self.core.index.sync()
                near.rebuild() if rebuild else near.update(index)
        allowed = None
        parsed = as_filter(filter)
        if parsed is not None:
            where, params = filter_sql(store, parsed)
            allowed = set(store.matching_asset_ids(where, params).tolist())
        groups = near.groups(threshold, max_distance, allowed)
        return DuplicateGroups(
            tuple(groups),
            near.threshold if threshold is None else threshold,
            near.max_distance if max_distance is None else max_distance,
            filled.hashed if filled else 0,
            tuple(filled.unreadable) if filled else (),
        )

    def learn_tag(
        self,
        name: str,
        positive: Sequence[ExampleRef],
        negative: Sequence[ExampleRef] = (),
        *,
        replace: bool = False,
        wait: bool = False,
    ) -> learned.LearnReport:
        """Learn a tag from examples and tag every asset with it (and every asset ingested later).

        Args:
            name: The tag (filter with ``tag:NAME>=0.8``; exported like any tag).
            positive: Assets that have it: ids, paths of ingested files, or filters (every match).
            negative: Assets that do not.
            replace: Allow a name of the vocabulary: the learned tag replaces its zero-shot tag.

        Raises:
            LearnedTagError: Unknown examples (named), fewer than 3 positives, an asset on both
                sides, a vocabulary name without ``replace``, a library without vectors, a name
                already learned (see :meth:`relearn_tag`).
        """
        store = self.core.store
        with self._writing("learn", wait):
            pos = learned.resolve_examples(store, positive, "positive")
            neg = learned.resolve_examples(store, negative, "negative")
            vocabulary = library_vocabulary(self.core.settings.data_dir, None).tags()
            return learned.learn(store, name, pos, neg, vocabulary=vocabulary, replace_vocabulary=replace)

    def relearn_tag(
        self,
        name: str,
        positive: Sequence[ExampleRef] = (),
        negative: Sequence[ExampleRef] = (),
        *,
        wait: bool = False,
    ) -> learned.LearnReport:
        """Add examples to a learned tag (an asset may change sides), fit it again, re-tag the library."""
        store = self.core.store
        with self._writing("learn", wait):
            pos = learned.resolve_examples(store, positive, "positive")
            neg = learned.resolve_examples(store, negative, "negative")
            return learned.relearn(store, name, pos, neg)

    def learned_tags(self) -> list[LearnedTag]:
        """Every learned tag, by name."""
        return self.core.store.learned.all()

    def learned_tag(self, name: str) -> dict[str, Any]:
        """A learned tag's classifier summary, examples, report and how many assets hold it.

        Raises:
            LearnedTagError: No learned tag of this name.
        """
        tag = learned.stored(self.core.store, name)
        return {**tag.summary(), "tagged": self.core.store.learned.tagged_count(tag.name)}

    def forget_tag(self, name: str, *, wait: bool = False) -> LearnedTag:
        """Drop a learned tag, its examples and the tags it gave."""
        with self._writing("learn", wait):
            return learned.forget(self.core.store, name)
