"""The command line's own costs, as ratios to ``assetlens stats``: start-up, search, a new library.

Every command runs as a real ``python -m assetlens.enrich`` process (what the ``assetlens``
script runs) on ``ViT-B-32@random`` (the real network, seeded weights: timing only), with the
default precision. Measured, each as the median wall time of ``--runs`` runs and the largest
peak resident memory (the command's own ``ru_maxrss``, from ``os.wait4`` in a small launcher):

- ``stats``: the reference, a command that loads no model;
- ``--help``: start-up;
- warm search: ``search TEXT`` on a 160-photo library whose model's ONNX text tower is in the
  machine cache;
- first ingest into a new library on a used machine: ``ingest`` of one camera JPEG into a new
  data dir, the machine cache warm (ONNX export and label embeddings made earlier);
- once, the same first ingest on a new machine (empty cache): the one-off model work.

The scenarios run interleaved, round by round, so that load from other processes touches all
of them alike. With ``--before REF`` the same scenarios also run on the code of git ref REF
(extracted under the work dir and put first on ``PYTHONPATH``), each against its own ``stats``.
Run on demand (pytest does not collect it)::

    python tests/benchmarks/bench_cli.py [--runs 7] [--before REF] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest_support import machine, make_corpus

REPO = Path(__file__).resolve().parents[2]
MODEL = "ViT-B-32@random"
QUERY = "a red sneaker on a white background"

# Runs the command as its child and prints its wall time and own peak memory. A small parent
# matters: ru_maxrss survives exec, so a child forked straight from this process (torch loaded)
# would report this process's size.
_LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
if code:
    sys.exit(code)
print(json.dumps([wall, usage.ru_maxrss]))
"""


class Code:
    """One version of AssetLens: the installed tree, or a git ref extracted beside the work dir.

    Args:
        name: ``after`` (this tree) or ``before``.
        workdir: Where its libraries and machine cache go.
        source: A folder holding an ``assetlens`` package to run instead of the installed one.
    """

    def __init__(self, name: str, workdir: Path, source: Path | None = None) -> None:
        self.name, self.workdir, self.source = name, workdir / name, source
        self.cache = self.workdir / "machine-cache"
        self.library = self.workdir / "library"
        self._new = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETLENS_")}
        env |= {"ASSETLENS_CLIP_MODEL": MODEL, "ASSETLENS_CACHE_DIR": str(self.cache)}
        if self.source is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(self.source), env.get("PYTHONPATH", "")])
        return env

    def new_data_dir(self) -> Path:
        self._new += 1
        return self.workdir / f"new-library-{self._new}"

    def run(self, *args: str) -> tuple[float, float]:
        """Run ``assetlens ARGS``: wall seconds and peak resident MB; raises on a failure."""
        command = [sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "assetlens.enrich", *args]
        done = subprocess.run(command, env=self.env(), capture_output=True, text=True, cwd=self.workdir)
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(args)} failed: {done.stderr}")
        wall, max_rss_kb = json.loads(done.stdout)
        return wall, max_rss_kb / 1024


def extract(ref: str, target: Path) -> Path:
    """The tree of git ``ref`` as ``target/assetlens`` (the repository root is the package)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    command = ["git", "archive", "--format=tar", "--prefix=assetlens/", ref]
    archive = subprocess.run(command, cwd=REPO, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


def scenarios(code: Code, photo_dir: Path) -> dict[str, Callable[[], tuple[float, float]]]:
    lib = str(code.library)
    return {
        "stats": lambda: code.run("--data-dir", lib, "stats", "--json"),
        "start-up (--help)": lambda: code.run("--help"),
        "warm search": lambda: code.run("--data-dir", lib, "search", QUERY, "--json"),
        "first ingest, new library": lambda: code.run(
            "--data-dir", str(code.new_data_dir()), "ingest", str(photo_dir), "--json"
        ),
    }


def summarise(samples: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    reference = statistics.median(w for w, _ in samples["stats"])
    out: dict[str, Any] = {}
    for name, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        out[name] = {
            "wall_s": round(wall, 3),
            "ratio_to_stats": round(wall / reference, 2),
            "peak_rss_mb": round(max(m for _, m in runs), 1),
            "runs": len(runs),
            "walls_s": [round(w, 3) for w, _ in runs],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="Runs of each scenario (median reported).")
    parser.add_argument("--before", help="Also measure the code of this git ref (e.g. the base commit).")
    parser.add_argument("--before-slow-runs", type=int, default=2, help="Before: new-library runs.")
    parser.add_argument("--workdir", default=str(REPO / ".bench" / "cli"))
    parser.add_argument("--json", action="store_true", help="Print the result as JSON only.")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    corpus = make_corpus(workdir / "corpus", jpegs=160, pngs=0, videos=0)
    photo_dir = workdir / "one-photo"
    photo_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(corpus["jpeg"][0], photo_dir / "photo.jpg")
    codes = [Code("after", workdir)]
    if args.before:
        codes.append(Code("before", workdir, extract(args.before, workdir / "before-src")))
    load_start = os.getloadavg()[0]

    result: dict[str, Any] = {"model": MODEL, "query": QUERY, "machine": machine(), "library_photos": 160}
    for code in codes:
        shutil.rmtree(code.workdir, ignore_errors=True)
        code.workdir.mkdir(parents=True)
        # A new machine: the first ingest of all does the one-off model work.
        wall, rss = code.run("--data-dir", str(code.new_data_dir()), "ingest", str(photo_dir), "--json")
        first = {"wall_s": round(wall, 2), "peak_rss_mb": round(rss, 1)}
        result[f"{code.name}: first ingest, new machine"] = first
        code.run("--data-dir", str(code.library), "ingest", str(corpus["jpeg"][0].parent), "--json")

    samples: dict[str, dict[str, list[tuple[float, float]]]] = {code.name: {} for code in codes}
    plans = {code.name: scenarios(code, photo_dir) for code in codes}
    for round_ in range(args.runs):
        for code in codes:
            for name, measure in plans[code.name].items():
                slow_before = code.name == "before" and name.startswith("first ingest")
                if slow_before and round_ >= args.before_slow_runs:
                    continue  # every new library re-exports there: ~30 s a run
                samples[code.name].setdefault(name, []).append(measure())
    for code in codes:
        result[code.name] = summarise(samples[code.name])
    result["load_average_1min"] = {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)}
    result["before_ref"] = args.before
    (workdir / "result.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    cpu = result["machine"]
    print(f"{cpu['cpu']}, {cpu['cores']} cores; {MODEL}; load {result['load_average_1min']}")
    for code in codes:
        key = f"{code.name}: first ingest, new machine"
        print(f"\n{code.name}{f' ({args.before})' if code.name == 'before' else ''}:")
        print(f"  first ingest on a new machine: {result[key]['wall_s']} s, {result[key]['peak_rss_mb']} MB")
        for name, row in result[code.name].items():
            print(
                f"  {name:<28} {row['wall_s']:7.3f} s  {row['ratio_to_stats']:5.2f}x stats  "
                f"{row['peak_rss_mb']:7.1f} MB  ({row['runs']} runs)"
            )


if __name__ == "__main__":
    main()
