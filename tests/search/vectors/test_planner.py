"""Filtered vector search: exact or near-exact at every selectivity, on both planner paths."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from assetlens.search.filters import And, Cmp, Filter, Not, TagIs, compile_filter
from assetlens.search.filters.columns import ColumnCache
from assetlens.search.store import Store, Tag
from assetlens.search.vectors.index import IndexConfig, VectorIndex
from assetlens.search.vectors.planner import Planner, PlannerConfig

DIM = 32
N_ASSETS = 20_000
BUCKETS = 10_000  # meta.bucket is uniform over 0..9999: "bucket < n" keeps n / 10000 of the assets
SELECTIVITIES = (0.0001, 0.001, 0.01, 0.1, 0.5, 1.0)
HNSW = IndexConfig(kind="hnsw", hnsw_m=16, hnsw_ef_construction=40, hnsw_ef_search=32)


def clustered(rng: np.random.Generator, n: int, centers: np.ndarray) -> np.ndarray:
    """Unit vectors around random centres (like CLIP embeddings, unlike uniform noise)."""
    v = centers[rng.integers(0, len(centers), n)] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def add(store: Store, rng: np.random.Generator, centers: np.ndarray, start: int, count: int) -> list[int]:
    """Assets with a vector each (every tenth a video with three keyframes), a bucket and a tag."""
    ids = []
    with store.transaction():
        for i in range(start, start + count):
            video = i % 10 == 0
            aid = store.upsert_asset({
                "uri": f"/lib/{i}.{'mp4' if video else 'jpg'}", "kind": "video" if video else "image",
                "size": i, "mtime": 0.0, "status": "ok",
                "meta": {"bucket": int(rng.integers(0, BUCKETS)), "region": ["DE", "AT", "FR"][i % 3]},
            })  # fmt: skip
            frames = 3 if video else 1
            store.replace_vectors(
                aid, "m@1", clustered(rng, frames, centers), [float(t) for t in range(frames)]
            )
            store.replace_tags(
                aid, "clip", [Tag("shoe" if i % 4 == 0 else "sky", float(rng.uniform(0.1, 0.4)), "clip")]
            )
            ids.append(aid)
    return ids


@dataclass
class Library:
    store: Store
    index: VectorIndex
    columns: ColumnCache
    vectors: np.ndarray  # every stored vector, by index row
    queries: np.ndarray


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Library:
    root = tmp_path_factory.mktemp("planner")
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((40, DIM)).astype(np.float32)
    store = Store(root / "a.db")
    add(store, rng, centers, 0, N_ASSETS)
    index = VectorIndex(store, root, HNSW).build()
    vectors = np.concatenate([v for _, _, v in store.iter_vector_rows()])
    return Library(store, index, ColumnCache(store), vectors, clustered(rng, 20, centers))


def brute_force(
    lib: Library, query: np.ndarray, f: Filter | None, k: int, per_asset: bool = False
) -> list[int]:
    """Top vector ids by exact numpy over the vectors whose assets pass the SQL filter."""
    sql, params = compile_filter(f) if f is not None else ("1", [])
    passing = lib.store.matching_asset_ids(sql, params)
    rows = np.flatnonzero(np.isin(lib.index.assets, passing) & lib.index.alive)
    scores = lib.vectors[rows] @ query
    order = rows[np.lexsort((rows, -scores))]
    if per_asset:
        _, first = np.unique(lib.index.assets[order], return_index=True)
        order = order[np.sort(first)]
    return lib.index.ids[order[:k]].tolist()


def bucket_filter(selectivity: float) -> Filter | None:
    return None if selectivity == 1.0 else Cmp("meta.bucket", "lt", int(selectivity * BUCKETS))


@pytest.mark.parametrize("selectivity", SELECTIVITIES)
def test_recall_at_every_selectivity_on_both_paths(lib: Library, selectivity: float) -> None:
    f = bucket_filter(selectivity)
    forced_ann = Planner(lib.index, lib.columns, lib.store, PlannerConfig(exact_max=100))
    default = Planner(lib.index, lib.columns, lib.store)
    paths, recalls = set(), []
    for query in lib.queries:
        expected = brute_force(lib, query, f, 10)
        low = forced_ann.search(query, f, 10)
        paths.add(low.path)
        recalls.append(len(set(expected) & {h.vector_id for h in low.hits}) / max(len(expected), 1))
        assert len(low.hits) == len(expected)
        exact = default.search(query, f, 10)
        if exact.path == "exact":
            assert [h.vector_id for h in exact.hits] == expected
    assert np.mean(recalls) >= 0.95, (selectivity, np.mean(recalls), paths)
    assert paths == ({"exact"} if selectivity * N_ASSETS * 1.2 <= 100 else {"ann"})


def test_per_asset_widens_to_k_distinct_assets(lib: Library) -> None:
    planner = Planner(lib.index, lib.columns, lib.store, PlannerConfig(exact_max=100))
    videos = Cmp("kind", "eq", "video")
    for f, expect_path in ((videos, "ann"), (And((videos, Cmp("meta.bucket", "lt", 120))), "exact")):
        for query in lib.queries[:5]:
            result = planner.search(query, f, 10, per_asset=True)
            assets = [h.asset_id for h in result.hits]
            assert len(set(assets)) == len(assets) == 10 and result.path == expect_path
            expected = brute_force(lib, query, f, 10, per_asset=True)
            assert len(set(expected) & {h.vector_id for h in result.hits}) >= 9


def test_results_pass_the_sql_filter_and_report_how(lib: Library) -> None:
    f = And((TagIs("shoe", 0.2), Not(Cmp("meta.region", "eq", "FR"))))
    result = Planner(lib.index, lib.columns, lib.store).search(lib.queries[0], f, 20)
    sql, params = compile_filter(f)
    owners = [h.asset_id for h in result.hits]
    assert set(lib.store.matching_asset_ids(sql, params, ids=owners).tolist()) == set(owners)
    explained = result.explain()
    assert explained["path"] in ("exact", "ann") and explained["candidates"] > 0 and result.rejected == 0
    assert set(result.timings_ms) >= {"filter", "search", "recheck", "total"}


def test_new_assets_are_found_after_a_refresh_and_deleted_ones_never_return(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((5, DIM)).astype(np.float32)
    store = Store(tmp_path / "a.db")
    add(store, rng, centers, 0, 500)
    index = VectorIndex(store, tmp_path, IndexConfig(kind="hnsw", hnsw_m=8)).build()
    planner = Planner(index, ColumnCache(store), store, PlannerConfig(exact_max=10, refresh_seconds=3600))
    query = clustered(rng, 1, centers)[0]
    region = Cmp("meta.region", "in", ("DE", "AT"))
    first = planner.search(query, region, 5)

    # Delete the best hit, and add assets equal to the query: neither the cache nor the index knows yet.
    with store.transaction():
        store.delete_asset(first.hits[0].asset_id)
    new = add(store, rng, centers, 1000, 3)
    with store.transaction():
        for aid in new:
            store.replace_vectors(aid, "m@1", query[None, :], [None])
    stale = planner.search(query, region, 5)
    assert first.hits[0].asset_id not in {h.asset_id for h in stale.hits} and stale.rejected >= 1
    assert not set(new) & {h.asset_id for h in stale.hits}

    planner.refresh(force=True)
    fresh = planner.search(query, region, 5)
    expected = {a for a in new if store.asset(a).meta["region"] != "FR"}
    assert expected <= {h.asset_id for h in fresh.hits} and fresh.rejected == 0


def test_index_persists_catches_up_and_rebuilds_after_many_deletes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    centers = rng.standard_normal((5, DIM)).astype(np.float32)
    store = Store(tmp_path / "a.db")
    ids = add(store, rng, centers, 0, 400)
    config = IndexConfig(kind="hnsw", hnsw_m=8)
    built = VectorIndex(store, tmp_path, config).build()
    query = clustered(rng, 1, centers)

    reopened = VectorIndex(store, tmp_path, config).sync(save=False)
    assert not reopened.rebuilt and reopened.kind == "hnsw" and reopened.size == built.size
    np.testing.assert_array_equal(reopened.search(query, 5)[1], built.search(query, 5)[1])
    sidecar = json.loads((tmp_path / "index.json").read_text())
    assert sidecar["kind"] == "hnsw" and sidecar["params"]["m"] == 8 and sidecar["model"] == "m@1"

    more = add(store, rng, centers, 1000, 20)  # a reader keeps new vectors in the exact delta
    reader = VectorIndex(store, tmp_path, config).sync(save=False)
    assert reader.status()["unsaved_delta"] == 24 and reader.size == built.size + 24
    own = store.vectors_of(more[0])[0]
    assert reader.search(own, 1)[1][0, 0] in {vid for vid, _ in store.keyframes_of(more[0])}

    with store.transaction():
        for aid in ids[:20]:  # 5% of the rows: tombstones
            store.delete_asset(aid)
    writer = VectorIndex(store, tmp_path, config).sync()
    assert not writer.rebuilt and writer.status()["tombstones"] > 0 and writer.status()["in_step"]
    gone = {vid for aid in ids[:20] for vid in writer.ids[writer.assets == aid].tolist()}
    assert not gone & set(writer.search(lib_queries(rng, centers), 50)[1].ravel().tolist())

    with store.transaction():
        for aid in ids[20:80]:  # now past 10%: the writer rebuilds
            store.delete_asset(aid)
    assert VectorIndex(store, tmp_path, config).sync(save=False).status()["tombstones"] > 0
    rebuilt = VectorIndex(store, tmp_path, config).sync()
    assert rebuilt.rebuilt and rebuilt.status()["tombstones"] == 0 and rebuilt.size == store.count_vectors()


def lib_queries(rng: np.random.Generator, centers: np.ndarray) -> np.ndarray:
    return clustered(rng, 8, centers)


def test_auto_kind_stays_flat_until_ivfpq_can_train_and_ivf_works(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((8, DIM)).astype(np.float32)
    store = Store(tmp_path / "a.db")
    add(store, rng, centers, 0, 300)
    assert VectorIndex(store, tmp_path / "a", IndexConfig(flat_max=1000)).sync().kind == "flat"
    # Past flat_max, but 330 vectors cannot train 256 PQ centroids per sub-space: still exact.
    kept = VectorIndex(store, tmp_path / "a", IndexConfig(flat_max=200)).sync()
    assert kept.kind == "flat" and not kept.rebuilt
    hnsw = VectorIndex(store, tmp_path / "a", IndexConfig(kind="hnsw", hnsw_m=8)).sync()
    assert hnsw.kind == "hnsw" and hnsw.rebuilt

    ivf = VectorIndex(store, tmp_path / "b", IndexConfig(kind="ivf", ivf_nlist=16, ivf_nprobe=4)).build()
    planner = Planner(ivf, ColumnCache(store), store, PlannerConfig(exact_max=10))
    f = Cmp("meta.bucket", "lt", 5000)
    queries = clustered(rng, 10, centers)
    lib = Library(
        store, ivf, planner.columns, np.concatenate([v for _, _, v in store.iter_vector_rows()]), queries
    )
    for query in queries:
        ann, exact = planner.search(query, f, 10), Planner(ivf, planner.columns, store).search(query, f, 10)
        assert ann.path == "ann" and exact.path == "exact"
        assert [h.vector_id for h in exact.hits] == brute_force(lib, query, f, 10)
        assert len({h.vector_id for h in ann.hits} & set(brute_force(lib, query, f, 10))) >= 8


def test_a_flat_index_is_searched_exactly_at_any_selectivity(lib: Library, tmp_path: Path) -> None:
    flat = VectorIndex(lib.store, tmp_path, IndexConfig(kind="flat")).build()
    planner = Planner(flat, lib.columns, lib.store, PlannerConfig(exact_max=100))
    for f in (bucket_filter(0.5), bucket_filter(0.001), None):
        for query in lib.queries[:3]:
            result = planner.search(query, f, 10)
            assert result.path == "exact" and [h.vector_id for h in result.hits] == brute_force(
                lib, query, f, 10
            )


def test_one_column_cache_serves_concurrent_planners_while_a_writer_adds_assets(tmp_path: Path) -> None:
    # The HTTP API shares one cache across its pooled sessions. Readers refresh it whenever they
    # like (refresh_seconds=0) while assets land; a refresh between one reader's filter mask and
    # its join to the index rows would misalign the two (IndexError, or wrong assets).
    rng = np.random.default_rng(11)
    centers = rng.standard_normal((8, DIM)).astype(np.float32)
    writer = Store(tmp_path / "a.db")
    add(writer, rng, centers, 0, 300)
    shared = ColumnCache(Store(tmp_path / "a.db"), refresh_seconds=0.0)
    index = VectorIndex(Store(tmp_path / "a.db"), tmp_path, IndexConfig(kind="flat")).build()
    f = And((Cmp("meta.bucket", "lt", BUCKETS // 2), Cmp("meta.region", "eq", "DE")))
    errors: list[str] = []
    checked = [0]
    done = threading.Event()

    def reader(seed: int) -> None:
        store = Store(tmp_path / "a.db", readonly=True)
        planner = Planner(index, shared, store, PlannerConfig(refresh_seconds=0.0))
        queries = clustered(np.random.default_rng(seed), 50, centers)
        try:
            while not done.is_set():
                for query in queries[:10]:
                    hits = planner.search(query, f, 10, per_asset=True).hits
                    ids = [h.asset_id for h in hits]
                    passing = set(store.matching_asset_ids(*compile_filter(f), ids=ids))
                    assert set(ids) <= passing and len(ids) == len(set(ids)), ids
                    checked[0] += 1
        except Exception as exc:  # reported below, with its type
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            store.close()

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for start in range(300, 1500, 60):  # batches land while the readers search
        add(writer, rng, centers, start, 60)
    done.set()
    for thread in threads:
        thread.join(60)

    assert errors == [] and checked[0] >= 8
    shared.refresh(force=True)
    assert shared.rows == 1500  # every asset, each once
