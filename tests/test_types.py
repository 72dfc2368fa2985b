"""mypy finds no error in the package, type-checked as ``assetlens`` (the name its modules import).

Run from the clone's root, mypy would see ``models``, ``enrich`` and ``search`` as top-level
packages and every ``assetlens.*`` import as missing (each then typed ``Any``), so nothing between
modules would be checked. Here it runs in a folder holding an ``assetlens`` link to the clone,
with the project's configuration (``[tool.mypy]`` in pyproject.toml).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.slow


def test_mypy_checks_the_package_as_assetlens(tmp_path: Path) -> None:
    (tmp_path / "assetlens").symlink_to(ROOT, target_is_directory=True)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(ROOT / ".mypy_cache" / "as-assetlens")],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    checked = int(done.stdout.rsplit(" in ", 1)[1].split()[0])
    assert checked > 100 and "Success: no issues found" in done.stdout, done.stdout
