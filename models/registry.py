"""CLIP model registry: names users type, mapped to open_clip architectures and weights.

A name is one of:

- a registry name from :data:`CLIP_MODELS` (``tiny``, ``ViT-B-32``, ...);
- ``ARCH@TAG``: any open_clip architecture with one of its pretrained tags;
- ``ARCH@random``: the architecture with seeded random weights, for speed measurements only.

With a local checkpoint (``ASSETLENS_CLIP_CHECKPOINT``) the architecture comes from the name
and the weights from the file; the model id then records the file's digest, so vectors of
two different checkpoints are never mixed in one store.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from assetlens.models.errors import CheckpointError, UnknownModelError

TINY_ARCH = "assetlens-tiny"
_CONFIG_DIR = Path(__file__).parent / "configs"
# Seed of every randomly initialised model: the same name always gives the same weights.
RANDOM_SEED = 0


@dataclass(frozen=True)
class ModelSpec:
    """One CLIP model: architecture, where its weights come from, and whether it means anything.

    Attributes:
        name: The name the user typed (registry name or ``ARCH@TAG``).
        arch: open_clip architecture name.
        pretrained: open_clip pretrained tag (hub weights), or None for seeded random weights.
        semantic: False for random weights: embeddings carry no meaning.
        description: One line for ``assetlens models list``.
        checkpoint: Local weights file that replaces hub weights.
        checkpoint_digest: Short content digest of ``checkpoint`` (part of the model id).
    """

    name: str
    arch: str
    pretrained: str | None
    semantic: bool
    description: str
    checkpoint: Path | None = None
    checkpoint_digest: str | None = None

    @property
    def model_id(self) -> str:
        """Identity of the weights; every stored vector records it."""
        if self.checkpoint_digest:
            return f"{self.arch}@file:{self.checkpoint_digest}"
        # Random weights are seeded (RANDOM_SEED), so "ARCH@random" names them exactly and
        # resolves back to the same spec.
        return f"{self.arch}@{self.pretrained or 'random'}"

    @property
    def embed_dim(self) -> int:
        """Dimension of the embeddings."""
        return int(arch_config(self.arch)["embed_dim"])


CLIP_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "tiny",
            TINY_ARCH,
            None,
            False,
            "AssetLens tiny CLIP, seeded random weights: NOT SEMANTIC (tests, offline demos)",
        ),
        ModelSpec(
            "ViT-B-32",
            "ViT-B-32",
            "laion2b_s34b_b79k",
            True,
            "default; LAION-2B, 512-d, fast on CPU",
        ),
        ModelSpec("ViT-B-16", "ViT-B-16", "laion2b_s34b_b88k", True, "LAION-2B, 512-d, finer"),
        ModelSpec("ViT-L-14", "ViT-L-14", "laion2b_s32b_b82k", True, "LAION-2B, 768-d, best, slow"),
        ModelSpec(
            "ViT-B-32-openai",
            "ViT-B-32",
            "openai",
            True,
            "OpenAI's original CLIP weights",
        ),
    )
}


def register_tiny_config() -> None:
    """Teach open_clip our tiny architecture (it only builds architectures it has a config for)."""
    import open_clip

    if TINY_ARCH not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG_DIR / f"{TINY_ARCH}.json")


@cache
def _arch_configs() -> dict[str, dict[str, Any]]:
    """Every architecture's config: the JSON files open_clip ships, plus ours.

    Read the way open_clip reads them, but without importing it: that import loads torch and
    torchvision (about 5 s), which an ``onnx-int8`` run from a cached export never needs.
    """
    found = importlib.util.find_spec("open_clip")  # locates the package without running it
    if found is None or found.origin is None:
        raise UnknownModelError("the open_clip package is not installed")
    configs: dict[str, dict[str, Any]] = {}
    for directory in (Path(found.origin).parent / "model_configs", _CONFIG_DIR):
        for path in directory.glob("*.json"):
            cfg = json.loads(path.read_text())
            if all(key in cfg for key in ("embed_dim", "vision_cfg", "text_cfg")):
                configs[path.stem] = cfg
    return {name: configs[name] for name in sorted(configs, key=_natural_key)}


def _natural_key(name: str) -> list[int | str]:
    # open_clip's order: ViT-B-16 before ViT-B-32, RN50 before RN101.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def arch_config(arch: str) -> dict[str, Any]:
    """open_clip's config of an architecture (a copy).

    Raises:
        UnknownModelError: No such architecture.
    """
    cfg = _arch_configs().get(arch)
    if cfg is None:
        raise UnknownModelError(f"unknown open_clip architecture {arch!r}")
    return dict(cfg)


def known_architectures() -> list[str]:
    """Every architecture open_clip (plus our tiny one) can build."""
    return list(_arch_configs())


def resolve_model(name: str, checkpoint: Path | None = None) -> ModelSpec:
    """Turn a user-facing model name (and optional checkpoint file) into a :class:`ModelSpec`.

    Args:
        name: Registry name, ``ARCH@TAG`` or ``ARCH@random``.
        checkpoint: Local weights file for the architecture.

    Returns:
        The resolved spec.

    Raises:
        UnknownModelError: The name, architecture or tag is unknown; the message lists valid names.
        CheckpointError: ``checkpoint`` does not exist.
    """
    spec = CLIP_MODELS.get(name) or _parse_arch_tag(name)
    if checkpoint is None:
        return spec
    checkpoint = Path(checkpoint).expanduser()
    if not checkpoint.is_file():
        raise CheckpointError(
            f"CLIP checkpoint file not found: {checkpoint} (set by ASSETLENS_CLIP_CHECKPOINT)"
        )
    return replace(
        spec,
        pretrained=None,
        semantic=spec.semantic or spec.pretrained is None,
        description=f"{spec.arch} with weights from {checkpoint}",
        checkpoint=checkpoint,
        checkpoint_digest=file_digest(checkpoint),
    )


def _parse_arch_tag(name: str) -> ModelSpec:
    arch, sep, tag = name.partition("@")
    archs = known_architectures()
    if not sep or arch not in archs:
        valid = ", ".join(CLIP_MODELS)
        raise UnknownModelError(
            f"unknown CLIP model {name!r}; valid names: {valid}, or ARCH@TAG / ARCH@random "
            f"with an open_clip architecture (`assetlens models list --all` shows them)"
        )
    if tag == "random":
        return ModelSpec(
            name, arch, None, False, f"{arch} with seeded random weights: NOT SEMANTIC (timing only)"
        )
    import open_clip  # imported late: only names with a pretrained tag need its tag list

    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag not in tags:
        raise UnknownModelError(
            f"unknown pretrained tag {tag!r} for {arch}; valid tags: {', '.join(tags) or 'none'}, or 'random'"
        )
    return ModelSpec(name, arch, tag, True, f"{arch} with open_clip weights {tag!r}")


def file_digest(path: Path, digest_size: int = 8) -> str:
    """BLAKE2b hex digest of a file's content (streamed, any size)."""
    digest = hashlib.blake2b(digest_size=digest_size)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def describe(spec: ModelSpec) -> dict[str, object]:
    """JSON-ready description of a spec, for ``models list --json``."""
    return {
        "name": spec.name,
        "arch": spec.arch,
        "pretrained": spec.pretrained,
        "model_id": spec.model_id,
        "embed_dim": spec.embed_dim,
        "semantic": spec.semantic,
        "description": spec.description,
    }
