"""Library hygiene commands: ``duplicates`` (near-duplicate groups) and ``tags`` (learned tags)."""

from __future__ import annotations

from typing import Any

import click

from assetlens.enrich.cli.common import emit, filter_option, show_progress, wait_option
from assetlens.enrich.cli.root import library
from assetlens.enrich.facade.hygiene import DuplicateGroups
from assetlens.search.learned import LearnReport
from assetlens.search.settings import DUPLICATES_MAX_DISTANCE, DUPLICATES_THRESHOLD


def _print_groups(found: DuplicateGroups) -> None:
    if found.hashed:
        click.echo(f"hashed {found.hashed} assets stored before perceptual hashes")
    for item in found.unreadable:
        click.echo(f"  cannot hash #{item['asset_id']} {item['uri']}: {item['reason']}")
    if not found.groups:
        click.echo("no near-duplicates")
    for number, group in enumerate(found.groups, 1):
        click.echo(f"group {number}: {len(group.members)} assets")
        for m in group.members:
            size = f"{m.width}x{m.height}" if m.width and m.height else "?"
            lead = "*" if m is group.representative else " "
            click.echo(
                f"  {lead} #{m.asset_id}  {m.similarity:.3f}  {m.distance:>2} bits  {size:>11}  {m.uri}"
            )


@click.command()
@click.option(
    "--threshold", type=click.FloatRange(0.8, 1.0),
    help=f"Least CLIP similarity (default ASSETLENS_DUPLICATES_THRESHOLD, {DUPLICATES_THRESHOLD}).",
)  # fmt: skip
@click.option(
    "--max-distance", type=click.IntRange(0, 40),
    help=f"Most differing perceptual-hash bits of 128 (default ASSETLENS_DUPLICATES_MAX_DISTANCE, "
    f"{DUPLICATES_MAX_DISTANCE}).",
)  # fmt: skip
@filter_option
@click.option("--rebuild", is_flag=True, help="Compare the whole library again.")
@wait_option
@click.pass_context
def duplicates(
    ctx: click.Context, threshold: float | None, max_distance: int | None, filter_text: str | None,
    rebuild: bool, wait: bool,
) -> None:  # fmt: skip
    """List near-duplicate groups: the same shot at other sizes, cropped, recompressed, brightened,
    watermarked. Both the CLIP similarity and the perceptual hashes must agree.

    Each group lists its representative first (largest picture, then oldest), then each member
    with its similarity to it and the differing hash bits. Assets ingested before hashes existed
    have their files read once for them. --json: {"groups": [{"representative", "assets":
    [{"asset_id", "uri", "similarity", ...}]}], ...}.
    """
    found = library(ctx).duplicates(
        threshold=threshold, max_distance=max_distance, filter=filter_text, rebuild=rebuild, wait=wait,
        progress=_progress(ctx),
    )  # fmt: skip
    emit(ctx, found.as_dict(), lambda: _print_groups(found))


def _progress(ctx: click.Context) -> Any:
    if not show_progress(ctx):
        return None

    def draw(done: int, total: int) -> None:
        click.echo(
            f"\rhashing files stored before perceptual hashes: {done}/{total}", nl=done == total, err=True
        )

    return draw


@click.group()
def tags() -> None:
    """Tags learned from examples: learn, relearn, list, show, forget."""


examples = click.option(
    "--positive", "-p", multiple=True, metavar="ID|PATH|FILTER",
    help="Assets that have the tag: an id, an ingested file's path, or a filter (every match). Repeatable.",
)  # fmt: skip
negatives = click.option(
    "--negative",
    "-n",
    multiple=True,
    metavar="ID|PATH|FILTER",
    help="Assets that do not have it. Repeatable.",
)


def _figure(value: float | None) -> str:
    return "n/a (no negative examples)" if value is None else f"{value:.2f}"


def _print_report(report: LearnReport) -> None:
    r = report.tag.report
    click.echo(
        f"{report.tag.name}: {r['positives']} positive, {r['negatives']} negative examples, "
        f"{r['background']} background assets"
    )
    click.echo(
        f"cross-validated ({r['folds']} folds): precision {_figure(r['precision'])}, "
        f"recall {_figure(r['recall'])}; went to {r['background_tagged']:.0%} of held-out background assets"
    )
    click.echo(f"tagged {report.tagged} assets (score >= {report.tag.threshold})")


@tags.command("learn")
@click.argument("name")
@examples
@negatives
@click.option("--replace", is_flag=True, help="Allow a vocabulary tag's name: the learned tag replaces it.")
@wait_option
@click.pass_context
def learn(ctx: click.Context, name: str, positive: tuple[str, ...], negative: tuple[str, ...], replace: bool,
          wait: bool) -> None:  # fmt: skip
    """Learn tag NAME from examples (at least 3 positives) and tag every asset, now and later.

    Reports cross-validated precision and recall. Filter with tag:NAME or tag:NAME>=0.8.
    """
    report = library(ctx).learn_tag(name, positive, negative, replace=replace, wait=wait)
    emit(ctx, report.as_dict(), lambda: _print_report(report))


@tags.command("relearn")
@click.argument("name")
@examples
@negatives
@wait_option
@click.pass_context
def relearn(
    ctx: click.Context, name: str, positive: tuple[str, ...], negative: tuple[str, ...], wait: bool
) -> None:
    """Add examples to learned tag NAME (an asset may change sides), fit it again and re-tag."""
    report = library(ctx).relearn_tag(name, positive, negative, wait=wait)
    emit(ctx, report.as_dict(), lambda: _print_report(report))


@tags.command("list")
@click.pass_context
def list_tags(ctx: click.Context) -> None:
    """List the learned tags."""
    found = library(ctx).learned_tags()

    def human() -> None:
        if not found:
            click.echo("no learned tags")
        for t in found:
            r = t.report
            click.echo(
                f"{t.name}: {len(t.positives)}+/{len(t.negatives)}- examples, "
                f"precision {_figure(r.get('precision'))}, recall {_figure(r.get('recall'))}, model {t.model}"
            )

    emit(ctx, {"learned": [t.summary() for t in found]}, human)


@tags.command("show")
@click.argument("name")
@click.pass_context
def show(ctx: click.Context, name: str) -> None:
    """Show learned tag NAME: examples, cross-validation report, assets tagged."""
    doc = library(ctx).learned_tag(name)

    def human() -> None:
        for key, value in doc.items():
            click.echo(f"{key}: {value}")

    emit(ctx, doc, human)


@tags.command("forget")
@click.argument("name")
@wait_option
@click.pass_context
def forget(ctx: click.Context, name: str, wait: bool) -> None:
    """Forget learned tag NAME: its classifier, examples and the tags it gave."""
    tag = library(ctx).forget_tag(name, wait=wait)
    emit(ctx, {"forgot": tag.name}, lambda: click.echo(f"forgot {tag.name}"))


COMMANDS = (duplicates, tags)
