"""``assetlens import`` and ``assetlens search --vector-file`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from assetlens.enrich.cli import cli


def invoke(data_dir: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args])
    assert result.exit_code == code, result.output
    return result.output


def test_import_then_search_by_a_vector_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((40, 512)).astype(np.float32)
    embeddings = [*vectors.tolist(), [1.0] * 3]
    uris = [f"/imported/{i}.jpg" for i in range(41)]
    pq.write_table(
        pa.table({"uri": uris, "embedding": pa.array(embeddings, pa.list_(pa.float32()))}),
        tmp_path / "e.parquet",
    )
    np.save(tmp_path / "query.npy", vectors[7][None, :])
    data = tmp_path / "lib"

    report = json.loads(invoke(data, "import", str(tmp_path / "e.parquet"), "--model", "ViT-B-32", "--json"))

    assert (report["added"], report["updated"], report["failed"]) == (40, 0, 1)
    assert report["failures"][0]["row"] == 40 and "wrong dimension 3" in report["failures"][0]["reason"]
    again = json.loads(invoke(data, "import", str(tmp_path / "e.parquet"), "--json"))
    assert (again["added"], again["unchanged"]) == (0, 40)
    refused = invoke(data, "import", str(tmp_path / "e.parquet"), "--model", "ViT-L-14", code=1)
    assert "ViT-L-14" in refused and "ViT-B-32" in refused

    page = json.loads(
        invoke(data, "search", "--vector-file", str(tmp_path / "query.npy"), "--limit", "3", "--json")
    )

    assert page["model"] == "ViT-B-32" and page["results"][0]["uri"] == "/imported/7.jpg"
    np.save(tmp_path / "short.npy", vectors[7][:100])
    assert "has 100 values" in invoke(data, "search", "--vector-file", str(tmp_path / "short.npy"), code=1)
    status = json.loads(invoke(data, "index", "status", "--json"))
    assert status["vectors"] == 40 and status["in_step"]

    out = tmp_path / "back.parquet"
    assert "exported 40 vectors as parquet" in invoke(data, "export", "--output", str(out))
    copied = json.loads(invoke(tmp_path / "copy", "import", str(out), "--json"))  # the file names its model
    assert (copied["added"], copied["model"]) == (40, "ViT-B-32")
    assert "--output FILE" in invoke(data, "export", "--format", "parquet", code=2)
