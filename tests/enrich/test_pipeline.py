"""Ingest end to end on real files: real SQLite, real FAISS, the real tiny CLIP model."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ingester_for, open_library
from media import SAMPLE_RATE, write_wav
from PIL import Image

from assetlens.enrich.pipeline import IngestOptions, default_batch_size, default_workers, reembed_library
from assetlens.enrich.tagging import Tagger, retag_library
from assetlens.models.errors import TranscriberError
from assetlens.models.registry import register_tiny_config
from assetlens.models.settings import WhisperSettings
from assetlens.models.vocab import load_vocabulary
from assetlens.search.errors import ModelMismatchError
from assetlens.search.library import LibraryCore
from assetlens.search.query_types import open_query_image

N_PHOTOS = 8


def vector_ids(lib: LibraryCore) -> dict[str, list[int]]:
    rows = lib.store.db.execute(
        "SELECT a.uri, v.id FROM vectors v JOIN assets a ON a.id = v.asset_id ORDER BY v.id"
    )
    out: dict[str, list[int]] = {}
    for uri, vid in rows:
        out.setdefault(Path(uri).name, []).append(vid)
    return out


def test_ingest_embeds_tags_and_indexes_every_photo(lib: LibraryCore, photos: Path) -> None:
    report = ingester_for(lib).ingest([photos])

    assert (report.added, report.failed, report.skipped) == (N_PHOTOS, 0, 0)
    assert lib.store.count_assets() == {"image": N_PHOTOS, "failed": 0}
    assert lib.store.count_vectors() == N_PHOTOS
    cat = lib.store.asset_by_uri(str(photos / "cat.jpg"))
    assert cat is not None and cat.kind == "image" and cat.mime == "image/jpeg"
    assert (cat.width, cat.height) == Image.open(photos / "cat.jpg").size
    tags = lib.store.tags_of([cat.id])[cat.id]
    assert len(tags) >= 1 and all(t.source == "clip" for t in tags)
    assert [t.score for t in tags] == sorted((t.score for t in tags), reverse=True)
    assert lib.index.status()["vectors"] == N_PHOTOS and lib.index.status()["in_step"]
    assert lib.store.last_job()["status"] == "done"  # type: ignore[index]


def test_batch_size_and_decode_threads_fit_the_device(lib: LibraryCore, photos: Path) -> None:
    ingester_for(lib).ingest([photos])
    args = json.loads(lib.store.last_job()["args"])  # type: ignore[index]
    cores = os.cpu_count() or 2
    # The tiny model runs on the CPU: batches of 32, at most 4 decode threads beside the network.
    assert (args["batch_size"], args["workers"]) == (32, min(4, cores))
    explicit = ingester_for(lib).ingest([photos], IngestOptions(batch_size=5, workers=1))
    assert explicit.skipped == N_PHOTOS
    assert json.loads(lib.store.last_job()["args"])["batch_size"] == 5  # type: ignore[index]
    # With CUDA decoding bounds a run: every core decodes, and the GPU takes bigger batches.
    assert (default_workers("cuda"), default_batch_size("cuda")) == (cores, 128)


def test_rerun_does_no_work_and_touch_keeps_vectors(lib: LibraryCore, photos: Path) -> None:
    ingester = ingester_for(lib)
    ingester.ingest([photos])
    before = vector_ids(lib)

    again = ingester.ingest([photos])
    os.utime(photos / "cat.jpg", (1_000_000_000, 1_000_000_000))  # same content, new mtime
    touched = ingester.ingest([photos])

    assert (again.added, again.updated, again.skipped) == (0, 0, N_PHOTOS)
    assert (touched.added, touched.updated, touched.skipped) == (0, 0, N_PHOTOS)
    assert vector_ids(lib) == before


def test_changed_content_is_re_embedded_in_place(lib: LibraryCore, photos: Path) -> None:
    ingester = ingester_for(lib)
    ingester.ingest([photos])
    cat = lib.store.asset_by_uri(str(photos / "cat.jpg"))
    assert cat is not None
    lib.store.update_asset(cat.id, {"meta": {"campaign": "spring"}})

    Image.open(photos / "cat.jpg").rotate(90).save(photos / "cat.jpg", quality=90)
    report = ingester.ingest([photos])

    after = lib.store.asset_by_uri(str(photos / "cat.jpg"))
    assert report.updated == 1 and report.skipped == N_PHOTOS - 1
    assert after is not None and after.id == cat.id and after.meta == {"campaign": "spring"}
    assert after.content_hash != cat.content_hash
    assert vector_ids(lib)["cat.jpg"] != [cat.id] and lib.store.count_vectors() == N_PHOTOS


def test_rename_reuses_vectors_without_decoding(lib: LibraryCore, photos: Path) -> None:
    ingester = ingester_for(lib)
    ingester.ingest([photos])
    old = lib.store.asset_by_uri(str(photos / "cat.jpg"))
    old_vectors = vector_ids(lib)["cat.jpg"]
    (photos / "pets").mkdir()
    (photos / "cat.jpg").rename(photos / "pets" / "my cat.jpg")

    report = ingester.ingest([photos])

    moved = lib.store.asset_by_uri(str(photos / "pets" / "my cat.jpg"))
    assert report.renamed == 1 and report.added == 0
    assert moved is not None and old is not None and moved.id == old.id
    assert vector_ids(lib)["my cat.jpg"] == old_vectors  # same rows: nothing re-embedded
    assert lib.store.asset_by_uri(str(photos / "cat.jpg")) is None


def test_exact_duplicate_is_linked_and_shares_vectors(lib: LibraryCore, photos: Path) -> None:
    ingester = ingester_for(lib)
    ingester.ingest([photos])
    shutil.copy(photos / "coffee.jpg", photos / "coffee copy.jpg")

    report = ingester.ingest([photos])

    original = lib.store.asset_by_uri(str(photos / "coffee.jpg"))
    copy = lib.store.asset_by_uri(str(photos / "coffee copy.jpg"))
    assert report.duplicates == 1 and report.added == 1
    assert original is not None and copy is not None and copy.duplicate_of == original.id
    np.testing.assert_array_equal(lib.store.vectors_of(copy.id)[0], lib.store.vectors_of(original.id)[0])
    assert [t.tag for t in lib.store.tags_of([copy.id])[copy.id]] == [
        t.tag for t in lib.store.tags_of([original.id])[original.id]
    ]


def test_duplicates_within_one_run_are_detected(lib: LibraryCore, photos: Path) -> None:
    shutil.copy(photos / "rocket.jpg", photos / "rocket-2.jpg")
    report = ingester_for(lib).ingest([photos])
    copy = lib.store.asset_by_uri(str(photos / "rocket.jpg"))
    assert report.added == N_PHOTOS + 1 and report.duplicates == 1
    assert copy is not None and copy.duplicate_of is not None


def test_prune_removes_assets_whose_files_are_gone(lib: LibraryCore, photos: Path) -> None:
    ingester = ingester_for(lib)
    ingester.ingest([photos])
    gone = lib.store.asset_by_uri(str(photos / "clock.jpg"))
    (photos / "clock.jpg").unlink()

    kept = ingester.ingest([photos])
    assert kept.pruned == 0 and lib.store.count_assets()["image"] == N_PHOTOS
    pruned = ingester.ingest([photos], IngestOptions(prune=True))

    assert pruned.pruned == 1 and gone is not None
    assert lib.store.asset_by_uri(str(photos / "clock.jpg")) is None
    assert lib.store.count_vectors() == N_PHOTOS - 1
    assert all(r.asset_id != gone.id for r in lib.engine.search_text("a clock", 20))


def test_bad_files_land_in_failures_and_the_rest_ingest(lib: LibraryCore, photos: Path) -> None:
    good = (photos / "coffee.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (photos / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "notes.jpg").write_text("this is not a picture")
    (photos / "readme.txt").write_text("ignored: not a media file")

    report = ingester_for(lib).ingest([photos])

    assert report.added == N_PHOTOS and report.failed == 4
    failures = {Path(f["uri"]).name: f for f in lib.store.failures(report.job_id)}
    assert set(failures) == {"truncated.jpg", "corrupt.png", "empty.jpg", "notes.jpg"}
    assert failures["truncated.jpg"]["stage"] == "decode"
    assert failures["empty.jpg"]["stage"] == "scan" and "empty" in failures["empty.jpg"]["reason"]
    assert all(f["reason"] for f in failures.values())
    assert lib.store.count_assets() == {"image": N_PHOTOS, "failed": 4}
    assert ingester_for(lib).ingest([photos]).skipped == N_PHOTOS + 4  # nothing retried


def test_file_that_becomes_corrupt_loses_its_vectors_only(lib: LibraryCore, photos: Path) -> None:
    ingester = ingester_for(lib)
    ingester.ingest([photos])
    (photos / "cat.jpg").write_bytes((photos / "cat.jpg").read_bytes()[:500])

    report = ingester.ingest([photos])

    cat = lib.store.asset_by_uri(str(photos / "cat.jpg"))
    assert report.failed == 1 and cat is not None and cat.status == "failed"
    assert "cat.jpg" not in vector_ids(lib) and lib.store.count_vectors() == N_PHOTOS - 1
    assert lib.store.tags_of([cat.id])[cat.id] == []


def test_unicode_spaces_and_include_exclude_hidden(lib: LibraryCore, photos: Path) -> None:
    odd = photos / "ünï cødé" / "photo 1 ✓.jpg"
    odd.parent.mkdir()
    shutil.copy(photos / "cat.jpg", odd)
    (photos / ".cache").mkdir()
    Image.new("RGB", (64, 64), "red").save(photos / ".cache" / "hidden.png")
    (photos / "raw").mkdir()
    Image.new("RGB", (64, 64), "blue").save(photos / "raw" / "skip.png")

    report = ingester_for(lib).ingest([photos], IngestOptions(exclude=("raw/**",)))

    assert report.added == N_PHOTOS + 1
    assert lib.store.asset_by_uri(str(odd)) is not None
    assert lib.store.asset_by_uri(str(photos / "raw" / "skip.png")) is None
    only_png = ingester_for(lib).ingest([photos], IngestOptions(include=("*.png",), include_hidden=True))
    assert only_png.added == 2 and only_png.skipped == 0  # the JPEGs are not even looked at
    assert lib.store.asset_by_uri(str(photos / ".cache" / "hidden.png")) is not None


def test_mixing_models_is_refused_and_reembed_switches(tmp_path: Path, photos: Path) -> None:
    data = tmp_path / "data"
    tiny = open_library(data)
    ingester_for(tiny).ingest([photos])
    tiny.close()
    # Another model: the tiny architecture with other weights, from a checkpoint file.
    register_tiny_config()
    import open_clip

    with torch.random.fork_rng():
        torch.manual_seed(7)
        other = open_clip.create_model("assetlens-tiny")
    checkpoint = tmp_path / "other weights.pt"
    torch.save(other.state_dict(), checkpoint)
    lib = open_library(data, clip_checkpoint=checkpoint)

    with pytest.raises(ModelMismatchError, match="reembed"):
        ingester_for(lib).ingest([photos])
    assert lib.store.count_vectors() == N_PHOTOS  # nothing touched

    report = reembed_library(ingester_for(lib))

    assert report.added + report.updated == N_PHOTOS and report.failed == 0
    models = {r[0] for r in lib.store.db.execute("SELECT DISTINCT model FROM vectors")}
    assert models == {lib.encoder.model_id} and "@file:" in lib.encoder.model_id
    assert lib.store.count_vectors() == N_PHOTOS
    lib.close()


def test_retag_uses_stored_vectors_and_reads_no_file(lib: LibraryCore, photos: Path, tmp_path: Path) -> None:
    ingester_for(lib).ingest([photos])
    shutil.rmtree(photos)  # proof that re-tagging opens no media file: there are none left
    vocab = tmp_path / "brand.txt"
    vocab.write_text("[products]\nzorblax widget = zorblax > gadget\n", encoding="utf-8")
    tagger = Tagger(lib.encoder, load_vocabulary(vocab, include_default=False))
    tagger.min_z = -10.0  # keep every tag: the point here is where the scores come from

    count = retag_library(lib.store, tagger)

    assert count == N_PHOTOS
    tags = lib.store.tags_of([a for a, _ in lib.store.uris()])
    assert all({t.tag for t in ts} == {"zorblax widget", "gadget"} for ts in tags.values())
    asset_id = lib.store.uris()[0][0]
    vector = lib.store.vectors_of(asset_id)[0][0]
    expected = float(vector @ tagger.label_embeddings()[0])
    assert {t.tag: t.score for t in tags[asset_id]}["zorblax widget"] == pytest.approx(expected, abs=1e-5)


def test_similar_finds_the_original_of_a_resized_cropped_copy(
    lib: LibraryCore, photos: Path, tmp_path: Path
) -> None:
    ingester_for(lib).ingest([photos])
    for name in ("cat.jpg", "rocket.jpg", "astronaut.jpg"):
        with Image.open(photos / name) as im:
            w, h = im.size
            copy = im.crop((w // 10, h // 10, w - w // 10, h - h // 10)).resize((w // 2, h // 2))
        copy.save(tmp_path / f"query-{name}", quality=80)

        results = lib.engine.similar_to_image(open_query_image(tmp_path / f"query-{name}"), 3)

        assert Path(results[0].uri).name == name


def test_similar_to_asset_excludes_itself_and_text_scores_are_cosines(lib: LibraryCore, photos: Path) -> None:
    ingester_for(lib).ingest([photos])
    cat = lib.store.asset_by_uri(str(photos / "cat.jpg"))
    assert cat is not None

    similar = lib.engine.similar_to_asset(cat.id, 20)
    results = lib.engine.search_text("a cat sitting on a sofa", 20)

    assert cat.id not in {r.asset_id for r in similar} and len(similar) == N_PHOTOS - 1
    query = lib.encoder.encode_texts(["a cat sitting on a sofa"])[0]
    for r in results:
        assert r.score == pytest.approx(float(lib.store.vectors_of(r.asset_id)[0][0] @ query), abs=1e-5)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_store_survives_sqlite_check_after_ingest(lib: LibraryCore, photos: Path) -> None:
    ingester_for(lib).ingest([photos])
    db = sqlite3.connect(lib.settings.db_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    orphans = db.execute("SELECT count(*) FROM vectors WHERE asset_id NOT IN (SELECT id FROM assets)")
    assert orphans.fetchone()[0] == 0


def test_hostile_names_and_extreme_strips_do_not_stop_a_run(lib: LibraryCore, photos: Path) -> None:
    # A name that is not UTF-8 once crashed the whole run (SQLite cannot bind it), and a
    # 1 x 20 000 strip took 13 s and 5 GB to scale before its centre crop.
    Path(os.fsdecode(bytes(photos) + b"/caf\xe9.png")).write_bytes((photos / "cat.jpg").read_bytes())
    Image.new("RGB", (1, 20_000), "red").save(photos / "strip.png")
    Image.new("RGB", (20_000, 1), "blue").save(photos / "band.png")

    report = ingester_for(lib).ingest([photos])
    again = ingester_for(lib).ingest([photos])

    assert (report.added, report.failed) == (N_PHOTOS + 2, 1)
    failed = lib.store.asset_by_uri(f"{photos}/caf\\xe9.png")
    assert failed is not None and failed.error is not None and "not valid UTF-8" in failed.error
    for name in ("strip.png", "band.png"):
        asset = lib.store.asset_by_uri(str(photos / name))
        assert asset is not None and asset.status == "ok" and lib.store.has_vectors(asset.id)
    assert (again.added, again.updated, again.failed, again.skipped) == (0, 0, 0, N_PHOTOS + 3)


def test_a_model_stage_that_fails_stops_the_run_and_keeps_finished_batches(
    lib: LibraryCore, photos: Path
) -> None:
    # A model directory that looks right passes the check at open(); its weights only load on
    # the first file with sound, in the transcription stage's own thread, after the photos'
    # batches are written: the load error must reach the caller and end every thread.
    write_wav(photos / "zz voice.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    broken = photos.parent / "broken whisper"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"not a CTranslate2 model")
    ingester = ingester_for(lib)
    ingester.transcription = WhisperSettings(whisper_model=str(broken))
    threads = threading.active_count()

    with pytest.raises(TranscriberError, match="broken whisper"):
        ingester.ingest([photos], IngestOptions(batch_size=1, workers=1))

    assert threading.active_count() == threads
    (job,) = lib.store.db.execute("SELECT status FROM jobs").fetchall()
    assert job[0] == "failed"
    assert len(vector_ids(lib)) == N_PHOTOS  # every batch before the failing one is stored


def test_ctrl_c_inside_a_batch_rolls_it_back_and_the_job_counts_only_what_is_stored(
    lib: LibraryCore, photos: Path
) -> None:
    # The progress callback runs inside the batch's transaction: a Ctrl-C there (a terminal's
    # progress bar being drawn) undoes that batch, so the job must not count its file either.
    calls = 0

    def progress(_: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingester_for(lib).ingest([photos], IngestOptions(batch_size=1, workers=1, progress=progress))

    job = lib.store.job(lib.store.last_job()["id"])  # type: ignore[index]
    stored = lib.store.count_assets()["image"]
    assert job is not None and job["status"] == "interrupted"
    assert 0 < stored < N_PHOTOS and job["counts"]["added"] == stored


class _CtrlCDuringCommit:
    """The library's SQLite connection, with a Ctrl-C landing during the COMMIT that stores the
    second photo. Python raises a signal's KeyboardInterrupt only once the C call it landed in
    returns, so it surfaces just after that COMMIT: this makes the signal's timing exact."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db, self.fired = db, False

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        cursor = self._db.execute(sql, *args)
        stored = sql == "COMMIT" and self._db.execute("SELECT count(*) FROM assets").fetchone()[0]
        if stored and stored >= 2 and not self.fired:
            self.fired = True
            raise KeyboardInterrupt
        return cursor

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def test_ctrl_c_during_a_commit_keeps_the_batch_and_the_job_counts_it(lib: LibraryCore, photos: Path) -> None:
    real = lib.store.db
    lib.store.db = _CtrlCDuringCommit(real)  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            ingester_for(lib).ingest([photos], IngestOptions(batch_size=1, workers=1))
    finally:
        fired, lib.store.db = lib.store.db.fired, real  # type: ignore[attr-defined]

    job = lib.store.job(lib.store.last_job()["id"])  # type: ignore[index]
    assert fired and job is not None and job["status"] == "interrupted"
    assert lib.store.count_assets()["image"] == 2 == job["counts"]["added"]
