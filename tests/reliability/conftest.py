"""Fixtures of the reliability suite: a warm fork server running the CLI, a small library and
the reference stores that faulty runs are compared with (all built once per session)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability.checks import check_store, snapshot
from reliability.corpus import build_library
from reliability.forkserver import Child, ForkServer, Result


class Cli:
    """Runs ``assetlens`` commands (forked from the warm server) against data dirs.

    Args:
        server: The fork server.
        home: HOME and TMPDIR of the commands (writable by everyone, for runs as nobody). The
            machine cache is HOME's default one (``~/.cache/assetlens``): the session's first
            run fills it with the tiny model's label embeddings, and every later run reads them.
    """

    def __init__(self, server: ForkServer, home: Path) -> None:
        self.server, self.home = server, home

    def env(self, **extra: str) -> dict[str, str]:
        """The commands' whole environment: offline, tiny model, nothing of the developer's."""
        return base_env(self.home) | extra

    def new_data_dir(self, path: Path) -> Path:
        """An empty library folder."""
        path.mkdir(parents=True)
        return path

    def spawn(self, data_dir: Path, *args: str, **kwargs: Any) -> Child:
        """Start ``assetlens --data-dir DATA_DIR ARGS...``."""
        env = self.env(**kwargs.pop("env", {}))
        return self.server.spawn(["--data-dir", str(data_dir), *args], env, **kwargs)

    def run(self, data_dir: Path, *args: str, timeout: float = 300.0, **kwargs: Any) -> Result:
        """Run ``assetlens --data-dir DATA_DIR ARGS...`` to its end."""
        return self.spawn(data_dir, *args, **kwargs).wait(timeout)


def base_env(home: Path) -> dict[str, str]:
    """Offline, the tiny model, one inference thread per process.

    One thread: these tests run several processes at once on small CI machines, where OpenMP
    threads spinning against each other made a run of the small library 3-4 times slower.
    """
    return {
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(home / "hf"),
        "ASSETLENS_CLIP_MODEL": "tiny",
    } | {k: v for k, v in os.environ.items() if k == "PYTHONPATH"}  # a checkout run in place


class References:
    """Uninterrupted ingests of the small library, one per batch size, made on first use."""

    def __init__(self, cli: Cli, files: list[Path], root: Path, work: Path) -> None:
        self.cli, self.files, self.root, self.work = cli, files, root, work
        self._made: dict[int, tuple[dict[str, Any], float]] = {}

    def get(self, batch_size: int) -> tuple[dict[str, Any], float]:
        """The reference snapshot and how long its ingest took, in seconds."""
        if batch_size not in self._made:
            data = self.cli.new_data_dir(self.work / f"reference-bs{batch_size}")
            result = self.cli.run(data, "ingest", str(self.root), "--batch-size", str(batch_size), "--json")
            assert result.returncode == 0, result.stderr
            report = result.json()
            assert report["added"] == len(self.files) and report["failed"] == 0
            check_store(data)
            self._made[batch_size] = (snapshot(data), result.seconds)
        return self._made[batch_size]


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="session")
def cli(session_dir: Path) -> Iterator[Cli]:
    home = session_dir / "home"
    home.mkdir()
    home.chmod(0o1777)
    server = ForkServer(base_env(home), session_dir / "forkserver.log")
    try:
        cli = Cli(server, home)
        scratch, photo = session_dir / "warm-up", session_dir / "warm-up-photo"
        photo.mkdir()
        shutil.copy(Path(__file__).resolve().parents[1] / "data" / "photos" / "cat.jpg", photo)
        # Fills the machine cache, so that no later run spends seconds on label embeddings.
        result = cli.run(cli.new_data_dir(scratch), "ingest", str(photo), "--no-transcribe", "--json")
        assert result.returncode == 0, result.stderr
        yield cli
    finally:
        server.close()


@pytest.fixture(scope="session")
def library(session_dir: Path) -> tuple[Path, list[Path]]:
    """The small valid library: 60 images (2 duplicates), a silent clip and a clip with speech."""
    root = session_dir / "library"
    return root, build_library(root)


@pytest.fixture(scope="session")
def references(cli: Cli, library: tuple[Path, list[Path]], session_dir: Path) -> References:
    root, files = library
    return References(cli, files, root, session_dir)
