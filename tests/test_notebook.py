"""The demo notebook runs top to bottom (real ingest with the tiny CLIP model and Whisper tiny.en),
through the public API alone."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "search_demo.ipynb"


def test_the_notebook_uses_only_the_public_api() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    ours = re.findall(r"^\s*(?:from|import) (assetlens\S*|enrich|search|models)\b.*$", code, re.M)
    assert ours == ["assetlens"], ours  # `import assetlens`, nothing below it
    assert "CliRunner" not in code and "click" not in code and ".core" not in code


@pytest.mark.slow
def test_search_demo_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits this environment: the tiny model, offline hubs (conftest), a private
    # temporary folder, and matplotlib drawing into the notebook.
    monkeypatch.setenv("ASSETLENS_CLIP_MODEL", "tiny")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert len(pictures) >= 5  # four result grids and the tag chart
    assert "'added': 11" in text and "'failed': 0" in text
    assert "campaign: [('space week', 3), ('morning', 1)]" in text
    assert "3 assets exported" in text
    assert not list(tmp_path.glob("assetlens-demo-*")), "the notebook removes its library"
