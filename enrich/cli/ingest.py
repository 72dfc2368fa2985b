"""Enrichment commands: ``ingest``, ``tag``, ``reembed``, ``transcribe``."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from assetlens.enrich.cli.common import echo_fields, emit, progress_bar, show_progress, wait_option
from assetlens.enrich.cli.root import library
from assetlens.enrich.facade import Library
from assetlens.enrich.writer import IngestReport

REPORTED = (
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

vocab_option = click.option(
    "--vocab", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Vocabulary file adding tags, synonyms and parents to the default (kept for later runs).",
)  # fmt: skip


@click.command()
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
@click.option(
    "--engine", type=click.Choice(["local", "ray", "auto"]),
    help="Where the stages run: local (this process; the default), ray (the Ray cluster at "
    "--ray-address, else a new local one), auto (a running Ray cluster if there is one, else local). "
    "Env: ASSETLENS_ENGINE.",
)  # fmt: skip
@click.option(
    "--ray-address", metavar="ADDR",
    help="The Ray cluster to join: the head's HOST:PORT (as `ray start` prints it). "
    "Env: ASSETLENS_RAY_ADDRESS.",
)  # fmt: skip
@vocab_option
@wait_option
@click.pass_context
def ingest(
    ctx: click.Context, paths: tuple[Path, ...], include: tuple[str, ...], exclude: tuple[str, ...],
    hidden: bool, prune: bool, force: bool, batch_size: int | None, workers: int | None, no_video: bool,
    no_audio: bool, no_transcribe: bool, keyframes_max: int | None, keyframes_min_gap: float | None,
    keyframes_max_gap: float | None, engine: Any, ray_address: str | None, vocab: Path | None,
    wait: bool,
) -> None:  # fmt: skip
    """Scan PATHS, then embed, tag, transcribe and store every new or changed image, video and audio file."""
    lib = library(ctx)
    # stdout carries the report alone: what libraries print meanwhile (Ray relays its cluster's
    # messages to stdout) goes to stderr.
    with progress_bar(ctx) as progress, contextlib.redirect_stdout(sys.stderr):
        report = _interruptible(ctx, lib, lambda: lib.ingest(
            paths, include=include, exclude=exclude, hidden=hidden, prune=prune, force=force,
            batch_size=batch_size, workers=workers, video=not no_video, audio=not no_audio,
            transcribe=not no_transcribe, keyframes_max=keyframes_max, keyframes_min_gap=keyframes_min_gap,
            keyframes_max_gap=keyframes_max_gap, engine=engine, ray_address=ray_address, vocab=vocab,
            wait=wait, progress=progress,
        ))  # fmt: skip
    emit(ctx, report.as_dict(), lambda: _print_report(report, lib))


def _interruptible(ctx: click.Context, lib: Library, run: Any) -> IngestReport:
    try:
        report: IngestReport = run()
    except KeyboardInterrupt:
        job = lib.job() or {}
        saved = f"interrupted: finished batches are saved (job {job.get('id')})"
        click.echo(f"{saved}; run the same command again to resume", err=True)
        ctx.exit(130)
    return report


def _print_report(report: IngestReport, lib: Library) -> None:
    d = report.as_dict()
    click.echo(", ".join(f"{k} {d[k]}" for k in REPORTED) + f" (job {report.job_id})")
    for f in lib.failures(report.job_id, limit=20):
        click.echo(f"  failed [{f['stage']}] {f['uri']}: {f['reason']}")


@click.command()
@vocab_option
@wait_option
@click.pass_context
def tag(ctx: click.Context, vocab: Path | None, wait: bool) -> None:
    """Re-tag every asset from its stored vectors (no file is read)."""
    count = library(ctx).retag(vocab=vocab, wait=wait, progress=show_progress(ctx))
    emit(ctx, {"retagged": count}, lambda: click.echo(f"re-tagged {count} assets"))


@click.command()
@wait_option
@click.pass_context
def reembed(ctx: click.Context, wait: bool) -> None:
    """Switch the library to the configured model (ASSETLENS_CLIP_MODEL): re-encode every asset.

    Interrupted, it resumes where it stopped when run again.
    """
    lib = library(ctx)
    with progress_bar(ctx) as progress:
        report = _interruptible(ctx, lib, lambda: lib.reembed(wait=wait, progress=progress))
    emit(ctx, report.as_dict(), lambda: _print_report(report, lib))


@click.command()
@click.argument("refs", nargs=-1, metavar="[ID|PATH]...")
@click.option("--all", "every", is_flag=True, help="Every audio and video asset.")
@click.option("--missing", is_flag=True, help="Every audio and video asset without a transcript.")
@click.option(
    "--model", help="Whisper model: a CTranslate2 model dir or hub name (default: bundled tiny.en)."
)
@wait_option
@click.pass_context
def transcribe(
    ctx: click.Context, refs: tuple[str, ...], every: bool, missing: bool, model: str | None, wait: bool
) -> None:
    """(Re-)transcribe the speech of selected assets, e.g. with another model; vectors and tags stay."""
    if bool(refs) + every + missing != 1:
        raise click.UsageError("give asset ids/paths, or --all, or --missing")
    chosen: Any = refs or ("all" if every else "missing")
    try:
        job, report = library(ctx).transcribe(chosen, model=model, wait=wait, progress=show_progress(ctx))
    except KeyboardInterrupt:
        click.echo("interrupted: transcripts finished so far are saved", err=True)
        ctx.exit(130)
    doc = {**report.__dict__, "job_id": job}
    emit(ctx, doc, lambda: echo_fields(doc))


COMMANDS = (ingest, tag, reembed, transcribe)
