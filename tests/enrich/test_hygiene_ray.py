"""The hash and learned-tag stages on a Ray cluster: the same hashes, tags and groups as locally."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from duplicate_set import VARIANTS, real_photos
from helpers import PHOTOS, ingester_for, open_library

from assetlens.enrich.hash_pass import fill_hashes
from assetlens.enrich.pipeline import IngestOptions
from assetlens.search import learned
from assetlens.search.library import LibraryCore

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _library(data: Path, later: Path, engine: str) -> LibraryCore:
    """The sample photos ingested here, a tag learned, then ``later`` ingested by ``engine``."""
    lib = open_library(data)
    ingester_for(lib).ingest([PHOTOS])
    positives = [lib.store.asset_by_uri(str(PHOTOS / f"{n}.jpg")).id for n in ("cat", "coffee", "clock")]  # type: ignore[union-attr]
    learned.learn(lib.store, "kitchen", positives)
    ingester_for(lib).ingest([later], IngestOptions(engine=engine, batch_size=4))  # type: ignore[arg-type]
    return lib


def test_ray_ingest_hashes_tags_and_groups_as_the_local_one(cluster: None, tmp_path: Path) -> None:
    later = tmp_path / "later"
    later.mkdir()
    for edit in ("half", "watermark", "crop90-centre"):
        VARIANTS[edit](real_photos()["cat"]).save(later / f"cat {edit}.jpg", quality=92)
    shutil.copy(PHOTOS / "rocket.jpg", later / "rocket again.jpg")
    local, remote = _library(tmp_path / "local", later, "local"), _library(tmp_path / "ray", later, "ray")
    try:
        for lib in (local, remote):
            assert len(lib.store.duplicates.hashes_by_asset(lib.store.embedded_asset_ids())) == 12
        names = {a: Path(u).name for a, u in local.store.uris()}
        remote_ids = {Path(u).name: a for a, u in remote.store.uris()}
        here = local.store.duplicates.hashes_by_asset(list(names))
        there = remote.store.duplicates.hashes_by_asset(list(remote_ids.values()))
        for asset_id, name in names.items():
            assert np.array_equal(here[asset_id], there[remote_ids[name]]), name

        def tagged(lib: LibraryCore) -> set[str]:
            rows = lib.store.db.execute(
                "SELECT a.uri FROM tags t JOIN assets a ON a.id = t.asset_id WHERE t.source = 'learned'"
            )
            return {Path(u).name for (u,) in rows}

        assert tagged(local) == tagged(remote) and {"cat half.jpg", "cat watermark.jpg"} <= tagged(remote)

        def groups(lib: LibraryCore) -> list[set[str]]:
            return sorted(
                ({Path(m.uri).name for m in g.members} for g in lib.duplicates.groups()), key=sorted
            )

        assert groups(local) == groups(remote)
        assert {"cat.jpg", "cat half.jpg", "cat watermark.jpg", "cat crop90-centre.jpg"} in groups(remote)
        assert {"rocket.jpg", "rocket again.jpg"} in groups(remote)
    finally:
        local.close()
        remote.close()


def test_hashes_for_older_assets_are_the_same_on_ray_as_locally(cluster: None, tmp_path: Path) -> None:
    # A library stored before hashes existed: `duplicates` reads its files again through the
    # stage seam, so the pass runs on either executor with the same result.
    lib = open_library(tmp_path / "data")
    try:
        ingester_for(lib).ingest([PHOTOS])
        store = lib.store
        assets = list(store.assets(store.embedded_asset_ids()).values())

        def hashed_by(engine: str) -> dict[int, np.ndarray]:
            with store.transaction():
                store.db.execute("DELETE FROM frame_hashes")
            filled = fill_hashes(store, assets, IngestOptions(engine=engine, batch_size=4))  # type: ignore[arg-type]
            assert filled.hashed == len(assets) and filled.unreadable == []
            return store.duplicates.hashes_by_asset([a.id for a in assets])

        here, there = hashed_by("local"), hashed_by("ray")
        assert here.keys() == there.keys() == {a.id for a in assets}
        assert all(np.array_equal(here[a], there[a]) for a in here)
        assert store.last_job()["kind"] == "hash"  # type: ignore[index]
    finally:
        lib.close()
