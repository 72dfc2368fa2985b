"""OCR in the pipeline: the ``ocr`` stage of ingest and ``assetlens ocr``, end to end.

Real files (the test photos, a banner drawn on a photo, an H.264 clip with a title slide), the
real tiny CLIP, the real RapidOCR models, real SQLite libraries, real subprocesses.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import PHOTOS
from ocr_support import SLIDE_END, SLIDE_START, SLIDE_TEXT, photos, render, slide_video
from PIL import Image

import assetlens
from assetlens.enrich.decode import DEFAULT_MAX_PIXELS
from assetlens.enrich.facade import Library
from assetlens.enrich.scan import scan
from assetlens.enrich.stages import Decode, Embed, Tag
from assetlens.enrich.tagging import Tagger
from assetlens.enrich.text_stages import Ocr
from assetlens.enrich.video import KeyframeOptions
from assetlens.enrich.work import FileWork
from assetlens.enrich.writer import IngestReport, Writer
from assetlens.models.settings import OcrSettings
from assetlens.models.vocab import load_vocabulary

BANNER = "HARVEST MARKET"
PICTURES = 10  # the 8 test photos, the banner and the video
TEXT_FREE = ("astronaut.jpg", "cat.jpg", "coffee.jpg", "rocket.jpg")


def banner(path: Path, text: str = BANNER, long_side: int = 1024) -> Path:
    """A photo with a line of text across it (~6% of its height) in a translucent band."""
    picture = render(photos(("coffee",))["coffee"], text, size=round(long_side / 16), colour=(250, 250, 250),
                     background="band", rng=random.Random(5), long_side=long_side)  # fmt: skip
    picture.image.save(path, quality=92)
    return path


def media_folder(folder: Path) -> Path:
    """The test photos, the banner and a clip whose title slide shows from 3 s to 6 s."""
    shutil.copytree(PHOTOS, folder, ignore=shutil.ignore_patterns("*.txt"))
    banner(folder / "market banner.jpg")
    slide_video(folder / "talk.mp4")
    return folder


def asset_id(lib: Library, path: Path) -> int:
    return lib.find(path).id


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Library, Path, IngestReport]]:
    """One library, ingested with the default OCR mode (``auto``)."""
    root = tmp_path_factory.mktemp("ocr-ingest")
    files = media_folder(root / "files")
    lib = assetlens.open(root / "data", model="tiny")
    report = lib.ingest(files, ocr="auto", transcribe=False)
    yield lib, files, report
    lib.close()


def test_ingest_reads_the_text_of_images_and_of_video_keyframes(ingested) -> None:
    lib, files, report = ingested
    assert report.added == PICTURES and report.failed == 0
    assert report.ocr_read == PICTURES and report.ocr_failed == 0
    (line,) = lib.asset(asset_id(lib, files / "market banner.jpg")).ocr
    assert line.text == BANNER and line.t is None and line.confidence >= 0.9
    (slide,) = lib.asset(asset_id(lib, files / "talk.mp4")).ocr
    assert slide.text == SLIDE_TEXT and SLIDE_START <= slide.t < SLIDE_END
    for name in TEXT_FREE:  # read, and found to hold no text: not read again by `ocr --missing`
        assert lib.asset(asset_id(lib, files / name)).ocr == ()
    assert lib.core.store.ocr.unread() == []
    job = lib.core.store.last_job()
    assert job is not None and json.loads(job["args"])["ocr"] == "auto"


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
def test_search_finds_text_in_an_image_and_starts_a_video_at_its_slide(ingested, mode: str) -> None:
    lib, _, _ = ingested
    top = lib.search("harvest market", mode=mode).results[0]
    assert Path(top.uri).name == "market banner.jpg" and top.explanation["ocr"]["text"] == BANNER
    top = lib.search('"quarterly results"', mode=mode).results[0]
    assert top.kind == "video" and SLIDE_START <= top.t < SLIDE_END
    assert top.explanation["ocr"]["t"] == top.t


def test_the_ocr_filter_matches_text_read_at_ingest(ingested) -> None:
    lib, _, _ = ingested
    compact = lib.search(filter='ocr:"harvest market"', mode="semantic", text="a photo").results
    assert [Path(r.uri).name for r in compact] == ["market banner.jpg"]
    as_json = lib.search(filter={"field": "ocr", "eq": "quarterly"}, text="a slide").results
    assert [Path(r.uri).name for r in as_json] == ["talk.mp4"]


def test_keyframes_are_kept_larger_for_reading_then_dropped(tmp_path: Path) -> None:
    video = slide_video(tmp_path / "talk.mp4")
    (candidate,) = scan([video])
    decode = Decode(224, DEFAULT_MAX_PIXELS, KeyframeOptions(), frozenset(), text_side=360)
    (decoded,) = decode([FileWork(candidate)])
    assert decoded.pixels is not None and decoded.pixels.shape[1:] == (224, 224, 3)
    assert len(decoded.ocr_pictures) == len(decoded.times) == len(decoded.pixels)
    assert all(p.dtype == np.uint8 and min(p.shape[:2]) == 360 for p in decoded.ocr_pictures)
    (not_read,) = decode([FileWork(candidate, todo=decoded.todo - {"ocr"})])
    assert not_read.ocr_pictures == ()  # without OCR the run keeps no extra pictures

    stage = Ocr(OcrSettings(ocr="auto"))
    stage.open()
    (read,) = stage([decoded])
    assert read.ocr_pictures == () and read.ocr_model is not None
    assert [(x.text, SLIDE_START <= x.t < SLIDE_END) for x in read.ocr_lines] == [(SLIDE_TEXT, True)]
    # A Ray worker gets the stage pickled, models loaded or not, and the work record with it.
    worker = pickle.loads(pickle.dumps(stage))
    worker.open()
    (again,) = worker(pickle.loads(pickle.dumps([decoded])))
    assert again.ocr_lines == read.ocr_lines


def test_an_ocr_failure_is_recorded_and_the_asset_stays_searchable(tmp_path: Path) -> None:
    # With `on`, OCR decodes a large image again at its own resolution. A program rewriting the
    # file between the two decodes (here: truncating it) makes that decode fail: the real race,
    # run stage by stage so that it happens every time.
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(PHOTOS / "cat.jpg", files / "cat.jpg")
    path = banner(files / "big banner.jpg", long_side=4000)
    lib = assetlens.open(tmp_path / "data", model="tiny")
    store, encoder = lib.core.store, lib.core.encoder
    store.ensure_model(encoder.model_id)
    report = IngestReport(store.start_job("ingest", {}))
    stages = [
        Embed(encoder.spec, encoder.settings, 32, encoder),
        Tag(Tagger(encoder, load_vocabulary()).scorer()),
        Ocr(OcrSettings(ocr="on")),
    ]
    decode = Decode(encoder.image_size, DEFAULT_MAX_PIXELS, KeyframeOptions(), frozenset(), 360)
    batch = decode([FileWork(c) for c in scan([files])])
    path.write_bytes(path.read_bytes()[:20_000])
    for stage in stages:
        stage.open()
        batch = stage(batch)
    Writer(store, report, encoder.model_id, len(batch)).write(batch)

    assert report.added == 2 and report.failed == 0 and report.ocr_failed == 1 and report.ocr_read == 1
    (failure,) = store.failures(report.job_id)
    assert failure["stage"] == "ocr" and failure["uri"] == str(path)
    assert "truncated" in failure["reason"] or "broken" in failure["reason"]
    asset = lib.find(path)
    assert asset.status == "ok" and store.ocr.unread() == [asset.id]  # `ocr --missing` retries it
    hits = lib.search("big banner", mode="lexical").results
    assert [r.uri for r in hits] == [str(path)] and lib.asset(asset.id).tags
    lib.close()


def test_corrupt_and_huge_images_still_fail_at_decode(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(PHOTOS / "cat.jpg", files / "cat.jpg")
    (files / "cut.jpg").write_bytes((PHOTOS / "rocket.jpg").read_bytes()[:3000])
    (files / "empty.jpg").write_bytes(b"")
    Image.new("1", (12_000, 12_000)).save(files / "huge.png", optimize=True)  # 144 MP > the limit
    with assetlens.open(tmp_path / "data", model="tiny") as lib:
        report = lib.ingest(files, ocr="on")
        failures = {Path(f["uri"]).name: f for f in lib.core.store.failures(report.job_id)}
        assert report.added == 1 and report.failed == 3 and report.ocr_read == 1
        stages = {name: f["stage"] for name, f in failures.items()}
        assert stages == {"cut.jpg": "decode", "empty.jpg": "scan", "huge.png": "decode"}
        assert "too large" in failures["huge.png"]["reason"]
        assert lib.core.store.ocr.counts()["read"] == 1  # the cat alone


def test_a_rename_or_a_copy_reuses_the_text_and_changed_content_forgets_it(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(PHOTOS / "cat.jpg", files / "cat.jpg")
    banner(files / "banner.jpg")
    with assetlens.open(tmp_path / "data", model="tiny") as lib:
        lib.ingest(files, ocr="auto")
        first = lib.find(files / "banner.jpg").id
        (files / "banner.jpg").rename(files / "renamed banner.jpg")
        shutil.copy(files / "renamed banner.jpg", files / "copy.jpg")

        again = lib.ingest(files, ocr="auto")

        assert again.renamed == 1 and again.duplicates == 1 and again.ocr_read == 0
        renamed, copy = lib.find(files / "renamed banner.jpg"), lib.find(files / "copy.jpg")
        assert first in (renamed.id, copy.id)  # one took the old asset over, the other copied it
        assert [x.text for x in lib.asset(copy.id).ocr] == [BANNER]
        assert lib.asset(renamed.id).ocr == lib.asset(copy.id).ocr

        # The same content re-embedded without OCR keeps its text; new content loses it.
        forced = lib.ingest(files, ocr="off", force=True)
        assert forced.updated == 3 and [x.text for x in lib.asset(renamed.id).ocr] == [BANNER]
        banner(files / "copy.jpg", text="FREE DELIVERY")
        lib.ingest(files, ocr="off")
        assert lib.asset(copy.id).ocr == () and lib.core.store.ocr.unread() == [copy.id]
        assert lib.search(filter="ocr:delivery", text="x").results == []


def test_a_later_ingest_reads_unchanged_files_never_read_without_embedding_them(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(PHOTOS / "cat.jpg", files / "cat.jpg")
    banner(files / "banner.jpg")
    with assetlens.open(tmp_path / "data", model="tiny") as lib:
        lib.ingest(files, ocr="off")
        store = lib.core.store
        vectors = {a: store.keyframes_of(a) for a, _ in store.uris()}

        report = lib.ingest(files, ocr="auto")

        assert (report.skipped, report.added, report.updated, report.ocr_read) == (2, 0, 0, 2)
        assert {a: store.keyframes_of(a) for a, _ in store.uris()} == vectors  # same vector rows
        assert [x.text for x in lib.asset(files / "banner.jpg").ocr] == [BANNER]
        assert lib.ingest(files, ocr="auto").ocr_read == 0


def test_ocr_missing_reads_only_unread_assets_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = tmp_path / "files"
    files.mkdir()
    for name in ("cat.jpg", "clock.jpg"):
        shutil.copy(PHOTOS / name, files / name)
    banner(files / "banner.jpg")
    monkeypatch.setenv("ASSETLENS_OCR", "off")  # the setting, with no argument
    with assetlens.open(tmp_path / "data", model="tiny") as lib:
        lib.ingest(files)
        assert lib.core.store.ocr.counts()["read"] == 0
        monkeypatch.delenv("ASSETLENS_OCR")
        extra = banner(files / "sale.jpg", text="Summer Sale")
        lib.ingest(extra, ocr="auto")  # read at ingest: not missing
        sale = lib.find(extra).id
        before = lib.core.store.ocr.read_by(sale)

        report = lib.read_text("missing")

        assert (report.read, report.with_text, report.failed, report.skipped) == (3, 1, 0, 0)
        assert report.mode == "on" and lib.core.store.ocr.read_by(sale) == before
        assert [r.uri for r in lib.search(filter="ocr:harvest", text="x").results] == [
            str(files / "banner.jpg")
        ]
        assert lib.read_text("missing").read == 0
        job = lib.core.store.last_job()
        assert job is not None and job["kind"] == "ocr" and job["status"] == "done"
        # `--all` reads everything again; a file changed since ingest keeps its old text.
        banner(files / "sale.jpg", text="Winter Sale")
        again = lib.read_text("all", mode="auto")
        assert again.read == 3 and again.failed == 1 and again.mode == "auto"
        assert [x.text for x in lib.asset(sale).ocr] == ["Summer Sale"]
        (failure,) = lib.core.store.failures(again.job_id)
        assert failure["stage"] == "ocr" and "changed since it was ingested" in failure["reason"]
        with pytest.raises(assetlens.AssetLensError, match="'auto' or 'on'"):
            lib.read_text("all", mode="off")  # type: ignore[arg-type]
        with pytest.raises(assetlens.AssetLensError, match="no asset"):
            lib.read_text([str(files / "nowhere.jpg")])


# Run `python -m assetlens.enrich ...` and report, at exit, whether it imported the OCR engine.
_IMPORT_PROBE = """
import atexit, json, runpy, sys
atexit.register(lambda: print(json.dumps("rapidocr" in sys.modules), file=sys.stderr))
sys.argv = ["assetlens", *sys.argv[1:]]
runpy.run_module("assetlens.enrich", run_name="__main__")
"""


def test_ocr_off_does_no_ocr_work_and_the_ocr_command_reads_later(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(PHOTOS / "cat.jpg", files / "cat.jpg")
    banner(files / "market banner.jpg")
    env = {**os.environ, "ASSETLENS_CLIP_MODEL": "tiny", "ASSETLENS_DATA_DIR": str(tmp_path / "data")}

    def run(*args: str) -> tuple[dict, bool]:
        done = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, *args, "--json"],
                              env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout), json.loads(done.stderr.splitlines()[-1])

    report, imported = run("ingest", str(files), "--ocr", "off")
    assert report["added"] == 2 and report["ocr_read"] == 0 and imported is False

    report, imported = run("ocr", "--missing")
    assert (report["read"], report["with_text"], report["failed"]) == (2, 1, 0) and imported is True

    report, _ = run("ocr", "--missing")
    assert report["read"] == 0
    report, _ = run("search", "harvest market", "--mode", "lexical")
    assert report["results"][0]["explanation"]["ocr"]["text"] == BANNER
