"""Crash safety: SIGKILL ``assetlens ingest`` at random moments, resume, compare with a clean run.

Each trial kills the ingest once or twice (seeded: after a random share of a clean run's
duration, or as soon as the store holds a random number of vectors, i.e. mid-write), checks the
library right after the kill (intact, no half-written asset), runs the same command again to
completion and compares the result with an uninterrupted ingest of the same files.

Even trials run with ``--batch-size 1`` and must match the reference to the bit. Odd trials
use batches of 6, so a kill throws away a batch of several files; resumed batches are cut at
other places than the reference's, and CPU matrix kernels round differently for another batch
shape, so vectors are compared to 1e-5 there (everything else still exactly).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from reliability.checks import assert_same_library, check_store, count, snapshot
from reliability.conftest import Cli, References

TRIALS = 10

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    trial: int, cli: Cli, library: tuple[Path, list[Path]], references: References, tmp_path: Path
) -> None:
    rng = random.Random(20240 + trial)
    batch = 1 if trial % 2 == 0 else 6
    reference, seconds = references.get(batch)
    total_vectors = sum(len(a["vectors"]) for a in reference.values())
    root, _ = library
    data = cli.new_data_dir(tmp_path / "data")
    command = ["ingest", str(root), "--batch-size", str(batch), "--json"]

    kills = 0
    for _ in range(rng.choice((1, 2))):
        child = cli.spawn(data, *command)
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0.05, 0.6) * seconds)
        else:  # the moment a random number of vectors is committed: the next batch is in flight
            wanted = count(data, "vectors") + rng.randrange(1, total_vectors // 2)
            deadline = time.monotonic() + 120
            while count(data, "vectors") < wanted and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        child.kill()
        killed = child.wait(60)
        assert killed.returncode in (-9, 0), killed.stderr  # 0: it finished first
        assert "Traceback" not in killed.stderr
        kills += killed.returncode == -9
        if (data / "assetlens.db").exists():
            check_store(data, index=False, finished=False)  # sound even mid-run

    assert kills >= 1, "no kill landed while the ingest ran"
    resumed = cli.run(data, *command)

    assert resumed.returncode == 0, resumed.stderr
    assert resumed.json()["failed"] == 0
    check_store(data)
    assert_same_library(snapshot(data), reference, exact=batch == 1)
    again = cli.run(data, *command).json()
    assert again["added"] == again["updated"] == again["failed"] == 0
    assert again["skipped"] == len(reference)
