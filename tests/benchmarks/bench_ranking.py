"""Hybrid ranking quality and the cost of graded word matching (issue 14).

1. Quality: builds the labelled mixed library of ``tests/ranking_eval.py`` (14 photos on the
   random-weight tiny CLIP, 6 espeak-ng voice memos transcribed by the real Whisper tiny.en,
   file names, user meta, user tags) and reports nDCG@10 per query of semantic, lexical by BM25
   alone (the previous lexical order), lexical by match level (phrase, near, all words; BM25
   inside), RRF (the previous hybrid fusion, the baseline) and the hybrid fusion of calibrated
   relevances.
2. Cost: the lexical search now asks FTS5 for the phrase and the near match besides "every
   word". On a synthetic library (``--assets`` assets, each with a file name, meta and five
   transcript segments drawn from a Zipf vocabulary; cached under ``.bench/ranking/``) it times,
   for the same queries (two or three consecutive words of a random segment), in turn, in the
   same process: ``Store.lexical_search`` with the three levels (``graded``), with the "every
   word" level only (``every word``), and the previous SQL (``previous``, the baseline, kept here
   only: it picked each asset's segment with a correlated subquery, quadratic in the hits of an
   asset-rich query; a run past ``--cap`` seconds is stopped and counted at the cap).

Run on demand (not collected by pytest)::

    python tests/benchmarks/bench_ranking.py [--assets 20000] [--queries 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from cpu_info import cpu_name

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS_SQL = """
WITH hits AS (
    SELECT rowid AS asset_id, bm25(assets_fts) AS rank, NULL AS segment_id
    FROM assets_fts WHERE assets_fts MATCH ?
    UNION ALL
    SELECT s.asset_id, bm25(segments_fts), s.id
    FROM segments_fts JOIN segments s ON s.id = segments_fts.rowid
    WHERE segments_fts MATCH ?
),
best AS (
    SELECT asset_id, min(rank) AS rank,
           (SELECT h2.segment_id FROM hits h2 WHERE h2.asset_id = hits.asset_id
            AND h2.segment_id IS NOT NULL ORDER BY h2.rank LIMIT 1) AS segment_id
    FROM hits GROUP BY asset_id
)
SELECT b.asset_id, b.rank, s.start, s.end, s.text, s.id
FROM best b JOIN assets a ON a.id = b.asset_id
LEFT JOIN segments s ON s.id = b.segment_id
WHERE a.status = 'ok'
ORDER BY b.rank, b.asset_id LIMIT ?
"""
CORPUS_VERSION = 1
SEED = 20261204


def quality() -> dict[str, Any]:
    """The labelled evaluation's nDCG@10 table."""
    sys.path.insert(0, str(ROOT / "tests"))
    import ranking_eval

    from assetlens.models.settings import WhisperSettings
    from assetlens.models.whisper import Transcriber

    with tempfile.TemporaryDirectory(prefix="assetlens-ranking-") as tmp:
        lib = ranking_eval.build_library(Path(tmp), Transcriber(WhisperSettings(whisper_device="cpu")))
        try:
            scores = ranking_eval.evaluate(lib)
        finally:
            lib.close()
    return {"scores": scores, "table": ranking_eval.table(scores)}


def _corpus(path: Path, assets: int) -> Any:
    """The synthetic library for the cost measurement, built once."""
    from assetlens.search.store import Store

    stamp = path.with_suffix(".json")
    want = {"assets": assets, "version": CORPUS_VERSION, "seed": SEED}
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == want:
        return Store(path)
    for p in (path, stamp):
        p.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    vocab = [f"w{i}" for i in range(5000)]
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    zipf /= zipf.sum()

    def words(n: int) -> str:
        return " ".join(vocab[i] for i in rng.choice(len(vocab), n, p=zipf))

    store = Store(path)
    started = time.perf_counter()
    with store.transaction():
        for i in range(assets):
            asset_id = store.upsert_asset({
                "uri": f"/lib/{words(2).replace(' ', '-')}-{i}.jpg", "kind": "audio", "size": 1,
                "mtime": 0.0, "status": "ok", "meta": {"title": words(4), "notes": words(8)},
            })  # fmt: skip
            segments = [{"start": 5.0 * s, "end": 5.0 * s + 5, "text": words(12)} for s in range(5)]
            store.replace_segments(asset_id, "synthetic", segments)
    print(f"built {assets} assets in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    stamp.write_text(json.dumps(want))
    return store


def _previous(store: Any, expression: str, cap: float) -> int | None:
    """The previous lexical SQL; None when stopped at ``cap`` seconds."""
    import sqlite3

    deadline = time.perf_counter() + cap
    store.db.set_progress_handler(lambda: int(time.perf_counter() > deadline), 10_000)
    try:
        return len(store.db.execute(PREVIOUS_SQL, (expression, expression, 500)).fetchall())
    except sqlite3.OperationalError as exc:  # interrupted
        if "interrupt" not in str(exc):
            raise
        return None
    finally:
        store.db.set_progress_handler(None, 0)


def cost(workdir: Path, assets: int, queries: int, cap: float) -> dict[str, Any]:
    """Median and p99 milliseconds of the graded lexical search, the every-word level alone, and
    the previous SQL."""
    from assetlens.search.ranking import LexicalQuery

    store = _corpus(workdir / f"lexical-{assets}.db", assets)
    rng = np.random.default_rng(SEED + 1)
    texts = []
    for segment in store.db.execute("SELECT text FROM segments ORDER BY random() LIMIT ?", (queries,)):
        words = segment[0].split()
        n = int(rng.integers(2, 4))
        start = int(rng.integers(0, len(words) - n + 1))
        texts.append(" ".join(words[start : start + n]))
    names = ("previous", "every word", "graded")
    times: dict[str, list[float]] = {name: [] for name in names}
    hits: dict[str, list[int]] = {name: [] for name in names}
    capped = 0
    for i, text in enumerate(texts):
        lexical = LexicalQuery.of(text)
        assert lexical is not None
        for name in names[i % 3 :] + names[: i % 3]:
            started = time.perf_counter()
            if name == "previous":
                found = _previous(store, lexical.levels[-1][1], cap)
                capped += found is None
                count = -1 if found is None else found
            else:
                levels = lexical.levels if name == "graded" else lexical.levels[-1:]
                count = len(store.lexical_search(levels, "a.status = 'ok'", [], 500))
            times[name].append((time.perf_counter() - started) * 1000)
            hits[name].append(count)
    store.close()
    out: dict[str, Any] = {"assets": assets, "segments": assets * 5, "queries": len(texts), "capped": capped}
    for name, values in times.items():
        ordered = sorted(values)
        out[name] = {
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
            "mean_ms": round(statistics.mean(ordered), 2),
            "mean_hits": round(statistics.mean(h for h in hits[name] if h >= 0), 1),
        }
    for name in ("previous", "every word"):
        out[f"graded / {name} (p50)"] = round(out["graded"]["p50_ms"] / max(out[name]["p50_ms"], 1e-9), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assets", type=int, default=20_000, help="synthetic library size for the cost")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cap", type=float, default=10.0, help="previous-SQL run limit, s")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".bench" / "ranking")
    parser.add_argument("--skip-quality", action="store_true", help="only the cost measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    if shutil.which("espeak-ng") is None and not args.skip_quality:
        parser.error("espeak-ng is needed for the voice memos (apt-get install espeak-ng)")
    report: dict[str, Any] = {"cpu": cpu_name(), "cores": os.cpu_count()}
    if not args.skip_quality:
        report["quality"] = quality()
    report["cost"] = cost(args.workdir, args.assets, args.queries, args.cap)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"CPU: {report['cpu']} ({report['cores']} cores)")
    if "quality" in report:
        print("\nnDCG@10\n" + report["quality"]["table"])
    c = report["cost"]
    print(f"\nlexical search, {c['assets']} assets / {c['segments']} segments, {c['queries']} queries:")
    for name in ("previous", "every word", "graded"):
        row = c[name]
        print(f"  {name:10}  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  mean {row['mean_ms']} ms"
              f"  hits {row['mean_hits']}")  # fmt: skip
    print(f"  previous runs stopped at {args.cap} s: {c['capped']}")
    for name in ("previous", "every word"):
        print(f"  graded / {name} (p50): {c[f'graded / {name} (p50)']}")


if __name__ == "__main__":
    main()
