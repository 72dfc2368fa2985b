"""``import_vectors``: Parquet and clip-retrieval embeddings into a library, and back out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assetlens.search.catalog.parquet_export import export_parquet
from assetlens.search.catalog.vector_import import VectorImportError, import_vectors
from assetlens.search.errors import ModelMismatchError
from assetlens.search.store import Store, Tag

DIM = 16


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def library(path: Path) -> Store:
    """Two stills and a video of three frames, with meta, a date and tags of two sources."""
    store = Store(path)
    rng = np.random.default_rng(0)
    with store.transaction():
        for i, (uri, frames) in enumerate([("/lib/a b.jpg", 1), ("/lib/ünï.png", 1), ("/lib/clip.mp4", 3)]):
            aid = store.upsert_asset({
                "uri": uri, "kind": "video" if frames > 1 else "image", "size": 1, "mtime": 0.0,
                "status": "ok", "created": f"2024-0{i + 1}-01T00:00:00Z",
                "meta": {"campaign": f"c{i}", "region": ["DE", "AT"], "rank": i},
            })  # fmt: skip
            times = [None] if frames == 1 else [0.0, 2.5, 5.0]
            store.replace_vectors(aid, "m@1", unit(rng, frames), times)
            store.replace_tags(aid, "clip", [Tag("shoe", 0.31, "clip", "m@1", times[-1])])
            store.replace_tags(aid, "user", [Tag(f"approved {i}", 1.0, "user")])
    return store


def snapshot(store: Store) -> dict[str, object]:
    out: dict[str, object] = {}
    for aid, uri in store.uris():
        vectors, times = store.vectors_of(aid)
        asset = store.asset(aid)
        tags = sorted((t.tag, t.score, t.source, t.model, t.t) for t in store.tags_of([aid])[aid])
        out[uri] = (asset.kind, asset.meta, asset.created, times, vectors.round(4).tolist(), tags)
    return out


def test_export_then_import_gives_the_same_vectors_meta_and_tags(tmp_path: Path) -> None:
    source = library(tmp_path / "a.db")
    assert export_parquet(source, tmp_path / "out.parquet") == 5

    target = Store(tmp_path / "b.db")
    report = import_vectors(target, [tmp_path / "out.parquet"])

    assert (report.added, report.updated, report.failed, report.assets_added) == (5, 0, 0, 3)
    assert report.model == "m@1" and target.model_id == "m@1" and report.dim == DIM
    assert snapshot(target) == snapshot(source)
    stored = {bytes(r[0]) for r in target.db.execute("SELECT vector FROM vectors")}
    assert stored == {bytes(r[0]) for r in source.db.execute("SELECT vector FROM vectors")}  # bit for bit

    again = import_vectors(target, [tmp_path / "out.parquet"])
    assert (again.added, again.updated, again.unchanged, again.failed) == (0, 0, 5, 0)
    assert snapshot(target) == snapshot(source) and target.vector_epoch == 0  # nothing replaced


def write(path: Path, columns: dict[str, pa.Array], model: str | None = None) -> Path:
    table = pa.table(columns)
    if model is not None:
        table = table.replace_schema_metadata({"assetlens.model": model})
    pq.write_table(table, path)
    return path


def test_bad_rows_are_reported_with_their_row_numbers_and_the_good_rows_land(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    good = unit(rng, 3).tolist()
    nan = good[0][:]
    nan[3] = float("nan")
    embeddings = [good[0], [0.1] * (DIM + 2), nan, [0.0] * DIM, good[1], None, good[2], good[2], good[2],
                  good[1], good[1]]  # fmt: skip
    uris = ["/ok/1.jpg", "/bad/dim.jpg", "/bad/nan.jpg", "/bad/zero.jpg", None, "/bad/none.jpg",
            "/bad/meta.jpg", "/bad/t.mp4", "/ok/2.jpg", "/bad/meta-nan.jpg", "/bad/meta-inf.jpg"]  # fmt: skip
    # Python's JSON reader takes NaN and Infinity; JSON and SQLite do not.
    metas = [None, None, None, None, None, None, "[1, 2]", None, '{"campaign": "spring"}',
             '{"score": NaN}', '{"x": [1, -Infinity]}']  # fmt: skip
    times = [None, None, None, None, None, None, None, -1.0, None, None, None]
    path = write(tmp_path / "bad.parquet", {
        "uri": pa.array(uris), "embedding": pa.array(embeddings, pa.list_(pa.float32())),
        "meta": pa.array(metas), "t": pa.array(times, pa.float64()),
    })  # fmt: skip
    store = Store(tmp_path / "a.db")

    report = import_vectors(store, [path], "m@1", batch_rows=4)

    reasons = {f["row"]: f["reason"] for f in report.failures}
    assert (report.added, report.failed, report.rows) == (2, 9, 11)
    assert "wrong dimension 18" in reasons[1] and "NaN" in reasons[2] and "zero vector" in reasons[3]
    assert reasons[4] == "missing uri" and reasons[5] == "missing embedding"
    assert "meta must be a JSON object" in reasons[6] and "t must be seconds" in reasons[7]
    assert "meta holds NaN" in reasons[9] and "meta holds -Infinity" in reasons[10]
    assert sorted(uri for _, uri in store.uris()) == ["/ok/1.jpg", "/ok/2.jpg"]
    assert store.asset(store.asset_ids_for_uris(["/ok/2.jpg"])["/ok/2.jpg"]).meta == {"campaign": "spring"}
    recorded = store.failures(report.job_id)
    assert len(recorded) == 9 and all(f["stage"] == "import" for f in recorded)
    assert any(f["uri"] == f"{path}#row=4" and "row 4: missing uri" in f["reason"] for f in recorded)
    vectors, _ = store.vectors_of(store.asset_ids_for_uris(["/ok/1.jpg"])["/ok/1.jpg"])
    np.testing.assert_allclose(vectors[0], good[0], atol=1e-3)  # normalised, float16


def test_vectors_of_any_scale_are_stored_as_their_direction(tmp_path: Path) -> None:
    # Squares of 1e30 overflow float32 and squares of 1e-30 underflow it: such vectors are not
    # zero vectors, and their direction is what a search compares.
    direction = unit(np.random.default_rng(4), 1)[0].astype(np.float64)
    scales = {"/huge.jpg": 1e30, "/tiny.jpg": 1e-30, "/plain.jpg": 3.0}
    path = write(tmp_path / "scales.parquet", {
        "uri": pa.array(list(scales)),
        "embedding": pa.array([(direction * s).tolist() for s in scales.values()], pa.list_(pa.float64())),
    })  # fmt: skip
    store = Store(tmp_path / "a.db")

    report = import_vectors(store, [path], "m@1")

    assert (report.added, report.failed) == (3, 0)
    for uri, aid in store.asset_ids_for_uris(list(scales)).items():
        vectors, _ = store.vectors_of(aid)
        np.testing.assert_allclose(vectors[0], direction, atol=1e-3, err_msg=uri)


def test_a_batch_of_many_statements_lands_every_row_with_its_own_vector(tmp_path: Path) -> None:
    # A batch is written a thousand rows per INSERT: 2,345 rows make three, the last one partial.
    vectors = unit(np.random.default_rng(5), 2345)
    uris = [f"/many/{i:05d}.jpg" for i in range(len(vectors))]
    path = write(tmp_path / "many.parquet", {
        "uri": pa.array(uris), "embedding": pa.array(vectors.tolist(), pa.list_(pa.float32())),
    })  # fmt: skip
    store = Store(tmp_path / "a.db")

    report = import_vectors(store, [path], "m@1", batch_rows=2345)

    assert (report.added, report.assets_added, store.count_vectors()) == (2345, 2345, 2345)
    ids = store.asset_ids_for_uris(uris)
    for i in (0, 999, 1000, 1999, 2000, 2344):
        stored, _ = store.vectors_of(ids[uris[i]])
        np.testing.assert_allclose(stored[0], vectors[i], atol=1e-3)


def test_a_row_of_the_librarys_dimension_lands_in_a_batch_of_mostly_other_lengths(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    store = Store(tmp_path / "a.db")
    first = write(tmp_path / "first.parquet", {
        "uri": pa.array(["/first.jpg"]), "embedding": pa.array(unit(rng, 1).tolist(), pa.list_(pa.float32())),
    })  # fmt: skip
    import_vectors(store, [first], "m@1")
    good = unit(rng, 1)[0]
    wide = [0.5] * (DIM + 2)
    mixed = write(tmp_path / "mixed.parquet", {
        "uri": pa.array(["/wide/1.jpg", "/wide/2.jpg", "/good.jpg", "/wide/3.jpg", "/empty.jpg"]),
        "embedding": pa.array([wide, wide, good.tolist(), wide, []], pa.list_(pa.float32())),
    })  # fmt: skip

    report = import_vectors(store, [mixed])

    reasons = {f["uri"]: f["reason"] for f in report.failures}
    assert (report.added, report.failed) == (1, 4)
    assert "wrong dimension 18" in reasons["/wide/1.jpg"] and "wrong dimension 0" in reasons["/empty.jpg"]
    stored, _ = store.vectors_of(store.asset_ids_for_uris(["/good.jpg"])["/good.jpg"])
    np.testing.assert_allclose(stored[0], good, atol=1e-3)  # its own vector, not the zeros of a misread


def test_a_file_of_empty_embeddings_imports_nothing_and_says_why(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.parquet", {
        "uri": pa.array(["/a.jpg", "/b.jpg"]), "embedding": pa.array([[], None], pa.list_(pa.float32())),
    })  # fmt: skip
    store = Store(tmp_path / "a.db")

    report = import_vectors(store, [path], "m@1")

    reasons = [f["reason"] for f in report.failures]
    assert (report.added, report.failed) == (0, 2) and store.count_vectors() == 0
    assert reasons == ["zero vector (it has no direction to compare)", "missing embedding"]


def test_tags_without_a_finite_score_or_time_fail_their_row_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    tags = [
        [{"tag": "sneaker", "score": float("nan")}],
        [{"tag": "boot", "score": 0.4, "t": float("inf")}],
        [{"tag": "sandal", "score": 0.7, "t": 1.5}],
    ]
    path = write(tmp_path / "tags.parquet", {
        "uri": pa.array(["/bad/nan.jpg", "/bad/inf.mp4", "/ok/sandal.mp4"]),
        "embedding": pa.array(unit(rng, 3).tolist(), pa.list_(pa.float32())), "tags": pa.array(tags),
    })  # fmt: skip
    store = Store(tmp_path / "a.db")

    report = import_vectors(store, [path], "m@1")

    reasons = {f["row"]: f["reason"] for f in report.failures}
    assert (report.added, report.failed) == (1, 2)
    assert "finite score" in reasons[0] and "t must be seconds" in reasons[1]
    [(uri, tag, score, t)] = store.db.execute(
        "SELECT a.uri, t.tag, t.score, t.t FROM tags t JOIN assets a ON a.id = t.asset_id"
    ).fetchall()
    assert (uri, tag, score, t) == ("/ok/sandal.mp4", "sandal", 0.7, 1.5)


def test_an_interrupted_import_keeps_its_batches_and_the_next_run_adds_the_rest(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    uris = [f"/shoot/{i}.jpg" for i in range(10)]
    path = write(tmp_path / "ten.parquet", {
        "uri": pa.array(uris), "embedding": pa.array(unit(rng, 10).tolist(), pa.list_(pa.float32())),
    })  # fmt: skip
    store = Store(tmp_path / "a.db")

    def ctrl_c_after_two_batches(done: int, total: int) -> None:
        if done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_vectors(store, [path], "m@1", batch_rows=3, progress=ctrl_c_after_two_batches)
    job = store.last_job()
    assert job is not None and job["status"] == "interrupted"
    assert store.job(job["id"])["counts"]["added"] == len(store.uris()) == 6  # type: ignore[index]

    again = import_vectors(store, [path], "m@1", batch_rows=3)
    assert (again.added, again.unchanged) == (4, 6) and sorted(u for _, u in store.uris()) == sorted(uris)


def test_the_model_is_adopted_once_and_another_is_refused_naming_both(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    columns = {
        "uri": pa.array(["/a.jpg"]),
        "embedding": pa.array(unit(rng, 1).tolist(), pa.list_(pa.float32())),
    }
    path = write(tmp_path / "a.parquet", columns, model="ViT-B-32@openai")
    store = Store(tmp_path / "a.db")
    with pytest.raises(VectorImportError, match="--model"):
        import_vectors(store, [write(tmp_path / "b.parquet", columns)])

    import_vectors(store, [path])

    assert store.model_id == "ViT-B-32@openai"
    with pytest.raises(ModelMismatchError, match=r"ViT-L-14.*ViT-B-32@openai"):
        import_vectors(store, [write(tmp_path / "c.parquet", columns)], "ViT-L-14")
    with pytest.raises(ModelMismatchError, match="ViT-B-32@openai"):
        import_vectors(store, [path], "other@1")  # the file's own model disagrees with --model
    assert store.count_vectors() == 1


def test_a_changed_row_updates_its_vector_and_meta(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    first, second = unit(rng, 2)
    store = Store(tmp_path / "a.db")

    def rows(vector: np.ndarray, meta: str) -> Path:
        return write(tmp_path / "x.parquet", {
            "uri": pa.array(["/v.mp4", "/v.mp4"]), "t": pa.array([0.0, 1.0]),
            "embedding": pa.array([first.tolist(), vector.tolist()], pa.list_(pa.float32())),
            "meta": pa.array([meta, None]),
        })  # fmt: skip

    import_vectors(store, [rows(first, '{"a": 1}')], "m@1")
    report = import_vectors(store, [rows(second, '{"b": 2}')], "m@1")

    assert (report.added, report.updated, report.unchanged) == (0, 2, 0)
    aid = store.asset_ids_for_uris(["/v.mp4"])["/v.mp4"]
    vectors, times = store.vectors_of(aid)
    assert times == [0.0, 1.0] and store.asset(aid).kind == "video"
    np.testing.assert_allclose(vectors[1], second, atol=1e-3)
    assert store.asset(aid).meta == {"a": 1, "b": 2}


def test_a_clip_retrieval_output_folder_imports_with_captions(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    folder = tmp_path / "clip retrieval out"
    (folder / "img_emb").mkdir(parents=True)
    (folder / "metadata").mkdir()
    for shard, count in ((0, 5), (1, 3)):
        np.save(folder / "img_emb" / f"img_emb_{shard}.npy", unit(rng, count).astype(np.float16))
        pq.write_table(pa.table({
            "image_path": [f"/shard{shard}/{i}.jpg" for i in range(count)],
            "caption": [f"photo {shard}-{i}" for i in range(count)],
        }), folder / "metadata" / f"metadata_{shard}.parquet")  # fmt: skip
    store = Store(tmp_path / "a.db")
    progress: list[tuple[int, int]] = []

    report = import_vectors(
        store, [folder], "ViT-B-32@openai", batch_rows=2, progress=lambda d, t: progress.append((d, t))
    )

    assert (report.added, report.failed) == (8, 0) and progress[-1] == (8, 8)
    aid = store.asset_ids_for_uris(["/shard1/2.jpg"])["/shard1/2.jpg"]
    assert store.asset(aid).meta == {"caption": "photo 1-2"} and store.asset(aid).kind == "image"
    expected = np.load(folder / "img_emb" / "img_emb_1.npy")[2].astype(np.float32)
    np.testing.assert_allclose(store.vectors_of(aid)[0][0], expected / np.linalg.norm(expected), atol=1e-3)


def test_unreadable_inputs_are_refused_whole(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(VectorImportError, match="not a readable Parquet file"):
        import_vectors(store, [tmp_path / "junk.parquet"], "m@1")
    with pytest.raises(VectorImportError, match="no 'embedding' column"):
        import_vectors(store, [write(tmp_path / "u.parquet", {"uri": pa.array(["/a.jpg"])})], "m@1")
    with pytest.raises(VectorImportError, match="no such file"):
        import_vectors(store, [tmp_path / "missing.parquet"], "m@1")
    assert store.count_vectors() == 0
