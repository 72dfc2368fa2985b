"""Global options: ``--data-dir`` and ``--json`` before or after the command, on every command.

The walk goes over every command and subcommand registered on the root group and parses each
with the options in every place (parse only: nothing runs); then a few real runs check that what
parses also does what a user means.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from assetlens.enrich.cli import cli
from assetlens.enrich.cli.root import NO_JSON, CliState


def _leaves(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaves(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(_leaves(cli))


def _dummy(param: click.Parameter, tmp: Path) -> list[str]:
    """A value each required argument or option accepts at parse time."""
    kind = param.type
    if isinstance(kind, click.Choice):
        value = str(kind.choices[0])
    elif isinstance(kind, click.types.IntParamType | click.types.FloatParamType):
        value = "1"
    elif isinstance(kind, click.Path):
        value = str(tmp / ("folder" if not kind.file_okay else "file.jpg"))
    else:
        value = "1"
    return [value] if isinstance(param, click.Argument) else [param.opts[0], value]


def _required(command: click.Command, tmp: Path) -> list[str]:
    return [v for p in command.params if p.required for v in _dummy(p, tmp)]


def _resolve(args: list[str]) -> CliState:
    """Parse ``assetlens ARGS`` as click does, down to the leaf command, without running it."""
    root = cli.make_context("assetlens", list(args))
    with root:
        root.invoke(cli.callback, **root.params)  # the root callback creates the state
        ctx, command, rest = root, cli, [*root._protected_args, *root.args]
        while isinstance(command, click.Group):
            name, sub, rest = command.resolve_command(ctx, rest)
            assert sub is not None and name is not None
            ctx, command = sub.make_context(name, rest, parent=ctx), sub
            rest = [*ctx._protected_args, *ctx.args] if isinstance(sub, click.Group) else ctx.args
        assert not rest, rest
        state = root.obj
        assert isinstance(state, CliState)
        return state


def _placements(path: tuple[str, ...], required: list[str], options: list[str]) -> Iterator[list[str]]:
    yield [*options, *path, *required]  # before the command
    for i in range(1, len(path)):  # after a group's name
        yield [*path[:i], *options, *path[i:], *required]
    yield [*path, *options, *required]  # after the command's name
    yield [*path, *required, *options]  # at the end, after the arguments


@pytest.fixture
def dummies(tmp_path: Path) -> Path:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.jpg").write_bytes(b"x")
    return tmp_path


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_global_options_parse_the_same_anywhere(
    path: tuple[str, ...], command: click.Command, dummies: Path
) -> None:
    library = dummies / "my library"
    json_flag = [] if path[-1] in NO_JSON else ["--json"]
    placements = list(
        _placements(path, _required(command, dummies), ["--data-dir", str(library), *json_flag])
    )
    for args in placements:
        state = _resolve(args)
        assert state.folder == library, args
        assert state.as_json is bool(json_flag), args
    # Split: one before the command, one after it.
    state = _resolve([*json_flag, *path, *_required(command, dummies), "--data-dir", str(library)])
    assert state.folder == library and state.as_json is bool(json_flag)
    # Given twice, the same folder is fine; two different ones are refused wherever they are.
    assert _resolve(
        ["--data-dir", str(library), *path, "--data-dir", str(library), *_required(command, dummies)]
    )
    with pytest.raises(click.UsageError, match="--data-dir given twice"):
        _resolve(["--data-dir", str(library), *path, *_required(command, dummies), "--data-dir", "elsewhere"])


def test_every_command_is_walked() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"ingest", "search", "stats", "models fetch", "meta schema set", "keys revoke", "serve"} <= names
    assert len(names) >= 20


def invoke(*args: str, env: dict[str, str | None] | None = None) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), env={"ASSETLENS_CLIP_MODEL": "tiny", **(env or {})})


def test_ingest_then_stats_with_the_options_after_the_command(tmp_path: Path, photos: Path) -> None:
    data = tmp_path / "data dir"
    ingested = invoke("ingest", str(photos), "--data-dir", str(data), "--json", "--no-transcribe")
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["added"] == 8 and (data / "assetlens.db").is_file()
    after = invoke("stats", "--json", "--data-dir", str(data))
    before = invoke("--json", "--data-dir", str(data), "stats")
    assert after.exit_code == before.exit_code == 0, after.output + before.output
    assert json.loads(after.stdout)["assets"]["image"] == 8
    assert json.loads(after.stdout)["assets"] == json.loads(before.stdout)["assets"]
    # ASSETLENS_DATA_DIR is the default that --data-dir overrides, wherever it is given.
    from_env = invoke("--json", "stats", env={"ASSETLENS_DATA_DIR": str(data)})
    assert json.loads(from_env.stdout)["data_dir"] == str(data)
    overridden = invoke("stats", "--data-dir", str(tmp_path / "none"), env={"ASSETLENS_DATA_DIR": str(data)})
    assert overridden.exit_code == 1 and "no AssetLens library in" in overridden.output


def test_models_fetch_takes_data_dir_after_its_name_and_fails_offline_with_the_fix(tmp_path: Path) -> None:
    result = invoke("models", "fetch", "ViT-B-32", "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 1
    assert "No such option" not in result.output
    assert "open_clip_pytorch_model.bin" in result.output and "ASSETLENS_CLIP_CHECKPOINT" in result.output


def test_conflicting_or_misplaced_global_options_are_usage_errors(tmp_path: Path) -> None:
    twice = invoke("--data-dir", str(tmp_path / "a"), "stats", "--data-dir", str(tmp_path / "b"))
    assert twice.exit_code == 2 and "--data-dir given twice" in twice.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    for args in (["serve", "--json"], ["--json", "serve"]):
        refused = invoke(*args, "--data-dir", str(tmp_path / "a"))
        assert refused.exit_code == 2 and "--json does not apply to serve" in refused.output, refused.output
