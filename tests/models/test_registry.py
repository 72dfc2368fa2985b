"""Tests of the CLIP model registry: names users type -> architectures, weights and model ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assetlens.models.errors import CheckpointError, ModelError, UnknownModelError
from assetlens.models.registry import (
    CLIP_MODELS,
    TINY_ARCH,
    ModelSpec,
    arch_config,
    describe,
    file_digest,
    known_architectures,
    register_tiny_config,
    resolve_model,
)

# --- registry names -------------------------------------------------------------------------------


def test_tiny_resolves_to_our_seeded_non_semantic_model() -> None:
    spec = resolve_model("tiny")
    assert spec.arch == TINY_ARCH == "assetlens-tiny"
    assert spec.pretrained is None
    assert spec.semantic is False
    assert spec.model_id == "assetlens-tiny@random"
    assert spec.embed_dim == 64
    assert spec.checkpoint is None and spec.checkpoint_digest is None
    assert "NOT SEMANTIC" in spec.description


def test_vit_b_32_defaults_to_the_laion2b_weights() -> None:
    spec = resolve_model("ViT-B-32")
    assert spec.arch == "ViT-B-32"
    assert spec.pretrained == "laion2b_s34b_b79k"
    assert spec.semantic is True
    assert spec.model_id == "ViT-B-32@laion2b_s34b_b79k"
    assert spec.embed_dim == 512


@pytest.mark.parametrize("name", sorted(CLIP_MODELS))
def test_every_registry_entry_is_buildable_and_consistent(name: str) -> None:
    spec = resolve_model(name)
    assert spec.name == name
    assert spec.arch in known_architectures()
    assert spec.embed_dim > 0
    assert spec.description
    # Only the tiny test model may be non-semantic in the registry.
    assert spec.semantic is (spec.pretrained is not None)


def test_arch_at_tag_with_a_valid_open_clip_tag() -> None:
    spec = resolve_model("ViT-B-32@openai")
    assert (spec.name, spec.arch, spec.pretrained) == ("ViT-B-32@openai", "ViT-B-32", "openai")
    assert spec.semantic is True
    assert spec.model_id == "ViT-B-32@openai"
    assert spec.embed_dim == 512


def test_registry_alias_and_arch_at_tag_share_one_model_id() -> None:
    # Vectors from "ViT-B-32-openai" and "ViT-B-32@openai" are the same weights: one id.
    assert resolve_model("ViT-B-32-openai").model_id == resolve_model("ViT-B-32@openai").model_id


def test_arch_at_random_is_not_semantic() -> None:
    spec = resolve_model("ViT-B-16@random")
    assert spec.arch == "ViT-B-16"
    assert spec.pretrained is None
    assert spec.semantic is False
    assert spec.model_id == "ViT-B-16@random"
    assert "NOT SEMANTIC" in spec.description


@pytest.mark.parametrize(
    "name",
    [*sorted(CLIP_MODELS), "ViT-B-32@openai", "ViT-B-32@random", "assetlens-tiny@random", "ViT-L-14@random"],
)
def test_model_id_round_trips_through_resolve_model(name: str) -> None:
    spec = resolve_model(name)
    again = resolve_model(spec.model_id)
    assert again.model_id == spec.model_id
    assert (again.arch, again.pretrained, again.semantic) == (spec.arch, spec.pretrained, spec.semantic)


def test_spec_is_frozen() -> None:
    spec = resolve_model("tiny")
    with pytest.raises(AttributeError):
        spec.arch = "ViT-B-32"  # type: ignore[misc]


def test_describe_is_json_ready() -> None:
    out = json.loads(json.dumps(describe(resolve_model("tiny"))))
    assert out == {
        "name": "tiny",
        "arch": "assetlens-tiny",
        "pretrained": None,
        "model_id": "assetlens-tiny@random",
        "embed_dim": 64,
        "semantic": False,
        "description": resolve_model("tiny").description,
    }


def test_known_architectures_include_ours_and_open_clips() -> None:
    archs = known_architectures()
    assert {"assetlens-tiny", "ViT-B-32", "ViT-L-14"} <= set(archs)


def test_architecture_configs_are_read_exactly_as_open_clip_reads_them() -> None:
    # The registry reads open_clip's config files itself so that naming a model never imports
    # torch; what it reads must be what open_clip builds from.
    import open_clip

    register_tiny_config()
    assert known_architectures() == open_clip.list_models()
    for arch in known_architectures():
        assert arch_config(arch) == open_clip.get_model_config(arch), arch


# --- unknown names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vit-b-32", "ViT-B-99", "ViT-B-99@openai", "@random", "", "tiny@random"])
def test_unknown_name_lists_the_valid_names(name: str) -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve_model(name)
    message = str(info.value)
    assert repr(name) in message
    for valid in ("tiny", "ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-B-32-openai"):
        assert valid in message
    assert "ARCH@TAG" in message and "ARCH@random" in message


def test_unknown_error_is_a_model_error() -> None:
    # Callers (CLI, API) catch the base class to turn every model error into a clear message.
    with pytest.raises(ModelError):
        resolve_model("no-such-model")


def test_unknown_tag_for_a_known_arch_lists_its_valid_tags() -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve_model("ViT-B-32@laion9b")
    message = str(info.value)
    assert "'laion9b'" in message and "ViT-B-32" in message
    for tag in ("openai", "laion2b_s34b_b79k", "datacomp_xl_s13b_b90k", "random"):
        assert tag in message


def test_tiny_arch_has_no_pretrained_tags_only_random() -> None:
    with pytest.raises(UnknownModelError, match=r"valid tags: none, or 'random'"):
        resolve_model("assetlens-tiny@openai")


# --- checkpoints -----------------------------------------------------------------------------------


def test_missing_checkpoint_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no such dir" / "weights ü.pt"
    with pytest.raises(CheckpointError) as info:
        resolve_model("tiny", checkpoint=missing)
    assert str(missing) in str(info.value)
    assert "ASSETLENS_CLIP_CHECKPOINT" in str(info.value)


def test_a_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        resolve_model("tiny", checkpoint=tmp_path)


def test_unknown_name_is_reported_before_the_checkpoint(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    with pytest.raises(UnknownModelError):
        resolve_model("nope", checkpoint=weights)


def test_checkpoint_spec_records_the_file_digest(tmp_path: Path) -> None:
    weights = tmp_path / "my weights ü.pt"
    weights.write_bytes(b"first weights")
    spec = resolve_model("tiny", checkpoint=weights)
    digest = file_digest(weights)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert spec.checkpoint == weights
    assert spec.checkpoint_digest == digest
    assert spec.model_id == f"assetlens-tiny@file:{digest}"
    assert spec.pretrained is None
    assert spec.embed_dim == 64
    assert str(weights) in spec.description
    # The user chose these weights: they are taken as meaningful.
    assert spec.semantic is True


def test_checkpoint_replaces_hub_weights_of_a_named_model(tmp_path: Path) -> None:
    weights = tmp_path / "finetuned.safetensors"
    weights.write_bytes(b"fine-tuned")
    spec = resolve_model("ViT-B-32", checkpoint=weights)
    assert spec.arch == "ViT-B-32"
    assert spec.pretrained is None
    assert spec.semantic is True
    assert spec.model_id.startswith("ViT-B-32@file:")
    assert spec.model_id != resolve_model("ViT-B-32").model_id


def test_checkpoint_model_id_changes_with_the_content_not_the_path(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"version 1")
    first = resolve_model("tiny", checkpoint=weights).model_id
    weights.write_bytes(b"version 2")
    second = resolve_model("tiny", checkpoint=weights).model_id
    assert first != second

    copy = tmp_path / "elsewhere" / "copy of w.pt"
    copy.parent.mkdir()
    copy.write_bytes(b"version 2")
    assert resolve_model("tiny", checkpoint=copy).model_id == second


def test_checkpoint_path_accepts_str_and_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "w.pt").write_bytes(b"abc")
    spec = resolve_model("tiny", checkpoint="~/w.pt")  # type: ignore[arg-type]
    assert spec.checkpoint == tmp_path / "w.pt"


def test_file_digest_streams_large_files(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (3 << 20) + b"tail")
    other = tmp_path / "other.bin"
    other.write_bytes(b"\0" * (3 << 20) + b"tall")
    assert file_digest(big) != file_digest(other)
    assert file_digest(big) == file_digest(big)
    assert len(file_digest(big, digest_size=4)) == 8


def test_specs_compare_by_value() -> None:
    assert resolve_model("tiny") == CLIP_MODELS["tiny"]
    assert isinstance(resolve_model("ViT-B-32@random"), ModelSpec)
    assert resolve_model("ViT-B-32@random") == resolve_model("ViT-B-32@random")
