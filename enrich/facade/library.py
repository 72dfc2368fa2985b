"""The library object of the public API (:mod:`assetlens.enrich.facade`): lifecycle, enrichment, search.

Its catalog methods (assets, DAM fields, facets, export) live in :mod:`.catalog`, reading text
in pictures in :mod:`.text`, housekeeping in :mod:`.admin`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from assetlens.enrich.errors import PathNotFoundError
from assetlens.enrich.facade.admin import AdminMethods
from assetlens.enrich.facade.catalog import CatalogMethods
from assetlens.enrich.facade.hygiene import HygieneMethods
from assetlens.enrich.facade.records import AssetRef, FilterArg, SearchPage, as_filter, as_image, as_vector
from assetlens.enrich.facade.settings import LibrarySettings
from assetlens.enrich.facade.text import TextMethods
from assetlens.enrich.pipeline import Ingester, reembed_library
from assetlens.enrich.tagging import Tagger, retag_library
from assetlens.enrich.transcribe import TranscribeReport, needs_transcript, transcribe_assets
from assetlens.enrich.video import KeyframeOptions
from assetlens.enrich.vocabulary import keep_vocabulary, library_vocabulary
from assetlens.enrich.writer import IngestProgress, IngestReport
from assetlens.models.ocr import TextReader
from assetlens.models.whisper import Transcriber
from assetlens.search.errors import QueryError
from assetlens.search.learned import apply as apply_learned
from assetlens.search.learned import relearn_all
from assetlens.search.library import LibraryCore
from assetlens.search.query_types import Mode, Query, open_query_image, parse_text
from assetlens.search.store.imports import BATCH_ROWS

if TYPE_CHECKING:  # pyarrow loads with the importer: only `import` pays for it
    from assetlens.search.catalog.vector_import import VectorImportReport
    from assetlens.search.vectors.build import BuildProgress

log = logging.getLogger(__name__)


def open(data_dir: str | os.PathLike[str] | None = None, *, model: str | None = None) -> Library:
    """Open the library in ``data_dir`` (created by the first ingest or import).

    Args:
        data_dir: The library folder; default ``ASSETLENS_DATA_DIR`` or ``./assetlens-data``.
        model: CLIP model name (``ViT-B-32``, ``tiny``, ``ARCH@TAG``...); default
            ``ASSETLENS_CLIP_MODEL``, else the library's own model, else ``ViT-B-32``.

    Returns:
        The library; close it (or use ``with``) to release the store and index.

    Raises:
        SettingsError: An ``ASSETLENS_*`` variable out of range.
    """
    return Library(data_dir, model=model)


class Library(CatalogMethods, TextMethods, AdminMethods, HygieneMethods):
    """One AssetLens library: ingest media, search it, read and edit its assets.

    Settings not given as arguments come from ``ASSETLENS_*`` variables, as for the CLI, read
    once when the library is opened (or given whole as ``settings``). Models load on first use:
    opening a library is cheap, and creates nothing: the first ingest or import creates the
    folder, and reading a library that does not exist yet raises :class:`LibraryNotFoundError`.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        model: str | None = None,
        settings: LibrarySettings | None = None,
    ) -> None:
        if settings is not None and (data_dir is not None or model is not None):
            raise TypeError("give data_dir and model, or settings, not both")
        self.settings = settings or LibrarySettings.load(data_dir, model=model)
        """Every setting this library's work reads (resolved when it was opened)."""
        self.core = LibraryCore(self.settings.library, self.settings.models)
        """The engine's parts (store, index, encoder, query engine) for the CLI, the API and experts."""
        self._readers: dict[str, TextReader] = {}  # OCR models, by settings: loaded once per process

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The library folder."""
        return self.core.settings.data_dir

    @property
    def model_id(self) -> str:
        """The CLIP model of the library's vectors, else the one its next ingest will use.

        Neither loads the model nor creates the library.
        """
        stored = self.core.store.model_id if self._exists() else None
        return stored or self.core.spec.model_id

    def close(self) -> None:
        """Close the store and release the index (saved by the writers that change it).

        The library may be used again afterwards: it opens them anew.
        """
        self.core.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"assetlens.Library({str(self.data_dir)!r})"

    # --- enrichment -------------------------------------------------------------------------

    def ingest(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        hidden: bool = False,
        prune: bool = False,
        force: bool = False,
        batch_size: int | None = None,
        workers: int | None = None,
        video: bool = True,
        audio: bool = True,
        transcribe: bool = True,
        ocr: Literal["auto", "on", "off"] | None = None,
        keyframes_max: int | None = None,
        keyframes_min_gap: float | None = None,
        keyframes_max_gap: float | None = None,
        engine: Literal["local", "ray", "auto"] | None = None,
        ray_address: str | None = None,
        vocab: str | os.PathLike[str] | None = None,
        wait: bool = False,
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> IngestReport:
        """Scan ``paths`` and embed, tag, read text in, transcribe and store every new or changed media file.

        The keyword arguments are ``assetlens ingest``'s options (see ``--help``); ``None`` takes
        the ``ASSETLENS_*`` setting or the default. ``ocr`` reads text in images and keyframes:
        ``auto`` (the default setting) reads the pictures a quick check finds text in, ``on``
        every picture, ``off`` none (``ASSETLENS_OCR``); unchanged files never read are read
        too. ``engine`` runs the stages here (``local``)
        or on a Ray cluster (``ray``, at ``ray_address`` or a new local one; ``auto``: a running
        cluster if any). ``vocab`` adds a vocabulary file to the default one and is kept for
        later runs. ``progress`` is called after each batch with an :class:`IngestProgress`.

        Raises:
            PathNotFoundError: A path does not exist (nothing is created).
            LibraryBusyError: Another process writes to the library (and ``wait`` is False).
            ModelMismatchError: The library holds another model's vectors (see :meth:`reembed`).
            KeyboardInterrupt: Finished batches are kept; run again to resume.
        """
        roots = _paths(paths)
        if not roots:
            raise QueryError("nothing to ingest: give at least one file or folder")
        for root in roots:
            if not os.path.lexists(root):
                raise PathNotFoundError(root)
        options = self._ingest_options(
            progress,
            include=tuple(include), exclude=tuple(exclude), include_hidden=hidden, prune=prune, force=force,
            batch_size=batch_size, workers=workers, video=video, audio=audio, transcribe=transcribe,
            keyframes=_keyframes(keyframes_max, keyframes_min_gap, keyframes_max_gap), engine=engine,
            ray_address=ray_address,
        )  # fmt: skip
        tagger = self._tagger(vocab)  # a bad vocabulary fails before the library is made
        if options.engine == "local" and not self._exists():
            # So do missing weights (the first run's likeliest error): the run loads them anyway.
            self.core.encoder.load()
        with self._writing("ingest", wait):
            self._keep(vocab)
            whisper = self.settings.whisper if transcribe else None
            reading = self._ocr_settings(ocr)
            reader = None if reading.ocr == "off" else self._reader(reading)
            core = self.core
            ingester = Ingester(
                core.store, core.encoder, tagger, core.index, whisper, reader, core.duplicates
            )
            report = ingester.ingest(roots, options)
        if report.done == 0 and not report.pruned:
            log.warning("found no image, video or audio file in %s", ", ".join(map(str, roots)))
        return report

    def reembed(
        self, *, wait: bool = False, progress: Callable[[IngestProgress], None] | None = None
    ) -> IngestReport:
        """Switch the library to the configured model: drop the old vectors, re-encode every asset.

        Interrupted, it resumes where it stopped when run again. Transcripts are kept; learned
        tags are fitted again on their examples' new vectors.
        """
        self._existing()
        with self._writing("reembed", wait):
            core = self.core
            tagger = self._tagger(None)
            ingester = Ingester(core.store, core.encoder, tagger, core.index, duplicates=core.duplicates)
            report = reembed_library(ingester, self._ingest_options(progress, transcribe=False))
            relearn_all(core.store)
            return report

    def retag(
        self, *, vocab: str | os.PathLike[str] | None = None, wait: bool = False, progress: bool = False
    ) -> int:
        """Re-tag every asset from its stored vectors (no file is read); returns how many."""
        self._existing()
        tagger = self._tagger(vocab)
        with self._writing("tag", wait):
            self._keep(vocab)
            count = retag_library(self.core.store, tagger, progress)
            with self.core.store.transaction():
                self.core.store.learned.drop_replaced_clip_tags()  # learned tags replace these
            return count

    def transcribe(
        self,
        assets: Iterable[AssetRef] | Literal["all", "missing"] = "missing",
        *,
        model: str | None = None,
        wait: bool = False,
        progress: bool = False,
    ) -> tuple[int, TranscribeReport]:
        """(Re-)transcribe speech with Whisper; vectors and tags are not touched.

        Args:
            assets: Asset ids or paths, ``"all"`` (every asset with sound) or ``"missing"``
                (those without a transcript).
            model: A CTranslate2 Whisper model dir or hub name (default: the bundled tiny.en).

        Returns:
            The job id and what was done.
        """
        store = self._existing().store
        with self._writing("transcribe", wait):
            if isinstance(assets, str):
                every = assets == "all"
                if assets not in ("all", "missing"):
                    raise QueryError(
                        f"transcribe takes asset ids or paths, 'all' or 'missing', not {assets!r}"
                    )
                chosen = [a for a in store.assets_with_sound() if every or needs_transcript(a)]
            else:
                chosen = [self.find(ref) for ref in assets]
            settings = self.settings.whisper
            if model is not None:
                settings = settings.model_copy(update={"whisper_model": model})
            job = store.start_job("transcribe", {"assets": [a.id for a in chosen], "model": model})
            try:
                report = transcribe_assets(store, Transcriber(settings), chosen, job, progress)
            except KeyboardInterrupt:
                store.finish_job(job, "interrupted", {})
                raise
            store.finish_job(job, "done", report.__dict__)
            return job, report

    def import_vectors(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        model: str | None = None,
        batch_rows: int = BATCH_ROWS,
        index: bool = True,
        wait: bool = False,
        progress: Callable[[int, int], None] | None = None,
        index_progress: Callable[[BuildProgress], None] | None = None,
    ) -> VectorImportReport:
        """Import embeddings computed elsewhere: Parquet files or folders, clip-retrieval output folders.

        Re-importing the same file changes nothing; bad rows are reported with their row numbers
        and recorded as failures while the rest goes in. ``progress(rows_done, rows_total)``
        follows the import, ``index_progress`` the index update that follows (``index=False``:
        left to the next writer or search).

        Raises:
            ModelMismatchError: The vectors' model is not the library's (both ids named).
            VectorImportError: A path that is not a Parquet file or a clip-retrieval folder.
        """
        from assetlens.search.catalog.vector_import import import_vectors

        roots = _paths(paths)
        with self._writing("import", wait):
            store = self.core.store
            report = import_vectors(store, roots, model, batch_rows=batch_rows, progress=progress)
            if tags := store.learned.all():  # imported assets get the learned tags too
                with store.transaction():
                    apply_learned(store, tags)
            if index:
                self.core.index.sync(progress=index_progress)
        return report

    # --- search -----------------------------------------------------------------------------

    def search(
        self,
        text: str | None = None,
        *,
        negative: Sequence[str] = (),
        image: str | os.PathLike[str] | bytes | Image.Image | None = None,
        asset: AssetRef | None = None,
        vector: Sequence[float] | np.ndarray | str | os.PathLike[str] | None = None,
        filter: FilterArg = None,
        mode: Mode = "hybrid",
        limit: int = 20,
        cursor: str | None = None,
        min_relevance: float | None = None,
        sort: str | None = None,
        collapse_duplicates: bool = False,
    ) -> SearchPage:
        """Search by text, an example image, asset or embedding, and a filter (any combination).

        Args:
            text: ``'"red sneaker" -"blurry" studio^0.5'``: quoted phrases, ``-`` negatives, ``^W``.
            negative: More phrases the results should not look like.
            image: An example image (path, bytes or PIL image).
            asset: A stored asset (id or path) as the example.
            vector: An embedding of the library's model, computed elsewhere (normalised for you),
                or a ``.npy`` file holding one.
            filter: The compact form (``kind:image region:(DE OR AT)``) or the JSON form.
            mode: ``semantic`` (CLIP), ``lexical`` (full text) or ``hybrid``.
            limit: Results per page; ``cursor`` continues from a page's ``next_cursor``.
            min_relevance: Drop results below this calibrated relevance (0-1).
            sort: ``score`` (default) or ``FIELD[:asc|:desc]``.
            collapse_duplicates: One result per near-duplicate group (the best-ranked member;
                the others are listed in its explanation's ``near_duplicates``).

        Raises:
            QueryError: Nothing to search for, a bad cursor, sort or limit; a vector of the wrong
                length, with NaN, or all zeros.
            FilterError: A filter that cannot be parsed (the message points at the fault).
        """
        if image is not None and asset is not None:
            raise QueryError("give an example image or an asset, not both")
        core = self._existing()
        positives, negatives = parse_text(text or "")
        negatives += tuple((phrase, 1.0) for phrase in negative)
        query = Query(
            text=positives, negative=negatives, image=as_image(image), filter=as_filter(filter), mode=mode,
            asset_id=None if asset is None else self.find(asset).id, limit=limit, cursor=cursor,
            vector=as_vector(vector), min_relevance=min_relevance, sort=sort,
            collapse_duplicates=collapse_duplicates,
        )  # fmt: skip
        return core.engine.search(query)

    def similar(
        self,
        path_or_asset_id: AssetRef | Image.Image,
        *,
        filter: FilterArg = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> SearchPage:
        """Assets that look like an image file, a PIL image or a stored asset (itself excluded).

        An ingested file counts as its stored asset: its vectors are used and it is excluded.
        """
        core = self._existing()
        image, asset_id = None, None
        if isinstance(path_or_asset_id, Image.Image):
            image = as_image(path_or_asset_id)
        elif isinstance(path_or_asset_id, int) or (
            isinstance(path_or_asset_id, str) and path_or_asset_id.isdigit()
        ):
            asset_id = self.find(path_or_asset_id).id
        else:
            path = Path(path_or_asset_id)
            if not path.exists():
                raise QueryError(f"no such file: {path}")
            stored = core.store.asset_by_uri(os.path.abspath(path))
            if stored is not None and stored.status == "ok":
                asset_id = stored.id
            else:
                image = open_query_image(path)
        query = Query(image=image, asset_id=asset_id, filter=as_filter(filter), mode="semantic", limit=limit,
                      cursor=cursor)  # fmt: skip
        return core.engine.search(query)

    # --- helpers ----------------------------------------------------------------------------

    def _tagger(self, vocab: str | os.PathLike[str] | None) -> Tagger:
        vocabulary = library_vocabulary(self.data_dir, None if vocab is None else Path(vocab))
        return Tagger(self.core.encoder, vocabulary)

    def _keep(self, vocab: str | os.PathLike[str] | None) -> None:
        if vocab is not None:
            keep_vocabulary(self.data_dir, Path(vocab))


def _paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    return [Path(p) for p in ([paths] if isinstance(paths, str | os.PathLike) else paths)]


def _keyframes(most: int | None, min_gap: float | None, max_gap: float | None) -> KeyframeOptions:
    gaps: dict[str, Any] = {"max_keyframes": most, "min_gap": min_gap, "max_gap": max_gap}
    return KeyframeOptions(**{k: v for k, v in gaps.items() if v is not None})
