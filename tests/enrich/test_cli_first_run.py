"""The first run, as a new user types it: help texts, a missing or empty folder, no library yet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from helpers import PHOTOS

import assetlens
from assetlens.enrich.cli import cli

NO_LIBRARY = "error: no AssetLens library in {data} yet: ingest some files first (`assetlens ingest FOLDER`)"


def invoke(*args: str, model: str = "tiny") -> Result:
    return CliRunner().invoke(cli, list(args), env={"ASSETLENS_CLIP_MODEL": model})


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
    return found


def test_root_help_says_where_to_start() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and "assetlens ingest FOLDER" in result.output
    assert "--data-dir and --json may also be given after the command" in result.output


@pytest.mark.parametrize("path", _commands(cli), ids=" ".join)
def test_every_command_explains_itself_and_its_global_options(path: tuple[str, ...]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    summary = result.output.split("\n\n")[1].strip()
    assert len(summary) > 20, summary  # a sentence, not a bare name
    assert "--data-dir DIR" in result.output and "--json" in result.output


@pytest.mark.parametrize(
    "command", [["stats"], ["search", "red shoe"], ["show", "1"], ["facets", "kind"], ["transcript", "1"]]
)
def test_reading_before_any_ingest_says_so_and_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "my library"
    result = invoke(*command, "--data-dir", str(data))
    assert result.exit_code == 1 and result.output.startswith(NO_LIBRARY.format(data=data)), result.output
    assert len(result.output.strip().splitlines()) == 1 and not data.exists()


def test_ingest_of_a_missing_folder_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = invoke("ingest", str(tmp_path / "Photos 2024"), "--data-dir", str(data))
    assert result.exit_code == 1 and not data.exists()
    assert result.output.strip() == f"error: no such file or folder: {tmp_path / 'Photos 2024'}"


def test_ingest_of_a_folder_without_media_warns(tmp_path: Path) -> None:
    empty = tmp_path / "notes"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    result = invoke("ingest", str(empty), "--data-dir", str(tmp_path / "data"), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["added"] == 0
    assert f"warning: found no image, video or audio file in {empty}" in result.stderr


def test_ingest_without_weights_is_one_line_with_the_fix_and_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = invoke("ingest", str(PHOTOS), "--data-dir", str(data), model="ViT-B-32")  # offline, no weights
    assert result.exit_code == 1 and not data.exists(), result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: CLIP weights for ViT-B-32") and "ASSETLENS_CLIP_MODEL=tiny" in line


def test_version_is_the_packages() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "assetlens.enrich", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout == f"assetlens, version {assetlens.__version__}\n"
