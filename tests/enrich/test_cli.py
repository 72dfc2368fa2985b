"""The ``assetlens`` command line: JSON contracts, exit codes, interruption and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from assetlens.enrich.cli import cli
from assetlens.models.precision import onnx_available

N_PHOTOS = 8


def run(data_dir: Path, *args: str, code: int = 0) -> dict:
    result = CliRunner().invoke(
        cli, ["--data-dir", str(data_dir), *args], env={"ASSETLENS_CLIP_MODEL": "tiny"}
    )
    assert result.exit_code == code, result.output + str(result.exception)
    return json.loads(result.stdout) if "--json" in args and code == 0 else {"output": result.output}


def test_ingest_search_similar_show_stats_json(tmp_path: Path, photos: Path) -> None:
    data = tmp_path / "data"

    ingested = run(data, "ingest", str(photos), "--json")
    again = run(data, "ingest", str(photos), "--json")
    found = run(data, "search", "an astronaut", "--limit", "3", "--json")
    cat = run(data, "show", str(photos / "cat.jpg"), "--json")
    similar = run(data, "similar", "--asset", str(cat["id"]), "--json")
    stats = run(data, "stats", "--json")

    assert {"added", "updated", "skipped", "failed", "job_id"} <= set(ingested)
    assert ingested["added"] == N_PHOTOS and again["skipped"] == N_PHOTOS
    assert len(found["results"]) == 3
    assert set(found["results"][0]) >= {"asset_id", "uri", "score", "kind", "tags"}
    scores = [r["score"] for r in found["results"]]
    assert scores == sorted(scores, reverse=True)
    assert cat["uri"] == str(photos / "cat.jpg") and cat["kind"] == "image"
    assert {"tag", "score", "source"} <= set(cat["tags"][0]) and "embedded" in cat and "exif" in cat
    assert cat["id"] not in [r["asset_id"] for r in similar["results"]]
    assert stats["assets"]["image"] == N_PHOTOS and stats["index"]["in_step"] is True


def test_show_reports_embedded_metadata(tmp_path: Path) -> None:
    folder = tmp_path / "shoot"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R5"  # Make, Model
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 10:30:00"  # DateTimeOriginal
    Image.new("RGB", (320, 200), "orange").save(folder / "shot.jpg", exif=exif)
    data = tmp_path / "data"
    run(data, "ingest", str(folder))

    shown = run(data, "show", str(folder / "shot.jpg"), "--json")

    assert shown["created"].startswith("2024-05-01T10:30:00")
    assert shown["embedded"]["camera"] == "Canon EOS R5"


def test_models_list_flags_tiny_as_not_semantic() -> None:
    result = CliRunner().invoke(cli, ["models", "list"])
    tiny = next(line for line in result.output.splitlines() if line.startswith("tiny"))
    assert result.exit_code == 0 and "NOT SEMANTIC" in tiny
    listed = json.loads(CliRunner().invoke(cli, ["models", "list", "--json"]).stdout)
    assert {m["name"]: m["semantic"] for m in listed["models"]}["tiny"] is False


def test_exit_codes_and_one_line_errors(tmp_path: Path, photos: Path) -> None:
    data = tmp_path / "data"
    assert "no such command" in run(data, "nonsense", code=2)["output"].lower()
    assert "either" in run(data, "similar", code=2)["output"]
    missing = run(data, "ingest", str(tmp_path / "nowhere"), code=1)["output"]
    assert missing.startswith("error:") and "nowhere" in missing and len(missing.strip().splitlines()) == 1
    run(data, "ingest", str(photos))
    wrong_model = CliRunner().invoke(
        cli, ["--data-dir", str(data), "ingest", str(photos)], env={"ASSETLENS_CLIP_MODEL": "nope"}
    )
    assert wrong_model.exit_code == 1 and "valid names" in wrong_model.output
    assert "no asset" in run(data, "show", "999", code=1)["output"]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("ASSETLENS_INDEX_KIND", "annoy", "'auto', 'flat', 'hnsw', 'ivf' or 'ivfpq'"),
        ("ASSETLENS_INDEX_HNSW_M", "2", "greater than or equal to 4"),
        ("ASSETLENS_CLIP_PRECISION", "int4", "'onnx-int8'"),
        ("ASSETLENS_BATCH_SIZE", "-1", "greater than or equal to 0"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    command = ["ingest", str(tmp_path)] if name == "ASSETLENS_BATCH_SIZE" else ["stats"]
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *command], env={name: value})
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"error: invalid setting {name}='{value}': ") and says in lines[0]


def test_offline_default_model_error_names_the_fix(tmp_path: Path, photos: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path / "data"), "ingest", str(photos)], env={"ASSETLENS_CLIP_MODEL": None}
    )
    assert result.exit_code == 1
    assert "ASSETLENS_CLIP_CHECKPOINT" in result.output and "open_clip_pytorch_model.bin" in result.output


@pytest.mark.slow
def test_ctrl_c_keeps_finished_batches_and_rerun_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(400):
        Image.new("RGB", (320, 240), (i % 256, (i * 7) % 256, (i * 13) % 256)).save(folder / f"{i:03}.jpg")
    data = tmp_path / "data"
    env = {**os.environ, "ASSETLENS_CLIP_MODEL": "tiny", "ASSETLENS_DATA_DIR": str(data)}
    command = [
        sys.executable,
        "-m",
        "assetlens.enrich",
        "ingest",
        str(folder),
        "--batch-size",
        "4",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = data / "assetlens.db"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if db.exists() and _count(db, "vectors") >= 8:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, err
    assert "interrupted" in err and "resume" in err
    done = _count(db, "vectors")
    assert 0 < done < 400
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM jobs").fetchall() == [("interrupted",)]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    resumed = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True, timeout=300)

    report = json.loads(resumed.stdout)
    assert resumed.returncode == 0 and report["skipped"] == done and report["added"] == 400 - done
    assert _count(db, "vectors") == 400 and _count(db, "assets") == 400


# Run `python -m assetlens.enrich ...` and list, at exit, which heavy packages the process imported.
_IMPORT_PROBE = """
import atexit, json, runpy, sys
HEAVY = ("torch", "torchvision", "open_clip")
def report():
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
    print(json.dumps(loaded), file=sys.stderr)
atexit.register(report)
sys.argv = ["assetlens", *sys.argv[1:]]
runpy.run_module("assetlens.enrich", run_name="__main__")
"""


def test_ingest_from_a_cached_onnx_export_never_imports_torch(tmp_path: Path, photos: Path) -> None:
    # Importing torch and open_clip is ~5 s of every `assetlens ingest`; with the int8 export
    # and the label embeddings cached (after the first run), images need neither.
    if not onnx_available():
        pytest.skip("onnx/onnxruntime not installed")
    env = {
        **os.environ,
        "ASSETLENS_CLIP_MODEL": "tiny",
        "ASSETLENS_CLIP_PRECISION": "onnx-int8",
        "ASSETLENS_DEVICE": "cpu",
        "ASSETLENS_DATA_DIR": str(tmp_path / "data"),
        "ASSETLENS_CACHE_DIR": str(tmp_path / "cache"),  # its own: the first run must export
    }
    first = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, "ingest", str(photos), "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stderr.splitlines()[-1]) == ["open_clip", "torch", "torchvision"]  # the export
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for path in sorted(photos.glob("*.jpg"))[:3]:  # new content: encoded, not reused
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(fresh / path.name)

    second = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, "ingest", str(fresh), "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert second.returncode == 0, second.stderr
    assert json.loads(second.stderr.splitlines()[-1]) == []
    report = json.loads(second.stdout)
    assert report["added"] == 3 and report["failed"] == 0
    assert _count(tmp_path / "data" / "assetlens.db", "vectors") == N_PHOTOS + 3


def test_search_from_a_cached_onnx_export_loads_only_the_text_tower(tmp_path: Path, photos: Path) -> None:
    # A CLI search needs the text tower and the tokenizer: neither may pull in torch (~2 s and
    # 600 MB of imports), nor may the image tower be loaded.
    if not onnx_available():
        pytest.skip("onnx/onnxruntime not installed")
    env = {
        **os.environ,
        "ASSETLENS_CLIP_MODEL": "tiny",
        "ASSETLENS_CLIP_PRECISION": "onnx-int8",
        "ASSETLENS_DEVICE": "cpu",
        "ASSETLENS_DATA_DIR": str(tmp_path / "data"),
        "ASSETLENS_CACHE_DIR": str(tmp_path / "cache"),
    }
    ingest = subprocess.run(
        [sys.executable, "-m", "assetlens.enrich", "ingest", str(photos), "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr
    (export,) = (tmp_path / "cache" / "onnx").iterdir()
    (export / "image.onnx").write_bytes(b"")  # a search that opened the image tower would fail

    search = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, "search", "an astronaut 🚀 über", "--limit", "3", "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert search.returncode == 0, search.stderr
    assert json.loads(search.stderr.splitlines()[-1]) == []
    results = json.loads(search.stdout)["results"]
    assert len(results) == 3 and all(r["score"] is not None for r in results)


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # schema not created yet
