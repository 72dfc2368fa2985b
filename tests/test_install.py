"""The editable install the README makes owns one import name, ``assetlens``, as the wheel does
(``tests/test_wheel.py``): from outside the clone, ``import assetlens`` is the clone's root and
``models``, ``search`` and ``enrich`` are not importable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]

CODE = """
import importlib, importlib.metadata as metadata, assetlens
print(assetlens.__file__)
print(sorted(name for name, dists in metadata.packages_distributions().items() if "assetlens" in dists))
for name in ("models", "search", "enrich"):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        print(exc.name)
    else:
        print("imported", name)
print(importlib.import_module("assetlens.search.library").__file__)
"""


def test_the_editable_install_owns_one_import_name(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CODE], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
    )
    lines = done.stdout.splitlines()
    assert Path(lines[0]) == ROOT / "__init__.py"
    assert lines[1] == "['assetlens']"  # the distribution's top-level names
    assert lines[2:5] == ["models", "search", "enrich"]  # each one not found
    assert Path(lines[5]) == ROOT / "search" / "library.py"
