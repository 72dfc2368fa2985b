"""Near-duplicates and learned tags: decision quality, hash choice, grouping and learning at scale.

Run on demand (not collected by pytest)::

    python tests/benchmarks/bench_duplicates.py decision [--scenes 30] [--packshots 30]
    python tests/benchmarks/bench_duplicates.py grouping [--sizes 100000 1000000] [--baseline 20000]
    python tests/benchmarks/bench_duplicates.py learned [--size 1000000] [--workdir .bench/learned]
    python tests/benchmarks/bench_duplicates.py methods [--set-size 20000] [--seeds 5]

``decision``: the generated set of ``tests/duplicate_set.py`` (the sample photos, generated scenes
and packshots on white, 12 edits each, another shot of each generated original), written as JPEG
files, decoded and hashed as an ingest does (``decode_image`` at CLIP's 224 px, the ``hash`` stage)
and embedded with the tiny CLIP. Every pair of pictures is a positive when both come from one
original. Reported: precision and recall of the decision (CLIP similarity >= threshold AND hash
distance <= max distance) over a grid, pairwise and after grouping (connected components, what
users see), per family; the same for each measure alone; and the hash candidates (dHash, pHash,
average hash, wavelet hash, with and without the 90% crop rows) by their worst variant distance
against their closest distinct pair.

``grouping``, ``learned`` and ``methods`` (logistic regression against a calibrated prototype for
learned tags, on generated two-class sets): see :mod:`duplicates_scale` (synthetic vectors).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cpu_info import cpu_name
from duplicate_set import VARIANTS, generated_packshots, generated_scenes, other_shot, real_photos

from assetlens.enrich.decode import decode_image
from assetlens.enrich.phash import ANCHORS, fingerprint, hash_thumbnail
from assetlens.models.clip import ClipEncoder
from assetlens.models.registry import resolve_model
from assetlens.models.settings import ModelSettings
from assetlens.search.duplicates.compare import popcount
from assetlens.search.duplicates.groups import components

THRESHOLDS = (0.80, 0.85, 0.90, 0.95, 0.98)
DISTANCES = (8, 12, 16, 20, 22, 24, 26, 28, 32, 36, 40)


# --- the generated set, through the ingest path ---------------------------------------------


def build_set(scenes: int, packshots: int, folder: Path) -> tuple[list[str], list[str], list[Image.Image]]:
    """(original of each picture, family of each picture, the decoded pictures) of the set."""
    originals = {**real_photos(), **generated_scenes(scenes), **generated_packshots(packshots)}
    owners, families, decoded = [], [], []
    for name, image in originals.items():
        family = name.split("-")[0] if "-" in name else "photo"
        pictures = {"original": image, **{e: edit(image) for e, edit in VARIANTS.items()}}
        if family != "photo":
            pictures["other shot"] = other_shot(name)
        for edit, picture in pictures.items():
            path = folder / f"{name}__{edit}.jpg"
            picture.save(path, quality=92)
            decoded.append(decode_image(path, min_side=224).image)  # as an ingest decodes it
            owners.append(name if edit != "other shot" else f"{name} (other shot)")
            families.append(family)
    return owners, families, decoded


def pair_measures(
    vectors: np.ndarray, hashes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, similarity, distance) of every pair i < j (stills: one frame each)."""
    i, j = np.triu_indices(len(vectors), 1)
    sims = np.einsum("ij,ij->i", vectors[i], vectors[j])
    dists = np.empty(len(i), np.int64)
    for s in range(0, len(i), 50_000):
        a, b = hashes[i[s : s + 50_000]], hashes[j[s : s + 50_000]]
        d1 = popcount(a[:, None, 0, :] ^ b).sum(-1).min(-1)
        d2 = popcount(b[:, None, 0, :] ^ a).sum(-1).min(-1)
        dists[s : s + 50_000] = np.minimum(d1, d2)
    return i, j, sims, dists


def precision_recall(decided: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = int((decided & truth).sum())
    return hits / max(int(decided.sum()), 1), hits / max(int(truth.sum()), 1)


def grouped(i: np.ndarray, j: np.ndarray, decided: np.ndarray) -> np.ndarray:
    """Pairs in one connected component of the decided pairs (what the groups show)."""
    roots = components(i[decided], j[decided])
    ri = np.array([roots.get(int(x), -1 - int(x)) for x in i])
    rj = np.array([roots.get(int(x), -2 - int(x) - len(i)) for x in j])
    return ri == rj


def decision(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        owners, families, pictures = build_set(args.scenes, args.packshots, Path(tmp))
        hashed = time.perf_counter()
        hashes = np.stack([fingerprint(hash_thumbnail(p)) for p in pictures])
        hash_ms = (time.perf_counter() - hashed) / len(pictures) * 1000
        encoder = ClipEncoder(resolve_model(args.model), ModelSettings(clip_model=args.model, device="cpu"))
        vectors = np.concatenate(
            [encoder.encode_images(pictures[s : s + 64]) for s in range(0, len(pictures), 64)]
        )
        candidates = hash_candidates(pictures, owners, families)
    i, j, sims, dists = pair_measures(vectors, hashes)
    owner, family = np.array(owners), np.array(families)
    truth = owner[i] == owner[j]
    textured = (family[i] != "packshot") & (family[j] != "packshot")
    packs = (family[i] == "packshot") & (family[j] == "packshot")
    direct = truth & (_is_original(owner, i, pictures_of=owners) | _is_original(owner, j, pictures_of=owners))
    out: dict[str, Any] = {
        "cpu": cpu_name(), "model": args.model, "pictures": len(pictures), "pairs": len(i),
        "positives": int(truth.sum()),
        "hash_ms_per_picture": round(hash_ms, 3), "seconds": round(time.perf_counter() - started, 1),
        "grid": [], "clip_only": [], "hash_only": [], "families": {}, "hash_candidates": candidates,
    }  # fmt: skip
    tested = direct & textured  # a variant against its original
    for t, d in itertools.product(THRESHOLDS, DISTANCES):
        decided = (sims >= t) & (dists <= d)
        together = grouped(i, j, decided)
        p, r = precision_recall(decided[textured], truth[textured])
        gp, gr = precision_recall(together[textured], truth[textured])
        kp, kr = precision_recall(together[packs], truth[packs])
        out["grid"].append({
            "threshold": t, "max_distance": d, "precision": round(p, 4), "recall": round(r, 4),
            "variant_recall": round(precision_recall(decided[tested], truth[tested])[1], 4),
            "group_precision": round(gp, 4), "group_recall": round(gr, 4),
            "packshot_group_precision": round(kp, 4), "packshot_group_recall": round(kr, 4),
        })  # fmt: skip
    for t in THRESHOLDS:
        gp, gr = precision_recall(grouped(i, j, sims >= t)[textured], truth[textured])
        out["clip_only"].append(
            {"threshold": t, "group_precision": round(gp, 4), "group_recall": round(gr, 4)}
        )
    for d in DISTANCES:
        gp, gr = precision_recall(grouped(i, j, dists <= d)[textured], truth[textured])
        out["hash_only"].append(
            {"max_distance": d, "group_precision": round(gp, 4), "group_recall": round(gr, 4)}
        )
    clip_alone = sims >= args.threshold
    for name in ("photo", "scene", "packshot"):
        inside = (family[i] == name) & (family[j] == name)
        decided = (sims >= args.threshold) & (dists <= args.max_distance)
        p, r = precision_recall(decided[inside], truth[inside])
        worst_positive = int(dists[inside & truth].max()) if (inside & truth).any() else None
        closest_negative = int(dists[inside & ~truth].min())
        out["families"][name] = {
            "precision": round(p, 4), "recall": round(r, 4), "worst_positive_distance": worst_positive,
            "closest_negative_distance": closest_negative,
            "least_positive_similarity": round(float(sims[inside & truth].min()), 4),
            "clip_only_precision": round(precision_recall(clip_alone[inside], truth[inside])[0], 4),
        }  # fmt: skip
    return out


# --- hash candidates ------------------------------------------------------------------------


def _bits(b: np.ndarray) -> np.uint64:
    return np.uint64(int("".join("1" if x else "0" for x in b.reshape(-1)), 2))


def _region(thumb: Image.Image, box: tuple[float, ...], size: tuple[int, int]) -> np.ndarray:
    side = thumb.width
    scaled = tuple(v * side for v in box)
    return np.asarray(thumb.resize(size, Image.Resampling.BILINEAR, box=scaled), np.float64)  # type: ignore[arg-type]


def _ahash(thumb: Image.Image, box: tuple[float, ...]) -> np.uint64:
    a = _region(thumb, box, (8, 8))
    return _bits(a > a.mean())


def _whash(thumb: Image.Image, box: tuple[float, ...]) -> np.uint64:
    a = _region(thumb, box, (64, 64))
    for _ in range(3):  # Haar approximation down to 8x8
        a = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4
    return _bits(a > np.median(a))


def hash_candidates(pictures: list[Image.Image], owners: list[str], families: list[str]) -> dict[str, Any]:
    """Worst variant distance against closest distinct pair, per hash (photos and scenes; packshots apart)."""
    ours = np.stack([fingerprint(hash_thumbnail(p)) for p in pictures])
    thumbs = [Image.fromarray(hash_thumbnail(p), mode="L") for p in pictures]
    alternatives: dict[str, Callable[[Image.Image, tuple[float, ...]], np.uint64]] = {
        "ahash": _ahash,
        "whash": _whash,
    }
    other = {name: np.stack([[[fn(t, box), 0] for box in ANCHORS] for t in thumbs]).astype(np.uint64)
             for name, fn in alternatives.items()}  # fmt: skip
    layouts: dict[str, np.ndarray] = {
        "dhash+phash, crop rows (chosen)": ours,
        "dhash+phash, whole frame only": ours[:, :1],
        "dhash, crop rows": ours * np.array([1, 0], np.uint64),
        "phash, crop rows": ours * np.array([0, 1], np.uint64),
        "dhash, whole frame only": ours[:, :1] * np.array([1, 0], np.uint64),
        "phash, whole frame only": ours[:, :1] * np.array([0, 1], np.uint64),
        "ahash, crop rows": other["ahash"], "whash, crop rows": other["whash"],
    }  # fmt: skip
    owner, family = np.array(owners), np.array(families)
    out = {}
    for name, hashes in layouts.items():
        i, j, _, dists = pair_measures(np.zeros((len(hashes), 1), np.float32), hashes)
        truth = owner[i] == owner[j]
        # A variant against its original (two variants of one original meet through it).
        truth &= _is_original(owner, i, pictures_of=owners) | _is_original(owner, j, pictures_of=owners)
        textured = (family[i] != "packshot") & (family[j] != "packshot")
        packs = (family[i] == "packshot") & (family[j] == "packshot")
        distinct = (owner[i] != owner[j]) & ~_shots(owner, i, j)
        shots = (owner[i] != owner[j]) & _shots(owner, i, j) & textured
        out[name] = {
            "worst_variant": int(dists[truth & textured].max()),
            "closest_distinct": int(dists[distinct & textured].min()),
            "closest_other_shot": int(dists[shots].min()),
            "packshots_worst_variant": int(dists[truth & packs].max()),
            "packshots_closest_distinct": int(dists[distinct & packs].min()),
        }
    return out


def _is_original(owner: np.ndarray, i: np.ndarray, pictures_of: list[str]) -> np.ndarray:
    """Whether picture ``i`` is its original (the first picture of each owner)."""
    first = {}
    for k, name in enumerate(pictures_of):
        first.setdefault(name, k)
    return np.array([first[owner[k]] == k for k in i])


def _shots(owner: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.char.endswith(owner[i].astype(str), "(other shot)") | np.char.endswith(
        owner[j].astype(str), "(other shot)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    d = sub.add_parser("decision")
    d.add_argument("--scenes", type=int, default=30)
    d.add_argument("--packshots", type=int, default=30)
    d.add_argument("--threshold", type=float, default=0.90)
    d.add_argument("--max-distance", type=int, default=22)
    d.add_argument("--model", default="tiny", help="CLIP model (tiny, ViT-B-32@random, ...).")
    g = sub.add_parser("grouping")
    g.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    g.add_argument("--baseline", type=int, default=20_000, help="Brute-force O(n^2) on this many assets.")
    g.add_argument("--nprobe", type=int, nargs="+", default=None)
    lt = sub.add_parser("learned")
    lt.add_argument("--size", type=int, default=1_000_000)
    lt.add_argument("--workdir", type=Path, default=Path(".bench/learned"))
    m = sub.add_parser("methods")
    m.add_argument("--set-size", type=int, default=20_000)
    m.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    if args.part == "decision":
        result = decision(args)
    else:
        import duplicates_scale

        parts = {"grouping": duplicates_scale.grouping, "learned": duplicates_scale.learned_tags,
                 "methods": duplicates_scale.compare_methods}  # fmt: skip
        result = {"cpu": cpu_name(), **parts[args.part](args)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
