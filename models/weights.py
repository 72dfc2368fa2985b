"""Where a CLIP model's weights come from: a local checkpoint, a hub cache, or a hub download.

Downloads go to the machine cache's ``hub/`` folder (:mod:`models.cache`), shared by every library.
"""

from __future__ import annotations

import os
from pathlib import Path

import open_clip

from assetlens.models.cache import hub_dir
from assetlens.models.errors import WeightsMissingError
from assetlens.models.registry import ModelSpec
from assetlens.models.settings import ModelSettings


def resolve_weights(spec: ModelSpec, settings: ModelSettings) -> Path | None:
    """Find the weights file for a spec: local checkpoint, hub cache, or a hub download.

    Returns:
        The file to load, or None for seeded random weights.

    Raises:
        WeightsMissingError: Hub weights are not cached and cannot be fetched; the message names
            the missing file and the two ways to provide it.
    """
    if spec.checkpoint is not None:
        return spec.checkpoint
    if spec.pretrained is None:
        return None
    import huggingface_hub  # imported late: only real weights need it

    repo_id, filename = _hub_location(spec)
    hub = hub_dir(settings.cache_dir)
    # The machine cache, read-only extras (a pre-cache library's DATA_DIR/models), then the
    # user's own Hugging Face cache (None: the hub's default).
    for cache_dir in (hub, *settings.extra_weights_dirs, None):
        for name in (open_clip.constants.HF_SAFE_WEIGHTS_NAME, filename):
            found = huggingface_hub.try_to_load_from_cache(
                repo_id, name, cache_dir=str(cache_dir) if cache_dir else None
            )
            if isinstance(found, str):
                return Path(found)
    offline = settings.hub_offline or os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "")
    reason = "offline mode is on (ASSETLENS_HUB_OFFLINE / HF_HUB_OFFLINE)"
    if not offline:
        try:
            # The hub writes its cache atomically, under a lock: concurrent fetches are safe.
            return Path(huggingface_hub.hf_hub_download(repo_id, filename, cache_dir=str(hub)))
        except Exception as exc:
            reason = f"the hub could not be reached ({type(exc).__name__})"
    looked = ", ".join(str(d) for d in (hub, *settings.extra_weights_dirs))
    raise WeightsMissingError(
        f"CLIP weights for {spec.name} ({spec.arch}, {spec.pretrained}) are missing: file "
        f"{filename} of hub repo {repo_id} is not cached (looked in {looked} and the default "
        f"Hugging Face cache) and {reason}. Fix: set ASSETLENS_CLIP_CHECKPOINT=/path/to/{filename} "
        f"to a local copy, or on a networked machine run `assetlens models fetch {spec.name}` "
        f"and copy the hub/ folder of its ASSETLENS_CACHE_DIR to {hub}. "
        f"For a non-semantic offline demo use ASSETLENS_CLIP_MODEL=tiny."
    )


def _hub_location(spec: ModelSpec) -> tuple[str, str]:
    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained or "")
    hub = cfg.get("hf_hub")
    if not hub:
        raise WeightsMissingError(
            f"{spec.name}: open_clip has no hub location for {spec.arch}@{spec.pretrained}; "
            f"set ASSETLENS_CLIP_CHECKPOINT=/path/to/weights"
        )
    parts = hub.strip("/").split("/")
    repo_id = "/".join(parts[:2])
    filename = "/".join(parts[2:]) or open_clip.constants.HF_WEIGHTS_NAME
    return repo_id, filename
