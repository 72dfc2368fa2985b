"""The ``assetlens`` command line: a thin layer over the facade (:mod:`assetlens.enrich.facade`).

Each module holds one group of commands and lists them in ``COMMANDS``; :func:`register_commands`
adds them all to the root group (:mod:`.root`) once, then gives each its global options.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from assetlens.enrich.cli import assets, catalog, hygiene, ingest, models, query, server, vectors
from assetlens.enrich.cli.root import add_global_options, cli

__all__ = ["cli", "main"]


def register_commands(group: click.Group) -> None:
    """Add every command to the root group, each with ``--data-dir`` and ``--json``."""
    for module in (ingest, vectors, query, assets, catalog, hygiene, models, server):
        for command in module.COMMANDS:
            group.add_command(command)
    add_global_options(group)


register_commands(cli)


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="assetlens")
    except SystemExit as done:
        if "ray" not in sys.modules:
            raise
        # After a run on Ray (disconnected by then), the interpreter's own teardown sometimes
        # crashes in Ray's native threads (SIGSEGV after the report was printed: seen once in
        # CI). The library is written and closed, so leave without that teardown.
        code = done.code if isinstance(done.code, int) else int(done.code is not None)
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
