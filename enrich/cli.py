"""The ``assetlens`` command line: the root group, enrichment commands, and search's commands.

Exit codes: 0 success (files that failed are counted, not fatal), 2 usage error, 1 anything
else, 130 interrupted (finished batches are kept). Errors go to stderr in one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from assetlens.enrich.errors import EnrichError, disk_full
from assetlens.enrich.lock import writer_lock
from assetlens.enrich.pipeline import Ingester, IngestOptions, IngestReport, reembed_library
from assetlens.enrich.settings import EnrichSettings
from assetlens.enrich.tagging import Tagger, retag_library
from assetlens.enrich.transcribe import needs_transcript, transcribe_assets
from assetlens.enrich.video import KeyframeOptions
from assetlens.models.errors import ModelError
from assetlens.models.registry import CLIP_MODELS, describe, known_architectures, resolve_model
from assetlens.models.settings import ModelSettings, WhisperSettings
from assetlens.models.vocab import Vocabulary, load_vocabulary
from assetlens.models.whisper import Transcriber
from assetlens.search.api_cli import COMMANDS as API_COMMANDS
from assetlens.search.cli import COMMANDS, echo_fields, emit, find_asset, json_option, library
from assetlens.search.errors import SearchError
from assetlens.search.library import LibraryCore
from assetlens.search.settings import SearchSettings

SAVED_VOCABULARY = "vocabulary.txt"


class _Root(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            # Checked first: a full disk also surfaces wrapped, e.g. as a StoreError at open.
            if isinstance(exc, ValidationError):  # an ASSETLENS_* variable out of range
                for line in _settings_errors(exc):
                    click.echo(f"error: {line}", err=True)
                ctx.exit(1)
            lib = ctx.obj
            full = disk_full(exc, lib.settings.data_dir) if isinstance(lib, LibraryCore) else None
            known = isinstance(exc, ModelError | SearchError | EnrichError | FileNotFoundError)
            if full is None and not known:
                raise
            click.echo(f"error: {full or exc}", err=True)
            ctx.exit(1)


def _settings_errors(exc: ValidationError) -> list[str]:
    """One line per bad setting, named as the user set it (``ASSETLENS_NAME``)."""
    lines = []
    for error in exc.errors():
        name = "ASSETLENS_" + "_".join(str(part) for part in error["loc"]).upper()
        lines.append(f"invalid setting {name}={error.get('input')!r}: {error['msg']}")
    return lines


class _QuietOpenClip(logging.Filter):
    # open_clip logs "initialized randomly" on the root logger; our own warning says it better.
    def filter(self, record: logging.LogRecord) -> bool:
        return "open_clip" not in record.pathname


@click.group(cls=_Root)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ASSETLENS_DATA_DIR",
    default="assetlens-data",
    show_default=True,
    help="Library folder (SQLite store, index, model cache). Env: ASSETLENS_DATA_DIR.",
)
@click.version_option(package_name="assetlens")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path) -> None:
    """AssetLens: AI enrichment and semantic search for digital asset libraries."""
    handler = logging.StreamHandler()
    handler.addFilter(_QuietOpenClip())
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    lib = LibraryCore(SearchSettings(data_dir=data_dir), ModelSettings())
    ctx.obj = lib
    ctx.call_on_close(lib.close)


def _vocabulary(lib: LibraryCore, vocab: Path | None, save: bool) -> Vocabulary:
    """The vocabulary to tag with: a given file (saved for later runs when asked), else the saved one."""
    saved = lib.settings.data_dir / SAVED_VOCABULARY
    if vocab is not None:
        vocabulary = load_vocabulary(vocab)
        if save:
            saved.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a half-written copy (full disk, crash) would silently tag
            # every later run with part of the vocabulary.
            tmp = saved.with_name(f".{saved.name}.{os.getpid()}.tmp")
            try:
                tmp.write_bytes(vocab.read_bytes())
                os.replace(tmp, saved)
            finally:
                tmp.unlink(missing_ok=True)
        return vocabulary
    return load_vocabulary(saved if saved.exists() else None)


def _tagger(lib: LibraryCore, vocab: Path | None, save: bool) -> Tagger:
    return Tagger(lib.encoder, _vocabulary(lib, vocab, save), lib.settings.data_dir / "cache")


def _show_progress(as_json: bool) -> bool:
    return not as_json and sys.stderr.isatty()


def _print_report(report: IngestReport, lib: LibraryCore) -> None:
    d = report.as_dict()
    click.echo(
        ", ".join(
            f"{k} {d[k]}"
            for k in (
                "added",
                "updated",
                "skipped",
                "renamed",
                "duplicates",
                "failed",
                "pruned",
                "excluded",
                "transcribed",
            )
        )
        + f" (job {report.job_id})"
    )
    for f in lib.store.failures(report.job_id, limit=20):
        click.echo(f"  failed [{f['stage']}] {f['uri']}: {f['reason']}")


wait_option = click.option(
    "--wait",
    is_flag=True,
    help="If another assetlens process is writing to the library, wait for it instead of refusing.",
)


@contextlib.contextmanager
def _writing(ctx: click.Context, command: str, wait: bool) -> Iterator[None]:
    """Hold the library's writer lock around a command that writes in bulk (see enrich.lock)."""
    lib = library(ctx)

    def waiting(holder: str) -> None:
        who = f" ({holder})" if holder else ""
        click.echo(f"waiting for another assetlens process{who} to finish writing the library...", err=True)

    with writer_lock(lib.store, command, wait=wait, on_wait=waiting):
        yield


vocab_option = click.option(
    "--vocab",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Vocabulary file adding tags, synonyms and parents to the default (kept for later runs).",
)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--include", multiple=True, help="Only files matching this glob (repeatable).")
@click.option("--exclude", multiple=True, help="Skip files/folders matching this glob (repeatable).")
@click.option("--hidden", is_flag=True, help="Also ingest hidden files and folders.")
@click.option("--prune", is_flag=True, help="Remove assets under PATHS whose files are gone.")
@click.option("--force", is_flag=True, help="Re-decode and re-embed even unchanged files.")
@click.option(
    "--batch-size", type=click.IntRange(1, 4096), help="Images per batch (default 32 on a CPU, 128 on CUDA)."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Decode threads (default: cores, max 4 on a CPU; all on CUDA).",
)
@click.option("--no-video", is_flag=True, help="Skip video files.")
@click.option("--no-audio", is_flag=True, help="Skip audio files.")
@click.option(
    "--no-transcribe", is_flag=True, help="Do not transcribe speech (later: `assetlens transcribe`)."
)
@click.option(
    "--keyframes-max", type=click.IntRange(1, 10_000), help="Most keyframes per video (default 64)."
)
@click.option("--keyframes-min-gap", type=click.FloatRange(0.0), help="Seconds between keyframes, at least.")
@click.option("--keyframes-max-gap", type=click.FloatRange(0.1), help="Seconds between keyframes, at most.")
@vocab_option
@wait_option
@json_option
@click.pass_context
def ingest(
    ctx: click.Context,
    paths: tuple[Path, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    hidden: bool,
    prune: bool,
    force: bool,
    batch_size: int | None,
    workers: int | None,
    no_video: bool,
    no_audio: bool,
    no_transcribe: bool,
    keyframes_max: int | None,
    keyframes_min_gap: float | None,
    keyframes_max_gap: float | None,
    vocab: Path | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Scan PATHS, then embed, tag, transcribe and store every new or changed image, video and audio file."""
    with _writing(ctx, "ingest", wait):
        _ingest(ctx, paths, vocab, no_transcribe, as_json, **{
            "include": include, "exclude": exclude, "include_hidden": hidden, "prune": prune, "force": force,
            "batch_size": batch_size, "workers": workers, "video": not no_video, "audio": not no_audio,
            "transcribe": not no_transcribe,
            "keyframes": _keyframes(keyframes_max, keyframes_min_gap, keyframes_max_gap),
        })  # fmt: skip


@cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--model", help="The embeddings' model id (default: the files' own, else the library's).")
@click.option(
    "--batch-rows",
    type=click.IntRange(1, 1_000_000),
    default=50_000,
    show_default=True,
    help="Rows read and written per transaction (memory grows with it).",
)
@click.option("--no-index", is_flag=True, help="Leave the vector index for the next writer or search.")
@wait_option
@json_option
@click.pass_context
def import_(
    ctx: click.Context,
    paths: tuple[Path, ...],
    model: str | None,
    batch_rows: int,
    no_index: bool,
    wait: bool,
    as_json: bool,
) -> None:
    """Import embeddings computed elsewhere: Parquet files or folders (uri, embedding[, t, kind, meta,
    tags, created]) and clip-retrieval output folders (img_emb/*.npy with metadata/*.parquet).

    Each row is one vector of an asset (a video frame at t seconds, or a still); importing the same
    file again changes nothing. Rows that cannot be imported are reported with their row number
    and recorded as failures; the rest goes in. Then the vector index is brought level.
    """
    from assetlens.search.catalog.vector_import import import_vectors
    from assetlens.search.cli import build_progress

    lib = library(ctx)
    with _writing(ctx, "import", wait):
        bar = None
        if _show_progress(as_json):
            from tqdm import tqdm

            bar = tqdm(unit="row", unit_scale=True, desc="import", file=sys.stderr)

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.update(done - bar.n)

        try:
            report = import_vectors(lib.store, list(paths), model, batch_rows=batch_rows, progress=progress)
        finally:
            if bar is not None:
                bar.close()
        if not no_index:
            lib.index.sync(progress=build_progress(ctx))
    doc = report.as_dict()

    def show() -> None:
        click.echo(
            f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
            f"failed {report.failed} ({report.rows} rows, {doc['rows_per_s']} rows/s, job {report.job_id})"
        )
        for failure in report.failures[:20]:
            click.echo(f"  {failure['file']} row {failure['row']}: {failure['reason']}", err=True)
        if report.failed > 20:
            click.echo(f"  ... {report.failed - 20} more, as failures of job {report.job_id}", err=True)

    emit(ctx, doc, show)


def _keyframes(most: int | None, min_gap: float | None, max_gap: float | None) -> KeyframeOptions:
    gaps: dict[str, Any] = {"max_keyframes": most, "min_gap": min_gap, "max_gap": max_gap}
    return KeyframeOptions(**{k: v for k, v in gaps.items() if v is not None})


def _ingest(
    ctx: click.Context,
    paths: tuple[Path, ...],
    vocab: Path | None,
    no_transcribe: bool,
    as_json: bool,
    **flags: Any,
) -> None:
    lib = library(ctx)
    options = _options(as_json, **flags)
    transcriber = None if no_transcribe else Transcriber(WhisperSettings())
    ingester = Ingester(lib.store, lib.encoder, _tagger(lib, vocab, save=True), lib.index, transcriber)
    _run_ingest(ctx, lib, lambda: ingester.ingest(list(paths), options))


def _options(as_json: bool, **flags: Any) -> IngestOptions:
    """Ingest options: command-line flags over ASSETLENS_* settings over defaults."""
    settings = EnrichSettings()
    defaults: dict[str, Any] = {
        "max_pixels": settings.max_pixels, "batch_size": settings.batch_size, "workers": settings.workers
    }  # fmt: skip
    given = {k: v for k, v in flags.items() if v is not None}
    return IngestOptions(progress=_show_progress(as_json), **{**defaults, **given})


def _run_ingest(ctx: click.Context, lib: LibraryCore, run: Any) -> None:
    try:
        report = run()
    except KeyboardInterrupt:
        job = lib.store.last_job() or {}
        click.echo(
            f"interrupted: finished batches are saved (job {job.get('id')}); "
            f"run the same command again to resume",
            err=True,
        )
        ctx.exit(130)
    emit(ctx, report.as_dict(), lambda: _print_report(report, lib))


@cli.command()
@vocab_option
@wait_option
@json_option
@click.pass_context
def tag(ctx: click.Context, vocab: Path | None, wait: bool, as_json: bool) -> None:
    """Re-tag every asset from its stored vectors (no file is read)."""
    lib = library(ctx)
    with _writing(ctx, "tag", wait):
        count = retag_library(lib.store, _tagger(lib, vocab, save=True), _show_progress(as_json))
    emit(ctx, {"retagged": count}, lambda: click.echo(f"re-tagged {count} assets"))


@cli.command()
@wait_option
@json_option
@click.pass_context
def reembed(ctx: click.Context, wait: bool, as_json: bool) -> None:
    """Switch the library to the configured model (ASSETLENS_CLIP_MODEL): re-encode every asset.

    Interrupted, it resumes where it stopped when run again.
    """
    lib = library(ctx)
    with _writing(ctx, "reembed", wait):
        ingester = Ingester(lib.store, lib.encoder, _tagger(lib, None, save=False), lib.index)
        _run_ingest(ctx, lib, lambda: reembed_library(ingester, _options(as_json, transcribe=False)))


@cli.command()
@click.argument("refs", nargs=-1, metavar="[ID|PATH]...")
@click.option("--all", "every", is_flag=True, help="Every audio and video asset.")
@click.option("--missing", is_flag=True, help="Every audio and video asset without a transcript.")
@click.option(
    "--model", help="Whisper model: a CTranslate2 model dir or hub name (default: bundled tiny.en)."
)
@wait_option
@json_option
@click.pass_context
def transcribe(
    ctx: click.Context,
    refs: tuple[str, ...],
    every: bool,
    missing: bool,
    model: str | None,
    wait: bool,
    as_json: bool,
) -> None:
    """(Re-)transcribe the speech of selected assets, e.g. with another model; vectors and tags stay."""
    if bool(refs) + every + missing != 1:
        raise click.UsageError("give asset ids/paths, or --all, or --missing")
    with _writing(ctx, "transcribe", wait):
        _transcribe(ctx, refs, every, model, as_json)


def _transcribe(
    ctx: click.Context, refs: tuple[str, ...], every: bool, model: str | None, as_json: bool
) -> None:
    lib = library(ctx)
    if refs:
        assets = [find_asset(lib, ref) for ref in refs]
    else:
        assets = [a for a in lib.store.assets_with_sound() if every or needs_transcript(a)]
    settings = WhisperSettings() if model is None else WhisperSettings(whisper_model=model)
    job = lib.store.start_job("transcribe", {"assets": [a.id for a in assets], "model": model})
    try:
        report = transcribe_assets(lib.store, Transcriber(settings), assets, job, _show_progress(as_json))
    except KeyboardInterrupt:
        lib.store.finish_job(job, "interrupted", {})
        click.echo("interrupted: transcripts finished so far are saved", err=True)
        ctx.exit(130)
    lib.store.finish_job(job, "done", report.__dict__)
    doc = {**report.__dict__, "job_id": job}
    emit(ctx, doc, lambda: echo_fields(doc))


@cli.group()
def models() -> None:
    """CLIP models: list them, fetch weights for offline use."""


@models.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also list every open_clip architecture.")
@json_option
@click.pass_context
def models_list(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """List the registered CLIP models (and whether they are semantic)."""
    rows = [describe(spec) for spec in CLIP_MODELS.values()]
    doc: dict[str, Any] = {"models": rows}
    if show_all:
        doc["architectures"] = known_architectures()

    def human() -> None:
        for row in rows:
            flag = "" if row["semantic"] else "  [NOT SEMANTIC]"
            click.echo(f"{row['name']:<16} {row['model_id']:<36} {row['description']}{flag}")
        if show_all:
            click.echo("architectures (use ARCH@TAG or ARCH@random): " + ", ".join(doc["architectures"]))

    emit(ctx, doc, human)


@models.command("fetch")
@click.argument("name")
@json_option
@click.pass_context
def models_fetch(ctx: click.Context, name: str, as_json: bool) -> None:
    """Download NAME's weights into DATA_DIR/models (on a networked machine)."""
    from assetlens.models.weights import resolve_weights

    lib = library(ctx)
    path = resolve_weights(resolve_model(name), lib.model_settings)
    emit(ctx, {"name": name, "weights": str(path)}, lambda: click.echo(f"weights: {path}"))


for _command in (*COMMANDS, *API_COMMANDS):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="assetlens")
