"""Uploaded files: reading them within limits, checking they are media, storing them safely.

Uploads for ingest are stored under ``DATA_DIR/uploads/<date>/`` with generated names; the
client's file name only contributes its extension, and only one from :data:`EXTENSIONS`.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile

from assetlens.search.api.errors import ApiError

CHUNK = 1024 * 1024
EXTENSIONS = frozenset(
    [
        "jpg",
        "jpeg",
        "png",
        "gif",
        "webp",
        "tif",
        "tiff",
        "bmp",
        "heic",
        "heif",
        "avif",
        "mp4",
        "mov",
        "m4v",
        "mkv",
        "webm",
        "avi",
        "mpg",
        "mpeg",
        "mp3",
        "wav",
        "m4a",
        "aac",
        "flac",
        "ogg",
        "oga",
        "opus",
        "wma",
        "aiff",
        "aif",
    ]
)
MAX_NAME = 255


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"upload larger than {limit // (1024 * 1024)} MiB (ASSETLENS_API_MAX_UPLOAD_MB)",
        "too-large",
        title="Upload too large",
    )


def unprocessable(detail: str) -> ApiError:
    return ApiError(422, detail, "bad-upload", title="Unusable upload")


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """All bytes of an upload (413 past ``limit``, 422 when empty)."""
    data = bytearray()
    while chunk := await upload.read(CHUNK):
        data += chunk
        if len(data) > limit:
            raise too_large(limit)
    if not data:
        raise unprocessable("the uploaded file is empty")
    return bytes(data)


def safe_extension(filename: str | None) -> str:
    """``.ext`` of a client's file name when it is an allowed media extension, else ``""``."""
    suffix = os.path.splitext(os.path.basename((filename or "").replace("\\", "/")))[1].lower().lstrip(".")
    return f".{suffix}" if suffix in EXTENSIONS else ""


def display_name(filename: str | None) -> str:
    """A client's file name fit to keep as metadata (no folders, no control characters)."""
    base = os.path.basename((filename or "").replace("\\", "/"))
    return "".join(c for c in base if c.isprintable())[:MAX_NAME]


async def store_upload(upload: UploadFile, folder: Path, limit: int) -> Path:
    """Write an upload to a new file in ``folder`` (413 past ``limit``); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{safe_extension(upload.filename)}"
    written = 0
    try:
        with open(path, "xb") as out:  # "x": a generated name that exists is never overwritten
            while chunk := await upload.read(CHUNK):
                written += len(chunk)
                if written > limit:
                    raise too_large(limit)
                out.write(chunk)
        if written == 0:
            raise unprocessable(f"the uploaded file {display_name(upload.filename)!r} is empty")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def upload_folder(data_dir: Path) -> Path:
    """Today's folder for uploads (UTC date)."""
    return data_dir / "uploads" / dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


def check_media(path: Path, name: str, max_pixels: int) -> str:
    """The kind of a stored upload (image, video, audio); 422 when it is none or too large.

    Reads only headers (and a few packets), not the whole file.
    """
    try:
        with Image.open(path) as im:
            if im.width * im.height > max_pixels:
                raise unprocessable(f"{name}: {im.width}x{im.height} exceeds {max_pixels} pixels")
            im.draft("RGB", (512, 512))  # JPEG: a reduced decode still reads every byte
            im.load()  # a truncated or corrupt image fails here, not later in the ingest
            return "image"
    except Image.DecompressionBombError as exc:
        raise unprocessable(f"{name}: too many pixels ({exc})") from exc
    except UnidentifiedImageError:
        pass
    except (OSError, ValueError, SyntaxError) as exc:
        raise unprocessable(f"{name}: damaged image ({exc})") from exc
    try:
        with av.open(str(path)) as container:
            # A stream is not enough (FFmpeg guesses formats from the name): one frame must decode.
            for stream, kind in ((container.streams.video, "video"), (container.streams.audio, "audio")):
                if stream and next(iter(container.decode(stream[0])), None) is not None:
                    return kind
    except (av.error.FFmpegError, OSError, ValueError, StopIteration):
        pass
    raise unprocessable(f"{name}: not an image, video or audio file")
