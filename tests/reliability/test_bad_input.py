"""Bad input: the hostile corpus (:mod:`reliability.corpus`) mixed with good files, through the CLI.

One ``assetlens ingest --json`` over 59 kinds of broken, hostile and bad-looking files plus the
sample photos and a video with speech, while a thread keeps rewriting one of the files. The
run must exit 0 without a traceback, record every bad file in ``failures`` with its stage and
a reason, fully ingest every decodable one (bad-looking: CMYK, 16-bit, 1x1, 1 x 20 000...) and
every good one (vectors, tags, transcript), and stay within a memory bound whatever the headers
claim. The next run redoes only the file that changed under the first; the one after does
nothing at all.

As root the ingest runs as ``nobody`` (a forked child that drops privileges), since root reads
everything and the unreadable file and folder would not be unreadable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability.checks import check_store, connect
from reliability.conftest import Cli
from reliability.corpus import Corpus, build_bad_corpus, unlock

NOBODY = 65534
MAX_RSS = 1536 * 1024 * 1024  # bytes: the baseline (torch, CLIP, Whisper) is about 1.1 GB

pytestmark = pytest.mark.slow


def _can_drop_privileges() -> bool:
    """Whether a forked child of this (root) process can become nobody."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def hostile() -> Iterator[tuple[Corpus, int | None]]:
    """The corpus, and the uid to ingest it as (None: as ourselves)."""
    # Not tmp_path: its parents are private to us, and nobody must be able to reach the files.
    base = Path(tempfile.mkdtemp(prefix="assetlens-bad-input-"))
    base.chmod(0o755)
    root = os.geteuid() == 0
    user = NOBODY if root and _can_drop_privileges() else None
    umask = os.umask(0o022)
    try:
        corpus = build_bad_corpus(base / "corpus", unreadable=not root or user is not None)
    finally:
        os.umask(umask)
    if corpus.skipped:
        warnings.warn(
            f"running as root without a way to drop privileges: skipped {corpus.skipped}", stacklevel=1
        )
    try:
        yield corpus, user
    finally:
        unlock(base)
        shutil.rmtree(base)


def test_bad_files_fail_with_reasons_and_good_files_ingest(
    cli: Cli, hostile: tuple[Corpus, int | None]
) -> None:
    corpus, user = hostile
    data = cli.new_data_dir(corpus.root.parent / "data")
    if user is not None:
        for path in [data, *data.rglob("*")]:
            os.chown(path, user, user)
    command = ["ingest", str(corpus.root), "--json"]
    assert corpus.changing is not None and corpus.speech_video is not None

    corpus.changing.start()
    try:
        first = cli.run(data, *command, user=user)
    finally:
        corpus.changing.stop()

    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr, first.stderr
    assert corpus.changing.writes > 10  # it really changed while the ingest ran
    assert first.maxrss_kb * 1024 < MAX_RSS, f"peak memory {first.maxrss_kb // 1024} MB"
    with connect(data) as conn:
        assets = {r["uri"]: r for r in conn.execute("SELECT * FROM assets")}
        failures = {r["uri"]: r for r in conn.execute("SELECT * FROM failures")}
        vectors = dict(conn.execute("SELECT asset_id, count(*) FROM vectors GROUP BY asset_id").fetchall())
        tags = dict(conn.execute("SELECT asset_id, count(*) FROM tags GROUP BY asset_id").fetchall())
        speech = " ".join(
            r[0]
            for r in conn.execute(
                "SELECT s.text FROM segments s JOIN assets a ON a.id = s.asset_id WHERE a.uri = ?",
                (str(corpus.speech_video),),
            )
        )
    problems = []
    for case in corpus.cases:
        asset, failure = assets.get(case.uri), failures.get(case.uri)
        if case.expect == "ok-or-fail":
            outcome = "ok" if asset is not None and asset["status"] == "ok" else "fail"
        else:
            outcome = case.expect
        if outcome == "ignored":
            if asset is not None or failure is not None:
                problems.append(f"{case.kind}: expected to be ignored, got an asset or a failure")
        elif outcome == "ok":
            wrong_kind = asset is not None and case.asset_kind not in (None, asset["kind"])
            if asset is None or asset["status"] != "ok" or failure is not None or wrong_kind:
                problems.append(f"{case.kind}: expected an ok {case.asset_kind}, got {_describe(asset)}")
            elif asset["kind"] in ("image", "video") and not (
                vectors.get(asset["id"]) and tags.get(asset["id"])
            ):
                problems.append(f"{case.kind}: ingested without vectors or tags")
        else:
            if failure is None or asset is None or asset["status"] != "failed":
                problems.append(f"{case.kind}: expected a failure, got {_describe(asset)}")
                continue
            if not failure["reason"].strip() or (case.stage and failure["stage"] != case.stage):
                problems.append(f"{case.kind}: failure {failure['stage']}: {failure['reason']!r}")
            if case.reason and case.reason not in failure["reason"].lower():
                problems.append(f"{case.kind}: reason {failure['reason']!r} lacks {case.reason!r}")
    for path in corpus.good:
        asset = assets.get(str(path))
        if (
            asset is None
            or asset["status"] != "ok"
            or not vectors.get(asset["id"])
            or not tags.get(asset["id"])
        ):
            problems.append(f"good file {path.name}: {_describe(asset)}")
    assert problems == []
    assert {"spring", "collection"} <= set(speech.lower().replace(".", " ").split()), speech
    assert first.json()["failed"] == sum(a["status"] == "failed" for a in assets.values())

    second = cli.run(data, *command, user=user).json()  # only the file rewritten during the first
    third = cli.run(data, *command, user=user).json()

    assert second["added"] == second["failed"] == 0 and second["updated"] <= 1, second
    assert third["added"] == third["updated"] == third["failed"] == third["transcribed"] == 0, third
    assert third["skipped"] == len(assets)
    check_store(data)


def _describe(asset: object) -> str:
    if asset is None:
        return "nothing"
    row = dict(asset)  # type: ignore[call-overload]
    return f"{row['status']} {row['kind']} ({row['error']})"
