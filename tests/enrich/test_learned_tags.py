"""Learned tags through the public API and the CLI, on the tiny model's vectors of two visually
distinct generated families: product shots on white, and busy colourful scenes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from duplicate_set import packshot, scene

import assetlens
from assetlens.enrich.cli import cli
from assetlens.models.registry import register_tiny_config
from assetlens.search.errors import LearnedTagError


def write_family(folder: Path, family: str, seeds: range) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    make = packshot if family == "packshot" else scene
    paths = []
    for seed in seeds:
        path = folder / f"{family} {seed}.jpg"
        make(seed, size=(320, 240)).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture
def library(tmp_path: Path) -> Iterator[assetlens.Library]:
    write_family(tmp_path / "shoot", "packshot", range(1, 9))
    write_family(tmp_path / "shoot", "scene", range(1, 13))
    with assetlens.open(tmp_path / "data", model="tiny") as lib:
        lib.ingest([tmp_path / "shoot"], transcribe=False)
        yield lib


def learned_of(lib: assetlens.Library, name: str) -> dict[str, float]:
    rows = lib.core.store.db.execute(
        "SELECT a.uri, t.score FROM tags t JOIN assets a ON a.id = t.asset_id "
        "WHERE t.source = 'learned' AND t.tag = ?",
        (name,),
    )
    return {Path(uri).name: score for uri, score in rows}


def test_a_learned_tag_goes_to_its_look_now_and_at_later_ingests(
    library: assetlens.Library, tmp_path: Path
) -> None:
    shoot = tmp_path / "shoot"
    report = library.learn_tag(
        "on-white", [shoot / f"packshot {i}.jpg" for i in (1, 2, 3, 4)], ['filename:"scene 1.jpg"']
    )

    r = report.tag.report
    assert (r["positives"], r["negatives"], r["folds"]) == (4, 1, 4)
    assert r["recall"] == 1.0 and r["precision"] == 1.0
    tagged = learned_of(library, "on-white")
    assert {n for n in tagged if n.startswith("packshot")} == {f"packshot {i}.jpg" for i in range(1, 9)}
    assert not [n for n in tagged if n.startswith("scene")]
    assert report.tagged == len(tagged)

    later = write_family(tmp_path / "later", "packshot", range(20, 24)) + write_family(
        tmp_path / "later", "scene", range(20, 24)
    )
    library.ingest([tmp_path / "later"], transcribe=False)

    tagged = learned_of(library, "on-white")
    assert {p.name for p in later if p.name.startswith("packshot")} <= tagged.keys()
    assert not [n for n in tagged if n.startswith("scene")]
    # Filterable like any tag, score included; shown with the asset, source `learned`.
    assert library.count("tag:on-white") == len(tagged)
    assert library.count("tag:on-white>=0.99") == sum(s >= 0.99 for s in tagged.values())
    record = library.asset(later[0])
    assert [(t.tag, t.source) for t in record.tags if t.source == "learned"] == [("on-white", "learned")]
    # An exact copy gets the tag with the rest of its original's enrichment.
    (tmp_path / "copies").mkdir()
    (tmp_path / "copies" / "same.jpg").write_bytes(later[0].read_bytes())
    library.ingest([tmp_path / "copies"], transcribe=False)
    assert "same.jpg" in learned_of(library, "on-white")


def test_the_examples_keep_what_they_were_told_whatever_the_classifier_says(
    library: assetlens.Library, tmp_path: Path
) -> None:
    shoot = tmp_path / "shoot"
    # A look-alike marked "not this look", and an odd one out marked as having it: the fit may
    # score either way, but the examples themselves are what the user said.
    positives = [shoot / f"packshot {i}.jpg" for i in (1, 2, 3, 4)] + [shoot / "scene 12.jpg"]
    report = library.learn_tag("on-white", positives, [shoot / "packshot 8.jpg"])

    tagged = learned_of(library, "on-white")
    assert {p.name for p in positives} <= tagged.keys() and "packshot 8.jpg" not in tagged
    assert report.tagged == len(tagged) == library.count("tag:on-white")
    assert all(0 < score < 1 for score in tagged.values())  # the classifier's own scores


def test_learned_tags_are_exported_as_keywords(library: assetlens.Library, tmp_path: Path) -> None:
    shoot = tmp_path / "shoot"
    library.learn_tag("on-white", [shoot / f"packshot {i}.jpg" for i in (1, 2, 3)])
    library.export("xmp", tmp_path / "sidecars")
    sidecar = (tmp_path / "sidecars").rglob("packshot 5*.xmp")
    text = next(sidecar).read_text()
    assert "<rdf:li>on-white</rdf:li>" in text


def test_a_vocabulary_name_needs_replace_and_then_replaces_the_zero_shot_tag(
    library: assetlens.Library, tmp_path: Path
) -> None:
    shoot = tmp_path / "shoot"
    examples = [shoot / f"packshot {i}.jpg" for i in (1, 2, 3)]
    store = library.core.store
    store.db.execute("UPDATE tags SET tag = 'product shot' WHERE rowid IN (SELECT rowid FROM tags LIMIT 5)")
    with pytest.raises(LearnedTagError, match="vocabulary"):
        library.learn_tag("Product Shot", examples)
    library.learn_tag("product shot", examples, replace=True)
    sources = {s for (s,) in store.db.execute("SELECT source FROM tags WHERE tag = 'product shot'")}
    assert sources == {"learned"}
    library.retag()  # zero-shot tagging again does not bring the replaced tag back
    assert {s for (s,) in store.db.execute("SELECT source FROM tags WHERE tag = 'product shot'")} == {
        "learned"
    }


def test_bad_examples_are_refused_and_nothing_is_stored(library: assetlens.Library, tmp_path: Path) -> None:
    shoot = tmp_path / "shoot"
    with pytest.raises(LearnedTagError, match=r"id 4242; path '.*nowhere.jpg'"):
        library.learn_tag("x", [1, 2, 4242, str(tmp_path / "nowhere.jpg")])
    with pytest.raises(LearnedTagError, match="both positive and negative"):
        library.learn_tag("x", [1, 2, 3], [shoot / "packshot 3.jpg"])
    with pytest.raises(LearnedTagError, match="at least 3"):
        library.learn_tag("x", [1, 2])
    assert library.learned_tags() == []
    with (
        assetlens.open(tmp_path / "empty", model="tiny") as empty,
        pytest.raises(LearnedTagError, match="no vectors"),
    ):
        empty.learn_tag("x", ["kind:image"])


def test_reembed_fits_learned_tags_again_on_the_new_vectors(
    library: assetlens.Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shoot = tmp_path / "shoot"
    library.learn_tag("on-white", [shoot / f"packshot {i}.jpg" for i in (1, 2, 3, 4)])
    before = library.learned_tags()[0]
    # Another model: the tiny architecture with other weights, from a checkpoint file.
    register_tiny_config()
    import open_clip

    with torch.random.fork_rng():
        torch.manual_seed(7)
        other = open_clip.create_model("assetlens-tiny")
    checkpoint = tmp_path / "other.pt"
    torch.save(other.state_dict(), checkpoint)
    monkeypatch.setenv("ASSETLENS_CLIP_CHECKPOINT", str(checkpoint))
    with assetlens.open(library.data_dir, model="tiny") as switched:
        switched.reembed()
        after = switched.learned_tags()[0]
        assert after.model == switched.core.store.model_id != before.model
        assert after.positives == before.positives and after.trained_at >= before.trained_at
        tagged = learned_of(switched, "on-white")
        assert {f"packshot {i}.jpg" for i in (1, 2, 3, 4)} <= tagged.keys()
        assert {
            r[0]
            for r in switched.core.store.db.execute(
                "SELECT DISTINCT model FROM tags WHERE source = 'learned'"
            )
        } == {after.model}


def test_cli_learns_lists_shows_relearns_and_forgets(
    library: assetlens.Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSETLENS_CLIP_MODEL", "tiny")
    data = ["--data-dir", str(library.data_dir)]

    def run(*args: str) -> dict:
        result = CliRunner().invoke(cli, [*data, *args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    ids = [library.find(tmp_path / "shoot" / f"packshot {i}.jpg").id for i in (1, 2, 3, 4)]
    learned = run(
        "tags", "learn", "on-white", "-p", str(ids[0]), "-p", str(ids[1]), "-p", 'filename:"packshot 3.jpg"'
    )
    assert (
        learned["name"] == "on-white" and learned["positives"] == sorted(ids[:3]) and learned["tagged"] >= 3
    )
    assert set(learned["report"]) >= {"precision", "recall", "folds", "background_tagged"}
    assert [t["name"] for t in run("tags", "list")["learned"]] == ["on-white"]
    again = run(
        "tags", "relearn", "on-white", "--positive", str(ids[3]), "--negative", 'filename:"scene 2.jpg"'
    )
    assert again["positives"] == sorted(ids) and len(again["negatives"]) == 1
    shown = run("tags", "show", "on-white")
    assert shown["tagged"] == len(learned_of(library, "on-white"))
    assert run("tags", "forget", "on-white") == {"forgot": "on-white"}
    assert learned_of(library, "on-white") == {}
    failed = CliRunner().invoke(cli, [*data, "tags", "learn", "x", "-p", "1", "-p", "2"])
    assert failed.exit_code == 1 and "at least 3" in failed.output
    missing = CliRunner().invoke(cli, [*data, "tags", "show", "nope"])
    assert missing.exit_code == 1 and "no learned tag 'nope'" in missing.output
