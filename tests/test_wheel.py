"""The built wheel installs one import name, ``assetlens``, with every module and data file.

The wheel is built from a copy of the source tree (what git would commit) with the setuptools
already installed (offline: no build isolation), then installed with ``--no-deps`` into a fresh
virtual environment, which sees the dependencies already installed here through a ``.pth`` file
naming this environment's site-packages (a plain path: the ``.pth`` files there, among them the
editable install of AssetLens, are not run). Everything runs from a temporary folder, so the
source tree is never on ``sys.path``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from helpers import PHOTOS

ROOT = Path(__file__).parents[1]
PACKAGES = ("models", "enrich", "search")  # the top-level folders that install below assetlens

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the files git would commit (tracked, and untracked but not ignored)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("the wheel test copies the source tree with git: run it from a clone")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    source = tmp_path_factory.mktemp("source")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(dist), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = dist.glob("assetlens-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed and the dependencies visible; its python."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _run(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_wheel_holds_one_top_level_name_and_every_file_of_the_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    with zipfile.ZipFile(wheel) as archive:
        top_level = archive.read(f"{info}/top_level.txt").decode().split()
    assert top_level == ["assetlens"]
    assert {n.split("/")[0] for n in names} == {"assetlens", info}
    expected = {"assetlens/__init__.py", "assetlens/py.typed"}
    for package in PACKAGES:  # every module and data file, so a package missing from pyproject shows
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                expected.add(f"assetlens/{path.relative_to(ROOT).as_posix()}")
    assert {"assetlens/models/vocab/default.txt", "assetlens/search/api/static/index.html"} <= expected
    assert not expected - names, sorted(expected - names)
    assert not [n for n in names if n.startswith("assetlens/tests/") or n.startswith("assetlens/notebooks/")]


def test_installed_wheel_imports_as_assetlens_only(fresh: Path, tmp_path: Path) -> None:
    where = _run(fresh, "import assetlens; print(assetlens.__file__); print(assetlens.__version__)", tmp_path)
    assert where.returncode == 0, where.stderr
    path, version = where.stdout.split()
    assert Path(path).is_relative_to(fresh.parents[1]) and version == "0.1.0"
    for name in ("models", "search", "enrich"):
        missing = _run(fresh, f"import {name}", tmp_path)
        assert missing.returncode == 1 and f"No module named '{name}'" in missing.stderr, (name, missing)


def test_installed_wheel_ingests_and_reports(fresh: Path, tmp_path: Path) -> None:
    code = f"""
import assetlens
with assetlens.open("data", model="tiny") as lib:
    print(lib.ingest({str(PHOTOS / "cat.jpg")!r}, transcribe=False).added)
    stats = lib.stats()
    print(stats["assets"]["image"], stats["top_tags"] != {{}})
"""
    done = _run(fresh, code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1", "True"]  # tagged: the vocabulary shipped in the wheel
    script = subprocess.run(
        [str(fresh.parent / "assetlens"), "--json", "stats", "--data-dir", "data"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert script.returncode == 0 and '"image": 1' in script.stdout, script.stderr
