"""The root ``assetlens`` group: global options, error handling, the library a command works on.

``--data-dir`` and ``--json`` are global: they work before the command name, after it, and
after a subcommand (``assetlens ingest PATH --data-dir DIR``). :func:`add_global_options` gives
every command and group its own copy of them, which records the value on the root's
:class:`CliState`; the library opens on first use, after all of them are parsed.

Exit codes: 0 success (files that failed are counted, not fatal), 2 usage error, 1 anything
else, 130 interrupted (finished batches are kept). Errors go to stderr in one line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from assetlens.enrich.errors import disk_full
from assetlens.enrich.facade import Library
from assetlens.models.errors import AssetLensError
from assetlens.models.settings import settings_error

DEFAULT_DATA_DIR = Path("assetlens-data")
DATA_DIR_HELP = "Library folder (SQLite store and index). Env: ASSETLENS_DATA_DIR."
JSON_HELP = "Print one JSON document."
NO_JSON = frozenset({"serve"})  # commands whose output is not a document


class CliState:
    """What the global options said, and the library they name (opened on first use)."""

    def __init__(self, fallback: Path, as_json: bool) -> None:
        self.fallback = fallback  # ASSETLENS_DATA_DIR or the default
        self.data_dir: Path | None = None  # given on the command line
        self.as_json = as_json
        self._library: Library | None = None

    def set_data_dir(self, value: Path) -> None:
        if self.data_dir is not None and self.data_dir != value:
            raise click.UsageError(f"--data-dir given twice: {self.data_dir} and {value}")
        self.data_dir = value

    def library(self) -> Library:
        if self._library is None:
            self._library = Library(self.folder)
        return self._library

    @property
    def folder(self) -> Path:
        """The library folder the options name."""
        return self.data_dir or self.fallback

    def close(self) -> None:
        if self._library is not None:
            self._library.close()


def state(ctx: click.Context) -> CliState:
    """The root command's state."""
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def library(ctx: click.Context) -> Library:
    """The library the global options name."""
    return state(ctx).library()


def _remember_data_dir(ctx: click.Context, _: click.Parameter, value: Path | None) -> None:
    if value is not None:
        state(ctx).set_data_dir(value)


def _remember_json(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        if ctx.info_name in NO_JSON:
            raise click.UsageError(f"--json does not apply to {ctx.info_name}")
        state(ctx).as_json = True


def _data_dir_option() -> click.Option:
    return click.Option(
        ["--data-dir"], type=click.Path(file_okay=False, path_type=Path), expose_value=False, is_eager=True,
        callback=_remember_data_dir, metavar="DIR", help=DATA_DIR_HELP,
    )  # fmt: skip


def _json_option() -> click.Option:
    return click.Option(
        ["--json", "as_json"], is_flag=True, expose_value=False, is_eager=True, callback=_remember_json,
        help=JSON_HELP,
    )  # fmt: skip


def add_global_options(group: click.Group) -> None:
    """Give every command and group below ``group`` its own ``--data-dir`` and ``--json``."""
    for command in group.commands.values():
        # Commands of NO_JSON get --json too, to refuse it by name rather than as unknown.
        command.params += [_data_dir_option(), _json_option()]
        if isinstance(command, click.Group):
            add_global_options(command)


class Root(click.Group):
    """Turns AssetLens errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if isinstance(exc, ValidationError):  # an ASSETLENS_* variable out of range
                exc = settings_error(exc)
            cli_state = ctx.obj if isinstance(ctx.obj, CliState) else None
            # Checked first: a full disk also surfaces wrapped, e.g. as a StoreError at open.
            full = disk_full(exc, cli_state.folder) if cli_state else None
            if full is None and not isinstance(exc, AssetLensError | FileNotFoundError):
                raise
            for line in str(full or exc).splitlines():
                click.echo(f"error: {line}", err=True)
            ctx.exit(1)


class _QuietOpenClip(logging.Filter):
    # open_clip logs "initialized randomly" on the root logger; our own warning says it better.
    def filter(self, record: logging.LogRecord) -> bool:
        return "open_clip" not in record.pathname


@click.group(cls=Root)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="ASSETLENS_DATA_DIR",
    default=str(DEFAULT_DATA_DIR), show_default=True, metavar="DIR", help=DATA_DIR_HELP,
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.version_option(package_name="assetlens")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path, as_json: bool) -> None:
    """AssetLens: AI enrichment and semantic search for digital asset libraries.

    Start with `assetlens ingest FOLDER` (it creates the library), then `assetlens search TEXT`.
    --data-dir and --json may also be given after the command. `assetlens COMMAND --help` says more.
    """
    handler = logging.StreamHandler()
    handler.addFilter(_QuietOpenClip())
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    if as_json and ctx.invoked_subcommand in NO_JSON:
        raise click.UsageError(f"--json does not apply to {ctx.invoked_subcommand}")
    cli_state = CliState(data_dir, as_json)
    # A --data-dir after the command is parsed later: it must agree with one given here.
    if ctx.get_parameter_source("data_dir") == click.core.ParameterSource.COMMANDLINE:
        cli_state.set_data_dir(data_dir)
    ctx.obj = cli_state
    ctx.call_on_close(cli_state.close)
