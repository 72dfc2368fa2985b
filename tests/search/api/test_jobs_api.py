"""Ingest and tag jobs: path confinement to the library roots, uploads, worker-process jobs end to end,
interruption on shutdown, recovery after a crash."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import ingester_for, library_settings
from PIL import Image

from assetlens.enrich.jobs import ProcessJobWorker
from assetlens.enrich.lock import library_lock
from assetlens.enrich.settings import EnrichSettings
from assetlens.search.api import ApiSettings, create_app
from assetlens.search.api.keys import create_key


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the library root, holding a picture."""
    folder = tmp_path / "outside"
    folder.mkdir()
    Image.new("RGB", (32, 32), "blue").save(folder / "secret.jpg")
    return folder


def _wait(api: Any, job_id: int, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = api.get(f"/v1/jobs/{job_id}").json()
        if doc["status"] in ("done", "failed", "interrupted"):
            return doc
        assert time.monotonic() < deadline, doc
        time.sleep(0.2)


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.jpg",
        "sub/../../outside",
        "{outside}/secret.jpg",
        "{root}/../outside/secret.jpg",
        "%2e%2e/outside",
        "%2E%2E%2Foutside",
        "\uff0e\uff0e/outside",  # fullwidth full stops: '..' once normalised
        "..\uff0foutside",  # fullwidth solidus
        "..\\outside",
        "cat.jpg\x00.png",
        "/etc/passwd",
        "",
    ],
)
def test_traversal_attempts_are_403_and_logged(
    api: Any, problem: Any, outside: Path, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    path = path.format(outside=outside, root=api.photos)
    with caplog.at_level(logging.WARNING, logger="assetlens.api"):
        body = problem(api.post("/v1/ingest", scope="admin", json={"paths": [path]}), 403)
    assert body["detail"].startswith("path refused")
    assert any("ingest path refused" in r.getMessage() for r in caplog.records)
    assert api.lib.store.jobs_after("api:ingest", 0) == []


def test_symlink_escapes_are_403(api: Any, problem: Any, outside: Path) -> None:
    (api.photos / "link.jpg").symlink_to(outside / "secret.jpg")
    problem(api.post("/v1/ingest", scope="admin", json={"paths": ["link.jpg"]}), 403)
    (api.photos / "linked-dir").symlink_to(outside, target_is_directory=True)
    problem(api.post("/v1/ingest", scope="admin", json={"paths": [str(api.photos / "linked-dir")]}), 403)
    # A folder inside the root is refused too when a symlink inside it leads out (the scan follows links).
    (api.photos / "link.jpg").unlink()
    os.remove(api.photos / "linked-dir")
    nested = api.photos / "nested"
    nested.mkdir()
    (nested / "escape").symlink_to(outside, target_is_directory=True)
    body = problem(api.post("/v1/ingest", scope="admin", json={"paths": ["nested"]}), 403)
    assert "symlink inside it" in body["detail"]


def test_missing_path_inside_a_root_is_404_and_roots_are_required(
    make_api: Any, problem: Any, outside: Path
) -> None:
    api = make_api()
    problem(api.post("/v1/ingest", scope="admin", json={"paths": ["no-such-folder"]}), 404)
    # Existence outside the roots is never revealed: a missing outside path is 403 too.
    problem(api.post("/v1/ingest", scope="admin", json={"paths": [str(outside / "nope")]}), 403)
    rootless = make_api(roots=())
    assert (
        "no library roots"
        in problem(rootless.post("/v1/ingest", scope="admin", json={"paths": ["cat.jpg"]}), 403)["detail"]
    )


def test_ingest_request_validation(api: Any, problem: Any) -> None:
    problem(api.post("/v1/ingest", scope="admin", json={"paths": []}), 422)
    problem(api.post("/v1/ingest", scope="admin", json={"paths": "cat.jpg"}), 422)
    problem(
        api.post("/v1/ingest", scope="admin", content=b"paths", headers={"content-type": "text/csv"}), 415
    )


def _png(size: tuple[int, int] = (40, 30), color: str = "green") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"plain text, not media", "not an image, video or audio file"),
        (_png()[:60], "damaged image"),
        (b"", "empty"),
    ],
)
def test_unusable_ingest_uploads_are_422_and_not_kept(
    api: Any, problem: Any, content: bytes, detail: str
) -> None:
    response = api.post("/v1/ingest", scope="write", files=[("files", ("a.png", content, "image/png"))])
    assert detail in problem(response, 422)["detail"]
    assert not [p for p in (api.lib.settings.data_dir / "uploads").rglob("*") if p.is_file()]


def test_ingest_upload_limits(make_api: Any, problem: Any) -> None:
    api = make_api(max_pixels=100)
    problem(api.post("/v1/ingest", scope="write", files=[("files", ("a.png", _png(), "image/png"))]), 422)
    small = make_api(max_upload_mb=0.001)
    problem(
        small.post("/v1/ingest", scope="write", files=[("files", ("a.png", _png((300, 300)), "image/png"))]),
        413,
    )
    problem(api.post("/v1/ingest", scope="write", files=[("other", ("a.png", _png(), "image/png"))]), 422)
    problem(api.post("/v1/ingest", scope="read", files=[("files", ("a.png", _png(), "image/png"))]), 403)


def test_tag_with_a_bad_vocabulary_is_422(api: Any, problem: Any) -> None:
    body = problem(api.post("/v1/tag", scope="write", json={"vocab": "[broken\nshoe > shoe\n"}), 422)
    assert "vocab" in body["detail"]
    assert not list((api.lib.settings.data_dir / "api").glob("vocab-*"))


def test_jobs_report_cli_runs_and_404(api: Any, problem: Any) -> None:
    job = api.lib.store.last_job()
    doc = api.get(f"/v1/jobs/{job['id']}").json()
    assert doc["kind"] == "ingest" and doc["source"] == "cli" and doc["status"] == "done"
    assert doc["counts"]["added"] == 8 and doc["failures"] == [] and doc["failure_count"] == 0
    problem(api.get("/v1/jobs/999999"), 404)
    problem(api.get("/v1/jobs/-1"), 422)


@pytest.mark.slow
def test_ingest_folder_through_a_worker_process_job(api: Any, tmp_path: Path) -> None:
    campaign = api.photos / "campaign"
    campaign.mkdir()
    for name, color in (("red.png", "red"), ("teal.png", "teal")):
        Image.new("RGB", (64, 64), color).save(campaign / name)
    (campaign / "broken.jpg").write_bytes(b"not a picture")
    accepted = api.post("/v1/ingest", scope="admin", json={"paths": ["campaign"], "transcribe": False})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert accepted.json()["status"] == "queued"
    doc = _wait(api, job_id)
    assert doc["status"] == "done", doc
    assert doc["kind"] == "ingest" and doc["source"] == "api" and doc["run_job_id"] > job_id
    assert doc["counts"]["added"] == 2 and doc["counts"]["failed"] == 1
    assert doc["failure_count"] == 1 and doc["failures"][0]["uri"].endswith("broken.jpg")
    listing = api.get("/v1/assets", params={"limit": 100}).json()["results"]
    uris = {Path(r["uri"]).name for r in listing}
    assert {"red.png", "teal.png"} <= uris and len(listing) == 10
    semantic = api.post("/v1/search", json={"text": "a red square", "mode": "semantic", "limit": 20}).json()
    assert {"red.png", "teal.png"} <= {Path(r["uri"]).name for r in semantic["results"]}
    metrics = api.client.get("/metrics").text
    assert 'assetlens_jobs_finished_total{kind="ingest",status="done"} 1' in metrics


@pytest.mark.slow
def test_upload_ingest_and_retag_jobs(api: Any) -> None:
    files = [
        ("files", ("Summer Shoot.PNG", _png(color="orange"), "image/png")),
        ("files", ("../../evil name.exe", _png(color="purple"), "application/octet-stream")),
    ]
    accepted = api.post("/v1/ingest", scope="write", files=files, data={"transcribe": "false"})
    assert accepted.status_code == 202, accepted.text
    uploads = accepted.json()["uploads"]
    stored = [Path(p) for p in uploads.values()]
    assert set(uploads) == {"Summer Shoot.PNG", "evil name.exe"}
    root = api.lib.settings.data_dir / "uploads"
    assert all(p.is_relative_to(root) for p in stored)
    assert sorted(p.suffix for p in stored) == ["", ".png"]  # only allowed extensions are kept
    doc = _wait(api, accepted.json()["job_id"])
    assert doc["status"] == "done" and doc["counts"]["added"] == 2, doc
    names = {api.lib.store.asset_by_uri(str(p)).meta.get("original_filename") for p in stored}
    assert names == {"Summer Shoot.PNG", "evil name.exe"}

    vocab = "[test]\nzorblax widget = zorblax > gadget\n"
    tagged = api.post("/v1/tag", scope="write", json={"vocab": vocab})
    assert tagged.status_code == 202
    doc = _wait(api, tagged.json()["job_id"])
    assert doc["status"] == "done" and doc["kind"] == "tag" and doc["counts"]["retagged"] == 10, doc
    assert (api.lib.settings.data_dir / "vocabulary.txt").read_text() == vocab
    assert not list((api.lib.settings.data_dir / "api").glob("vocab-*"))


def test_a_server_without_a_worker_refuses_jobs_and_keeps_no_upload(
    lib: Any, photos: Path, problem: Any
) -> None:
    ingester_for(lib).ingest([photos])
    with TestClient(create_app(ApiSettings(roots=(photos,), anonymous_read=True), lib)) as client:
        with lib.store.transaction():
            key = create_key(lib.store, "admin")[1]
        auth = {"Authorization": f"Bearer {key}"}
        body = problem(client.post("/v1/ingest", headers=auth, json={"paths": ["cat.jpg"]}), 503)
        assert "assetlens serve" in body["detail"]
        files = [("files", ("a.png", _png(), "image/png"))]
        problem(client.post("/v1/ingest", headers=auth, files=files), 503)
        problem(client.post("/v1/tag", headers=auth, json={}), 503)
        assert client.get(f"/v1/jobs/{lib.store.last_job()['id']}").json()["source"] == "cli"
    assert not (lib.settings.data_dir / "uploads").exists()
    assert lib.store.jobs_after("api:ingest", 0) == []


def _server(lib: Any, photos: Path, **enrich: Any) -> TestClient:
    settings = library_settings(lib)
    worker = ProcessJobWorker(replace(settings, enrich=EnrichSettings(**enrich)))
    return TestClient(create_app(ApiSettings(roots=(photos,), job_grace_s=60), lib, worker))


@pytest.mark.slow
def test_shutdown_interrupts_a_running_ingest_and_keeps_its_finished_batches(lib: Any, photos: Path) -> None:
    many = photos / "many"
    many.mkdir()
    for i in range(60):
        Image.new("RGB", (96, 96), (i * 4, 255 - i * 4, 128)).save(many / f"square-{i:02d}.png")
    with lib.store.transaction():
        key = create_key(lib.store, "admin")[1]
    auth = {"Authorization": f"Bearer {key}"}
    with _server(lib, photos, batch_size=1, workers=1) as client:
        job_id = client.post("/v1/ingest", headers=auth, json={"paths": ["many"]}).json()["job_id"]
        deadline = time.monotonic() + 180
        while True:  # running, linked to its ingest run, with a batch or two written
            doc = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
            if doc["status"] == "running" and doc["counts"].get("done", 0) >= 2:
                break
            assert doc["status"] in ("queued", "running") and time.monotonic() < deadline, doc
            time.sleep(0.05)
        assert doc["run_job_id"] > job_id and doc["counts"]["total"] == 60
    # The client's exit stopped the server: the job was interrupted, not killed.
    api_job, run = lib.store.job(job_id), lib.store.job(doc["run_job_id"])
    assert api_job["status"] == "interrupted" and run["status"] == "interrupted", (api_job, run)
    assert (
        api_job["counts"]["interrupted"] is True and "finished batches are kept" in api_job["args"]["error"]
    )
    kept = sum(1 for _, uri in lib.store.uris() if "/many/" in uri)
    assert 2 <= kept < 60 and run["counts"]["added"] == api_job["counts"]["added"] == kept
    with _server(lib, photos) as client:  # running the job again resumes where it stopped
        job_id = client.post("/v1/ingest", headers=auth, json={"paths": ["many"]}).json()["job_id"]
        doc = _wait(_Client(client, auth), job_id)
    assert (
        doc["status"] == "done" and doc["counts"]["added"] == 60 - kept and doc["counts"]["skipped"] == kept
    )


def test_jobs_of_a_crashed_server_are_marked_interrupted_at_start(lib: Any, photos: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    with lib.store.transaction():
        key = create_key(lib.store, "read")[1]
        orphan = lib.store.start_job("api:ingest", {"paths": [str(photos)], "server_pid": gone.pid})
        alive = lib.store.start_job("api:ingest", {"paths": [str(photos)], "server_pid": os.getpid()})
    with _server(lib, photos) as client:
        doc = client.get(f"/v1/jobs/{orphan}", headers={"Authorization": f"Bearer {key}"}).json()
    assert doc["status"] == "interrupted" and "the server stopped" in doc["error"] and doc["finished_at"]
    assert lib.store.job(alive)["status"] == "running"  # its server (this process) still runs


@pytest.mark.slow
def test_a_job_whose_files_vanished_fails_with_the_reason(api: Any) -> None:
    folder = api.photos / "soon-gone"
    folder.mkdir()
    Image.new("RGB", (32, 32), "red").save(folder / "red.png")
    blocker = api.lib.store  # holding the writer lock makes the job wait, so the folder can go first
    with library_lock(api.lib.settings.data_dir, "test"):
        accepted = api.post("/v1/ingest", scope="admin", json={"paths": ["soon-gone"]}).json()
        shutil.rmtree(folder)
    doc = _wait(api, accepted["job_id"])
    assert doc["status"] == "failed" and doc["error"] == f"no such file or folder: {folder}", doc
    assert blocker.job(accepted["job_id"])["finished_at"]


class _Client:
    """``get`` with a key, as :func:`_wait` expects."""

    def __init__(self, client: TestClient, auth: dict[str, str]) -> None:
        self.client, self.auth = client, auth

    def get(self, url: str) -> Any:
        return self.client.get(url, headers=self.auth)
