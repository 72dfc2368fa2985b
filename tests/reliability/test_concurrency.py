"""Concurrency: searches while an ingest writes, and two writers on one library.

Searches run in a loop, in this process (a second :class:`LibraryCore` with its own SQLite
connection) and as ``assetlens search --json`` processes, from the moment an ingest starts
(before its database even exists) until it ends. Every result set must be consistent with
the store: each asset exists, is ok and has vectors, scores come best first, no asset twice.
Nothing may fail, and "database is locked" must never appear.

A second ingest (or ``tag``, ``reembed``, ``transcribe``) on a library being ingested refuses
at once with one line naming the pid that holds it, or waits with ``--wait``; either way the
final library equals the one a single run makes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from reliability.checks import assert_same_library, check_store, connect, count, snapshot
from reliability.conftest import Cli, References

from assetlens.enrich.lock import holder_of
from assetlens.models.clip import ClipEncoder
from assetlens.models.registry import resolve_model
from assetlens.models.settings import ModelSettings
from assetlens.search.filters import parse_filter
from assetlens.search.library import LibraryCore
from assetlens.search.query_types import Query
from assetlens.search.settings import SearchSettings

pytestmark = pytest.mark.slow

BATCH = 6


def _queries() -> list[Query]:
    return [
        Query(text=(("a red and green gradient", 1.0),), mode="semantic", limit=100),
        Query(text=(("noise", 1.0),), mode="hybrid", limit=30),
        Query(text=(("img", 1.0),), mode="lexical", limit=100),
        Query(text=(("a video frame", 1.0),), filter=parse_filter("kind:video"), mode="semantic"),
        Query(text=(("spring collection", 1.0),), mode="hybrid", limit=10),
    ]


def _verify(data: Path, results: list[dict[str, Any]], semantic: bool) -> None:
    """A result list agrees with the store (read through a connection of its own)."""
    ids = [r["asset_id"] for r in results]
    assert len(ids) == len(set(ids)), "an asset twice in one result list"
    with connect(data) as conn:
        for r in results:
            row = conn.execute(
                "SELECT uri, kind, status FROM assets WHERE id = ?", (r["asset_id"],)
            ).fetchone()
            assert row is not None, f"result {r['asset_id']} is not in the store"
            assert (row["uri"], row["kind"], row["status"]) == (r["uri"], r["kind"], "ok")
            vectors = conn.execute(
                "SELECT count(*) FROM vectors WHERE asset_id = ?", (r["asset_id"],)
            ).fetchone()
            assert vectors[0] > 0, f"result {r['uri']} has no vectors"
    if semantic:
        scores = [r["score"] for r in results]
        assert scores == sorted(scores, reverse=True)


class _Searcher(threading.Thread):
    """Searches in this process, over its own connection, until stopped."""

    def __init__(self, data: Path) -> None:
        super().__init__(name="searcher", daemon=True)
        self.data, self.done = data, 0
        self.sizes: list[int] = []  # how many assets each broad semantic query found
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        lib: LibraryCore | None = None
        try:
            while not self.stop.is_set():
                if lib is None or self.done % 10 == 0:  # now and then a fresh connection
                    if lib is not None:
                        lib.close()
                    lib = LibraryCore(SearchSettings(data_dir=self.data), ModelSettings(clip_model="tiny"))
                for query in _queries():
                    page = lib.engine.search(query)
                    if query.limit == 100 and query.mode == "semantic":
                        self.sizes.append(len(page.results))
                    _verify(self.data, [r.as_dict() for r in page.results], query.mode == "semantic")
                self.done += 1
        except Exception as exc:  # reported by the test, with its type
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if lib is not None:
                lib.close()


def test_searches_stay_consistent_while_an_ingest_writes(
    cli: Cli, library: tuple[Path, list[Path]], references: References, tmp_path: Path
) -> None:
    root, files = library
    reference, _ = references.get(BATCH)
    data = cli.new_data_dir(tmp_path / "data")
    # Text queries load torch and open_clip on first use (seconds): pay that before the writer
    # starts, or the in-process searcher may still be importing when the ingest is done.
    ClipEncoder(resolve_model("tiny"), ModelSettings(device="cpu")).encode_texts(["warm-up"], remember=False)

    writer = cli.spawn(data, "ingest", str(root), "--batch-size", str(BATCH), "--json")
    searcher = _Searcher(data)
    searcher.start()  # at once: it may open the store while the writer creates it
    searches = []
    during = 0
    while writer.poll() is None:
        result = cli.run(data, "search", "a noisy gradient", "--mode", "semantic", "--limit", "100", "--json")
        searches.append(result)
        during += writer.poll() is None
    written = writer.wait()
    searches.append(
        cli.run(data, "search", "a noisy gradient", "--mode", "semantic", "--limit", "100", "--json")
    )
    searcher.stop.set()
    searcher.join(60)

    assert written.returncode == 0, written.stderr
    assert written.json()["added"] == len(files)
    assert searcher.errors == []
    # They really overlapped the writes: a search saw a library part-written, or a CLI search
    # ended while the ingest still ran (on a loaded machine one CLI start can outlast it).
    assert searcher.done >= 3
    assert during >= 1 or any(0 < n < len(files) for n in searcher.sizes), searcher.sizes
    for result in searches:
        assert result.returncode == 0, result.stderr
        _verify(data, result.json()["results"], semantic=True)
    assert len(searches[-1].json()["results"]) == len(files)
    for text in [written.stderr, *(r.stderr for r in searches)]:
        assert "database is locked" not in text and "Traceback" not in text
    check_store(data)
    assert_same_library(snapshot(data), reference, exact=True)


def test_a_second_writer_refuses_or_waits_and_the_library_stays_whole(
    cli: Cli, library: tuple[Path, list[Path]], references: References, tmp_path: Path
) -> None:
    root, files = library
    reference, _ = references.get(BATCH)
    data = cli.new_data_dir(tmp_path / "data")
    command = ["ingest", str(root), "--batch-size", str(BATCH), "--json"]

    first = cli.spawn(data, *command)
    deadline = time.monotonic() + 60
    while holder_of(data) != f"pid {first.pid} (ingest)" and time.monotonic() < deadline:
        time.sleep(0.01)
    waiting = cli.spawn(data, *command, "--wait")
    refused = {
        name: cli.run(data, *args)
        for name, args in {
            "ingest": command,
            "tag": ["tag", "--json"],
            "reembed": ["reembed", "--json"],
            "transcribe": ["transcribe", "--missing", "--json"],
        }.items()
    }
    still_running = first.poll() is None
    done, waited = first.wait(), waiting.wait()

    assert still_running, "the first ingest ended before the others were refused"
    for name, result in refused.items():
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1, (name, result.stderr)
        assert lines == [
            f"error: another assetlens process (pid {first.pid} (ingest)) is writing to the library "
            f"at {data}: wait for it to finish, or run this command with --wait"
        ], name
    assert done.returncode == 0 and waited.returncode == 0, waited.stderr
    assert f"waiting for another assetlens process (pid {first.pid} (ingest))" in waited.stderr
    assert done.json()["added"] == len(files)
    report = waited.json()
    assert report["added"] == report["updated"] == report["failed"] == 0
    assert report["skipped"] == len(files)
    assert count(data, "jobs") == 2  # the refused commands wrote nothing
    check_store(data)
    assert_same_library(snapshot(data), reference, exact=True)
