"""``assetlens serve`` for real: uvicorn in its own process, an ingest job through the API run by a
worker process, then Ctrl-C. With ``--workers 2`` uvicorn's processes build the app by name."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _call(url: str, key: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data, headers, method="GET" if data is None else "POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def _until(what: str, check: Any, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (urllib.error.URLError, ConnectionError):
            found = None
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_runs_an_ingest_job_in_a_worker_and_stops_on_ctrl_c(
    tmp_path: Path, photos: Path, workers: int
) -> None:
    data = tmp_path / "served library"
    env = {**os.environ, "ASSETLENS_CLIP_MODEL": "tiny", "ASSETLENS_API_ROOTS": str(photos)}
    cli = [sys.executable, "-m", "assetlens.enrich"]
    created = subprocess.run(
        [*cli, "keys", "create", "--scope", "admin", "--json", "--data-dir", str(data)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = json.loads(created.stdout)["key"]
    port = _free_port()
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning",
         "--data-dir", str(data)],
        env={k: v for k, v in env.items() if k != "ASSETLENS_DATA_DIR"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _until("the server", lambda: _call(f"{base}/readyz", key)["status"] == "ok")
        job_id = _call(f"{base}/v1/ingest", key, {"paths": ["."], "transcribe": False})["job_id"]
        done = _until(
            "the job", lambda: (doc := _call(f"{base}/v1/jobs/{job_id}", key))["status"] != "queued"
            and doc["status"] != "running" and doc,
        )  # fmt: skip
        assert done["status"] == "done" and done["counts"]["added"] == 8, done
        assert done["run_job_id"] > job_id and done["source"] == "api"
        found = _call(f"{base}/v1/search", key, {"text": "cat", "limit": 3})["results"]
        assert Path(found[0]["uri"]).name == "cat.jpg"
    finally:
        server.send_signal(signal.SIGINT)
        _, errors = server.communicate(timeout=120)
    assert server.returncode == 0, errors
