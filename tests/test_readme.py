"""README.md as written: the quickstart's commands and the Python API example run, and the API list
names every public name and method.

Both run in a temporary folder holding a copy of ``tests/data`` (the paths the README uses), so
nothing is written into the clone.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MEMO_SPRING_AT

import assetlens

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    return README[start : README.index("\n## ", start + 1)]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A folder laid out as the clone's root for what the README reads: ``tests/data``."""
    for folder in ("photos", "speech"):
        shutil.copytree(ROOT / "tests" / "data" / folder, tmp_path / "tests" / "data" / folder)
    return tmp_path


def _quickstart_commands() -> list[list[str]]:
    """The ``assetlens`` commands of quickstart command 1, after the set-up, as argv lists."""
    line = README.split("\n# 1. ", 1)[1].splitlines()[1]  # what .ci/run runs
    commands = []
    for part in line.split(" && "):
        argv = shlex.split(part)
        env = [a for a in argv if re.fullmatch(r"[A-Z_]+=.*", a)]
        rest = argv[len(env) :]
        if rest and rest[0] == ".venv/bin/assetlens":
            commands.append([*env, *rest[1:]])
    return commands


@pytest.mark.slow
def test_quickstart_commands_run_and_the_last_one_finds_the_spoken_words(clone: Path) -> None:
    commands = _quickstart_commands()
    assert commands[0][-3:] == ["ingest", "tests/data/photos", "tests/data/speech"], commands
    assert commands[-1][-4:] == ["search", "spring collection", "--mode", "lexical"], commands
    outputs = []
    for command in commands:
        env = dict(a.split("=", 1) for a in command if re.fullmatch(r"[A-Z_]+=.*", a))
        argv = [a for a in command if a not in {f"{k}={v}" for k, v in env.items()}]
        done = subprocess.run(
            [sys.executable, "-m", "assetlens.enrich", *argv],
            cwd=clone, capture_output=True, text=True, timeout=600, env={**os.environ, **env},
        )  # fmt: skip
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        outputs.append(done.stdout)
    assert "added 9," in outputs[0] and "failed 0" in outputs[0] and "transcribed 1" in outputs[0]
    assert len(re.findall(r"^ +\d+\. ", outputs[1], re.M)) == 8  # every photo, in an arbitrary order
    first = outputs[-1].splitlines()
    at = re.search(r"spring_memo\.ogg @ (\d+\.\d)s", first[0])
    assert at and MEMO_SPRING_AT[0] <= float(at.group(1)) <= MEMO_SPRING_AT[1], first
    assert first[1].strip().lower().startswith('said: "the spring collection launches')


@pytest.mark.slow
def test_python_api_example_runs(clone: Path) -> None:
    code = re.search(r"```python\n(.*?)```", _section("Python API"), re.S)
    assert code is not None
    done = subprocess.run(
        [sys.executable, "-c", code.group(1)], cwd=clone, capture_output=True, text=True, timeout=600,
        env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"AssetLens {assetlens.__version__}\n")
    assert "9 added, 0 unchanged, 0 failed" in out and "9/9 files" in out
    assert re.search(r"spring_memo\.ogg @ 8\.\ds: The spring collection launches", out), out
    assert "rocket.jpg" in out and "{'campaign': 'space week', 'rights_expires': '2030-06-30'}" in out
    assert "[('space week', 1)] 8 images" in out
    assert "LibraryNotFoundError no AssetLens library in no-library-here yet" in out
    assert (clone / "space-week.jsonl").read_text().count("\n") == 1
    assert not (clone / "no-library-here").exists()


def test_the_api_list_names_every_public_name_and_method() -> None:
    section = _section("Python API")
    missing = [name for name in assetlens.__all__ if not re.search(rf"`(assetlens\.)?{name}\b", section)]
    methods = [n for n in dir(assetlens.Library) if not n.startswith("_")] + ["settings", "core"]
    missing += [f"Library.{n}" for n in methods if not re.search(rf"[`/ ]{n}[(`,]", section)]
    assert not missing, missing
