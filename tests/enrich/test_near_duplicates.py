"""Near-duplicates end to end: a generated set of variants ingested with the real tiny CLIP.

The set (tests/duplicate_set.py): the real sample photos and generated scenes, each with 12 edits
(sizes, 90% crops, JPEG quality 30, brightness +-15%, a text watermark, a combination), plus
another shot of each scene (the camera moved, some objects moved). Every variant must group with
its original, and nothing else may: distinct photos and other shots of one scene stay apart.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from duplicate_set import VARIANTS, generated_scenes, other_shot, real_photos, variants_of

import assetlens
from assetlens.enrich.cli import cli
from assetlens.enrich.phash import ANCHORS, fingerprint, hash_thumbnail
from assetlens.enrich.stages import Hash
from assetlens.enrich.work import FileWork
from assetlens.search.duplicates import NearDuplicates
from assetlens.search.settings import DUPLICATES_MAX_DISTANCE, DUPLICATES_THRESHOLD
from assetlens.search.store import Store

SCENES = 4


def write_set(folder: Path, originals: dict, shots: bool = True, with_originals: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in originals.items():
        if with_originals:
            image.save(folder / f"{name}.jpg", quality=92)
        for edit, variant in variants_of(image).items():
            variant.save(folder / f"{name}__{edit}.jpg", quality=92)
        if shots and name.startswith("scene"):
            other_shot(name).save(folder / f"{name}__other shot.jpg", quality=92)


def original(uri: str) -> str:
    return Path(uri).stem.split("__")[0]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dups") / "campagne été edits"  # spaces and accents in the path
    write_set(folder, {**real_photos(), **generated_scenes(SCENES)})
    return folder


@pytest.fixture(scope="module")
def library(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[assetlens.Library]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        lib = assetlens.open(tmp_path_factory.mktemp("lib") / "data", model="tiny")
        lib.ingest([generated], transcribe=False)
        yield lib
        lib.close()


def test_every_variant_groups_with_its_original_and_nothing_else(library: assetlens.Library) -> None:
    found = library.duplicates()

    originals = {original(m.uri) for g in found.groups for m in g.members}
    assert len(found.groups) == 8 + SCENES == len(originals)
    for group in found.groups:
        names = {Path(m.uri).stem for m in group.members}
        stem = original(group.representative.uri)
        assert names == {stem} | {f"{stem}__{edit}" for edit in VARIANTS}, names
        # The representative is the largest picture: the 1.5x copy.
        assert group.representative.uri.endswith("__larger.jpg")
        assert group.representative.similarity == 1.0 and group.representative.distance == 0
        for member in group.members:
            assert member.similarity >= DUPLICATES_THRESHOLD and member.distance <= DUPLICATES_MAX_DISTANCE
    grouped = {m.uri for g in found.groups for m in g.members}
    assert not [u for u in grouped if "other shot" in u]  # another shot of a scene is not a copy of it
    assert found.hashed == 0 and found.unreadable == ()


def test_clip_alone_or_hashes_alone_do_not_make_a_pair(tmp_path: Path) -> None:
    """Both measures must agree: near hashes with far vectors, or near vectors with far hashes,
    are no pair (stored vectors and hashes built for the purpose)."""
    store = Store(tmp_path / "a.db")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # random directions: cosines near 0
    hashes = rng.integers(0, 2**63, (4, len(ANCHORS), 2), dtype=np.uint64)  # ~64 of 128 bits apart
    # 1+2 agree on both; 3+4 have one hash but far vectors; 5+6 one vector but far hashes.
    assets = [(vectors[0], hashes[0]), (vectors[0], hashes[0] ^ np.uint64(1)), (vectors[1], hashes[1]),
              (vectors[2], hashes[1]), (vectors[3], hashes[2]), (vectors[3], hashes[3])]  # fmt: skip
    with store.transaction():
        for i, (vector, hashes) in enumerate(assets, 1):
            aid = store.upsert_asset(
                {"uri": f"/x/{i}.jpg", "kind": "image", "size": 1, "mtime": 0.0, "status": "ok"}
            )
            store.replace_vectors(aid, "m", vector[None], [None])
            store.duplicates.replace_hashes(aid, hashes[None], [None])
    NearDuplicates(store).update(None)
    assert store.duplicates.groups() == {1: 1, 2: 1}
    store.close()


def test_new_assets_join_groups_at_ingest_and_leave_them_when_deleted(tmp_path: Path) -> None:
    photos = real_photos()
    first, later = tmp_path / "first", tmp_path / "later"
    first.mkdir()
    for name in ("cat", "coffee"):
        photos[name].save(first / f"{name}.jpg", quality=92)
    write_set(later, {"cat": photos["cat"]}, with_originals=False)
    shutil.copy(first / "coffee.jpg", later / "coffee copy.jpg")  # an exact copy joins too
    with assetlens.open(tmp_path / "data", model="tiny") as lib:
        lib.ingest([first], transcribe=False)
        assert lib.core.store.duplicates.groups() == {}
        lib.ingest([later], transcribe=False)  # compared with the library, not with itself only

        store = lib.core.store
        assert store.duplicates.unchecked()[0] == []  # nothing left to compare: no work for `duplicates`
        groups = {original(g.representative.uri): {Path(m.uri).name for m in g.members}
                  for g in lib.duplicates().groups}  # fmt: skip
        assert {"cat.jpg", "cat__quarter.jpg", "cat__watermark.jpg"} <= groups["cat"]
        assert len(groups["cat"]) == 13
        coffee = next(g for name, g in groups.items() if "coffee" in name)
        assert coffee == {"coffee.jpg", "coffee copy.jpg"}

        copy = lib.find(later / "coffee copy.jpg")
        assert lib.count("near_duplicate:true") == 15
        with store.transaction():
            store.delete_asset(copy.id)
        # The lone original is in no group any more, at once (filters read the groups).
        assert lib.count("near_duplicate:true") == 13
        assert lib.count(f"near_duplicate_of:{lib.find(first / 'cat.jpg').id}") == 12


def test_filters_name_a_group_and_any_group(library: assetlens.Library) -> None:
    groups = library.duplicates().groups
    grouped = sum(len(g.members) for g in groups)
    assert library.count("near_duplicate:true") == grouped
    assert library.count({"field": "near_duplicate", "eq": False}) == library.count() - grouped
    member = groups[0].members[3]
    others = {m.asset_id for m in groups[0].members} - {member.asset_id}
    for flt in (
        f"near_duplicate_of:{member.asset_id}",
        {"field": "near_duplicate_of", "eq": member.asset_id},
    ):
        page = library.search(filter=flt, sort="id", limit=100)
        assert {r.asset_id for r in page.results} == others
    both = f"near_duplicate_of:({groups[0].members[0].asset_id} OR {groups[1].members[0].asset_id})"
    assert library.count(both) == len(groups[0].members) + len(groups[1].members) - 2
    only_cat = library.duplicates(filter="filename:cat*")
    assert [original(g.representative.uri) for g in only_cat.groups] == ["cat"]


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_collapsed_results_page_without_duplicates_or_gaps(library: assetlens.Library, mode: str) -> None:
    groups = {m.asset_id: i for i, g in enumerate(library.duplicates().groups) for m in g.members}
    query = {"text": "a photo of a scene", "mode": mode, "collapse_duplicates": True}
    whole = library.search(**query, limit=1000).results  # type: ignore[arg-type]
    paged, cursor = [], None
    while True:
        page = library.search(**query, limit=7, cursor=cursor)  # type: ignore[arg-type]
        paged += page.results
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [r.asset_id for r in paged] == [r.asset_id for r in whole]
    seen = [groups[r.asset_id] for r in paged if r.asset_id in groups]
    assert len(seen) == len(set(seen)) == len(set(groups.values()))  # every group once, none twice
    assert len(paged) == library.count("ingest_status:ok") - len(groups) + len(set(groups.values()))
    hidden = [i for r in paged for i in r.explanation.get("near_duplicates", [])]
    assert sorted(hidden + [r.asset_id for r in paged if r.asset_id in groups]) == sorted(groups)
    uncollapsed = library.search(text="a photo of a scene", mode=mode, limit=1000).results
    assert len(uncollapsed) == library.count("ingest_status:ok")


def test_assets_stored_before_hashes_are_hashed_from_their_files(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    write_set(folder, {"rocket": real_photos()["rocket"]}, shots=False)
    with assetlens.open(tmp_path / "data", model="tiny") as lib:
        lib.ingest([folder], transcribe=False)
        store = lib.core.store
        with store.transaction():  # what a library ingested before this feature holds
            store.db.execute("DELETE FROM frame_hashes")
            store.db.execute("DELETE FROM near_duplicate_pairs")
            store.db.execute("DELETE FROM state WHERE key = 'near_duplicates_checked'")
            lib.core.duplicates.regroup()
        assert lib.count("near_duplicate:true") == 0
        (folder / "rocket__jpeg30.jpg").unlink()
        changed = folder / "rocket__brighter15.jpg"  # new content under a stored path: not hashed as is
        changed.write_bytes((folder / "rocket.jpg").read_bytes())

        found = lib.duplicates()

        assert found.hashed == 11
        edited, gone = sorted(found.unreadable, key=lambda u: u["uri"])
        assert gone["uri"] == str(folder / "rocket__jpeg30.jpg") and "cannot read" in gone["reason"]
        assert edited["uri"] == str(changed) and "changed since it was ingested" in edited["reason"]
        assert edited["asset_id"] == lib.asset(changed).asset.id
        assert len(found.groups) == 1 and len(found.groups[0].members) == 11
        job = store.last_job()
        assert job is not None and job["kind"] == "hash" and job["status"] == "done"
        assert {f["stage"] for f in store.failures(job["id"])} == {"hash"}
        again = lib.duplicates()  # the unreadable ones are tried again, and named again
        assert again.hashed == 0 and sorted(u["uri"] for u in again.unreadable) == [str(changed), gone["uri"]]


def test_hash_stage_pickles_and_hashes_the_whole_frame(tmp_path: Path) -> None:
    image = real_photos()["coffee"]
    thumbs = np.stack([hash_thumbnail(image)])
    work = FileWork(candidate=None, thumbs=thumbs, times=(None,))  # type: ignore[arg-type]
    stage = pickle.loads(pickle.dumps(Hash()))
    stage.open()
    [done] = stage([work])
    assert done.thumbs is None and done.hashes is not None
    assert done.hashes.shape == (1, len(ANCHORS), 2) and done.hashes.dtype == np.uint64
    assert (done.hashes[0] == fingerprint(thumbs[0])).all()


def test_cli_json_document_and_collapsed_search(
    library: assetlens.Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSETLENS_CLIP_MODEL", "tiny")
    data = ["--data-dir", str(library.data_dir)]
    result = CliRunner().invoke(cli, [*data, "duplicates", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["groups"]) == 8 + SCENES
    for group in doc["groups"]:
        assert group["representative"] == group["assets"][0]["asset_id"]
        assert all({"asset_id", "uri", "similarity"} <= set(a) for a in group["assets"])
    strict = json.loads(
        CliRunner().invoke(cli, [*data, "duplicates", "--json", "--threshold", "0.999"]).output
    )
    assert sum(len(g["assets"]) for g in strict["groups"]) < sum(len(g["assets"]) for g in doc["groups"])
    assert CliRunner().invoke(cli, [*data, "duplicates", "--threshold", "0.5"]).exit_code == 2
    human = CliRunner().invoke(cli, [*data, "duplicates", "--filter", "filename:cat*"])
    assert human.exit_code == 0 and human.output.startswith("group 1: 13 assets")
    found = CliRunner().invoke(
        cli, [*data, "search", "a photo", "--collapse-duplicates", "--limit", "100", "--json"]
    )
    results = json.loads(found.stdout)["results"]
    assert (
        len(results) == library.count("ingest_status:ok") - library.count("near_duplicate:true") + 8 + SCENES
    )
