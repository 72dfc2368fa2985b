"""The Ray executor: the same stages on a real Ray cluster give the same library as the local run.

A local cluster (``ray.init(num_cpus=2)``) serves most tests; one starts a real head with
``ray start --head --block`` and joins it by address, as a user with a cluster would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import PHOTOS, ingester_for, open_library
from media import make_clip, speak
from PIL import Image

from assetlens.enrich.executors.ray_cluster import RayExecutor
from assetlens.enrich.pipeline import IngestOptions
from assetlens.enrich.scan import Candidate
from assetlens.enrich.stages import Resources
from assetlens.enrich.work import FileWork
from assetlens.models.settings import WhisperSettings
from assetlens.search.library import LibraryCore

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

SENTENCE = "Our spring collection features bright colours and light fabrics."


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs, shared by the tests of this module."""
    # Workers cannot import this test module by name: its stages travel by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Photos, a video with two scenes and speech, a voice memo and a corrupt JPEG."""
    folder = tmp_path_factory.mktemp("mixed") / "campaign files"
    folder.mkdir()
    for path in sorted(PHOTOS.glob("*.jpg")):
        shutil.copy(path, folder / path.name)
    speech = speak(SENTENCE, folder.parent / "speech.wav", silence_before=1.0)
    cat, rocket = Image.open(PHOTOS / "cat.jpg"), Image.open(PHOTOS / "rocket.jpg")
    make_clip(folder / "spring teaser.mp4", [(3.0, cat), (3.0, rocket)], speech=speech)
    shutil.copy(speech, folder / "voice memo.wav")
    (folder / "broken.jpg").write_bytes((PHOTOS / "cat.jpg").read_bytes()[:2000])
    return folder


def _ingest(lib: LibraryCore, folder: Path, engine: str) -> dict:
    ingester = ingester_for(lib)
    ingester.transcription = WhisperSettings()
    return ingester.ingest([folder], IngestOptions(engine=engine, batch_size=4)).as_dict()  # type: ignore[arg-type]


def _snapshot(lib: LibraryCore) -> dict[str, dict]:
    """Per file: kind, status, error, keyframe times, vectors, tags and transcript."""
    out = {}
    for asset_id, uri in lib.store.uris():
        asset = lib.store.asset(asset_id)
        vectors, times = lib.store.vectors_of(asset_id) if lib.store.has_vectors(asset_id) else ([], [])
        out[Path(uri).name] = {
            "kind": asset.kind, "status": asset.status, "error": asset.error, "poster_t": asset.poster_t,
            "times": list(times), "vectors": np.asarray(vectors, np.float32),
            "tags": {t.tag: (t.score, t.t) for t in lib.store.tags_of([asset_id])[asset_id]},
            "segments": [(s["start"], s["end"], s["text"]) for s in lib.store.segments_of(asset_id)],
        }  # fmt: skip
    return out


def test_a_ray_ingest_gives_the_same_library_as_the_local_one(
    cluster: None, mixed: Path, tmp_path: Path
) -> None:
    local, remote = open_library(tmp_path / "local"), open_library(tmp_path / "ray")
    try:
        local_report, ray_report = _ingest(local, mixed, "local"), _ingest(remote, mixed, "ray")
        expected, got = _snapshot(local), _snapshot(remote)
    finally:
        local.close()
        remote.close()

    assert {k: v for k, v in ray_report.items() if k != "job_id"} == {
        k: v for k, v in local_report.items() if k != "job_id"
    }
    assert local_report["added"] == 10 and local_report["failed"] == 1 and local_report["transcribed"] == 2
    assert got.keys() == expected.keys()
    for name, want in expected.items():
        have = got[name]
        for key in ("kind", "status", "error", "times", "poster_t", "segments"):
            assert have[key] == want[key], (name, key)
        assert have["vectors"].shape == want["vectors"].shape
        if len(want["vectors"]):
            cosines = np.sum(have["vectors"] * want["vectors"], axis=1)
            assert cosines.min() >= 0.999, name
        assert have["tags"].keys() == want["tags"].keys(), name
        for tag, (score, t) in want["tags"].items():
            assert abs(have["tags"][tag][0] - score) <= 1e-3 and have["tags"][tag][1] == t, (name, tag)
    assert "spring collection" in expected["voice memo.wav"]["segments"][0][2].lower()


# --- the executor's contract, with stages written for the test -------------------------------


class _Mark:
    """A per-file stage: notes the process it ran in (one file per line of the log)."""

    name = "mark"
    resources = Resources()

    def __init__(self, log: Path) -> None:
        self.log = log

    def open(self) -> None:
        pass

    def __call__(self, batch: Sequence[FileWork]) -> list[FileWork]:
        with self.log.open("a") as f:
            f.writelines(f"{os.getpid()}\n" for _ in batch)
        return list(batch)


class _Model:
    """A model stage: logs each open and each batch with the process it ran in."""

    name = "model"
    resources = Resources(model=True, cpus=2.0)

    def __init__(self, log: Path) -> None:
        self.log = log

    def open(self) -> None:
        with self.log.open("a") as f:
            f.write(f"open {os.getpid()}\n")

    def __call__(self, batch: Sequence[FileWork]) -> list[FileWork]:
        with self.log.open("a") as f:
            f.write(f"batch {os.getpid()} {len(batch)}\n")
        return [replace(w, kind="seen") for w in batch]


def _work(n: int) -> list[FileWork]:
    photo = PHOTOS / "cat.jpg"
    stat = photo.stat()
    return [FileWork(Candidate(photo, "image", "image/jpeg", stat.st_size, stat.st_mtime)) for _ in range(n)]


def test_tasks_decode_apart_from_the_model_actors_which_open_their_model_once(
    cluster: None, tmp_path: Path
) -> None:
    marks, model = tmp_path / "marks.log", tmp_path / "model.log"
    done = [
        w for batch in RayExecutor(batch_size=8).run([_Mark(marks), _Model(model)], _work(96)) for w in batch
    ]

    assert len(done) == 96 and all(w.kind == "seen" for w in done)
    task_pids = set(marks.read_text().split())
    lines = [line.split() for line in model.read_text().splitlines()]
    opens = [pid for kind, pid, *_ in lines if kind == "open"]
    batches = [(pid, int(n)) for kind, pid, n in (line for line in lines if line[0] == "batch")]
    assert len(opens) == len(set(opens))  # each model worker opened its model once...
    assert len(batches) >= 96 // 8 > len(opens)  # ...and then took batch after batch
    assert {pid for pid, _ in batches} == set(opens) and sum(n for _, n in batches) == 96
    assert task_pids.isdisjoint(opens) and str(os.getpid()) not in task_pids | set(opens)


def test_a_file_a_worker_cannot_read_names_the_node(cluster: None, tmp_path: Path) -> None:
    gone = tmp_path / "vanished.jpg"
    shutil.copy(PHOTOS / "cat.jpg", gone)
    work = _work(1)[0]
    work = replace(work, candidate=replace(work.candidate, path=gone))
    gone.unlink()  # after the plan, before a worker reads it
    from assetlens.enrich.stages import Decode
    from assetlens.enrich.video import KeyframeOptions

    [[result]] = list(
        RayExecutor(batch_size=4).run([Decode(64, 10**8, KeyframeOptions(), frozenset())], [work])
    )

    assert result.failure is not None and result.failure.stage == "read"
    assert f"on node {socket.gethostname()} (pid " in result.failure.reason


# --- a real head, a killed worker, a killed driver ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _many_photos(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (480, 360), (i % 256, (i * 7) % 256, (i * 13) % 256)).save(folder / f"{i:03}.jpg")
    return folder


def _cli_env(data: Path) -> dict[str, str]:
    return {**os.environ, "ASSETLENS_CLIP_MODEL": "tiny", "ASSETLENS_DATA_DIR": str(data)}


def _count(db: Path, table: str) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.fixture
def head(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real Ray head (``ray start --head --block``) on a free port; its temp dir holds its logs."""
    port, temp = _free_port(), Path("/tmp") / f"al-ray-{os.getpid()}-{_free_port()}"  # short: socket paths
    ray_exe = Path(sys.executable).with_name("ray")
    process = subprocess.Popen(
        [str(ray_exe), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    time.sleep(2)  # the raylet registers after the GCS answers
    try:
        yield f"127.0.0.1:{port}", temp
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_ingest_joins_a_cluster_started_with_ray_start_and_its_workers_do_the_work(
    head: tuple[str, Path], photos: Path, tmp_path: Path
) -> None:
    address, temp = head
    data = tmp_path / "data"
    command = [sys.executable, "-m", "assetlens.enrich", "ingest", str(photos), "--engine", "ray",
               "--ray-address", address, "--json"]  # fmt: skip

    result = subprocess.run(command, env=_cli_env(data), capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == len(list(photos.glob("*.jpg"))) and report["failed"] == 0
    logs = " ".join(p.name for p in (temp / "session_latest" / "logs").iterdir())
    worker_logs = "".join(
        p.read_text(errors="replace") for p in (temp / "session_latest" / "logs").glob("worker-*.out")
    )
    assert "EmbedWorker" in worker_logs, logs  # the model ran in that cluster's actor


def test_a_cluster_that_cannot_be_reached_is_one_line_naming_the_address(
    photos: Path, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{_free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "assetlens.enrich", "ingest", str(photos), "--engine", "ray",
         "--ray-address", address],
        env=_cli_env(tmp_path / "data"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and address in errors[0] and "cannot reach the Ray cluster" in errors[0]


def _ray_workers(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if name in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_killed_worker_and_killed_driver_end_in_the_same_library(
    head: tuple[str, Path], tmp_path: Path
) -> None:
    address, _ = head
    folder = _many_photos(tmp_path / "many", 240)
    reference = open_library(tmp_path / "reference")
    try:
        _ingest(reference, folder, "local")
        expected = _snapshot(reference)
    finally:
        reference.close()
    data = tmp_path / "data"
    db = data / "assetlens.db"
    command = [sys.executable, "-m", "assetlens.enrich", "ingest", str(folder), "--engine", "ray",
               "--ray-address", address, "--batch-size", "4", "--json"]  # fmt: skip

    # A model worker killed mid-run: Ray restarts it and retries its batch.
    driver = subprocess.Popen(
        command, env=_cli_env(data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    killed = _kill_when(lambda: _count(db, "vectors") >= 20, "EmbedWorker", driver)
    out, err = driver.communicate(timeout=600)
    assert killed, "the worker was not found running"
    assert driver.returncode == 0, err
    first = json.loads(out)
    assert first["added"] == 240 and first["failed"] == 0
    _assert_same(data, expected)

    # The driver killed mid-run: the next run resumes.
    shutil.rmtree(data)
    driver = subprocess.Popen(
        command, env=_cli_env(data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and _count(db, "vectors") < 40 and driver.poll() is None:
        time.sleep(0.05)
    assert driver.poll() is None, "the run ended before the driver could be killed"
    driver.kill()
    driver.wait(60)
    done = _count(db, "vectors")
    resumed = subprocess.run(command, env=_cli_env(data), capture_output=True, text=True, timeout=600)

    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert 0 < done < 240 and report["skipped"] == done and report["added"] == 240 - done
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    _assert_same(data, expected)


def _assert_same(data: Path, expected: dict[str, dict]) -> None:
    after = open_library(data)
    try:
        got = _snapshot(after)
    finally:
        after.close()
    assert got.keys() == expected.keys()
    for name, want in expected.items():
        assert got[name]["tags"].keys() == want["tags"].keys(), name
        assert float(np.sum(got[name]["vectors"] * want["vectors"])) >= 0.999, name


def _kill_when(ready: object, name: str, driver: subprocess.Popen[str]) -> bool:
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None:
        if ready():  # type: ignore[operator]
            for pid in _ray_workers(name):
                os.kill(pid, signal.SIGKILL)
                return True
        time.sleep(0.05)
    return False
