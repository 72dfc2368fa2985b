"""Thumbnails: JPEG pictures of images and of videos' poster keyframes, cached on disk.

The cache lives in ``DATA_DIR/thumbs``, keyed by content hash and size (plus the poster time
for a video), so a file that changes gets new thumbnails and renamed files share theirs. Files
are written to a temporary name and renamed, so concurrent requests never read half a picture.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import av
from PIL import Image

from assetlens.search.api.errors import ApiError
from assetlens.search.errors import QueryError
from assetlens.search.query_types import open_query_image
from assetlens.search.store import Asset

JPEG_QUALITY = 85
MIN_SIZE, MAX_SIZE = 32, 1024


def _no_picture(detail: str) -> ApiError:
    return ApiError(404, detail, "no-picture", title="No picture")


def cache_key(asset: Asset, size: int) -> str:
    """The cache file name (without folder) of an asset's thumbnail."""
    if not asset.content_hash:
        raise _no_picture(f"asset {asset.id} has no content (its ingest failed)")
    digest = "".join(c for c in asset.content_hash if c.isalnum())[:64]
    poster = f"-t{round(asset.poster_t or 0.0, 3)}" if asset.kind == "video" else ""
    return f"{digest}-{size}{poster}.jpg"


def thumbnail(asset: Asset, size: int, cache_dir: Path, max_pixels: int) -> tuple[Path, bool]:
    """The thumbnail file of an asset (made if missing) and whether it came from the cache.

    Raises:
        ApiError: 404 for audio, a file that is gone, or one that cannot be decoded.
    """
    key = cache_key(asset, size)
    path = cache_dir / key[:2] / key
    if path.exists():
        return path, True
    if asset.kind == "audio":
        raise _no_picture(f"asset {asset.id} is audio: it has no picture")
    if not os.path.exists(asset.uri):
        raise _no_picture(f"the file of asset {asset.id} is gone: {asset.uri}")
    picture = _poster(asset) if asset.kind == "video" else _still(asset, max_pixels)
    picture.thumbnail((size, size), Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
    try:
        picture.convert("RGB").save(tmp, "JPEG", quality=JPEG_QUALITY, optimize=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, False


def _still(asset: Asset, max_pixels: int) -> Image.Image:
    try:
        return open_query_image(Path(asset.uri), max_pixels, draft=MAX_SIZE)
    except QueryError as exc:
        raise _no_picture(f"asset {asset.id}: {exc}") from exc


def _poster(asset: Asset) -> Image.Image:
    """The frame at the asset's poster time, display rotation applied."""
    target = float(asset.poster_t or 0.0)
    try:
        with av.open(asset.uri) as container:
            if not container.streams.video:
                raise _no_picture(f"asset {asset.id} has no video stream")
            stream = container.streams.video[0]
            if target > 0 and stream.time_base:
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
            picture = None
            for frame in container.decode(stream):
                picture = frame.to_image()
                if frame.time is None or frame.time >= target - 1e-3:
                    break
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise _no_picture(f"the video of asset {asset.id} cannot be decoded: {exc}") from exc
    if picture is None:
        raise _no_picture(f"asset {asset.id} has no decodable frame")
    rotation = asset.media.get("rotation") if isinstance(asset.media, dict) else None
    if isinstance(rotation, int) and rotation % 360:
        picture = picture.rotate(-rotation, expand=True)  # the rotation is clockwise, PIL's is not
    return picture
