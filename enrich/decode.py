"""Robust still-image decoding: one RGB image plus normalised metadata per file.

:func:`decode_image` turns whatever Pillow can open (JPEG, PNG, GIF, WebP, TIFF, BMP...)
into an RGB image that is just big enough for CLIP, with EXIF orientation applied, and
reads EXIF/XMP/IPTC metadata (see :mod:`enrich.metadata`). Every failure, from a zero-byte
file to a decompression bomb, surfaces as one :class:`~enrich.errors.DecodeError` with a
reason a person can act on, so a batch run can log it and move on.

The returned pixels are deliberately *reduced*: JPEGs are decoded at the smallest DCT
scale (1/2, 1/4, 1/8) whose shorter side is still at least ``min_side``, and other formats
are shrunk by an integer factor after decoding. CLIP resizes to 224 px anyway, so full
resolution would only cost time and memory. ``metadata.width``/``height`` always report the
full-resolution size.
"""

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from assetlens.enrich.errors import DecodeError
from assetlens.enrich.metadata import ImageMetadata, read_metadata

__all__ = ["DEFAULT_MAX_PIXELS", "DecodeError", "DecodedImage", "ImageMetadata", "decode_image"]

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest accepted ``width * height`` (100 MP, setting ``ASSETLENS_MAX_PIXELS``).

A decompression-bomb guard: a tiny crafted PNG can claim 50 000 x 50 000 pixels and need
gigabytes once decoded. The size is checked from the header, before any pixel is decoded.
Pillow's own process-wide limit (``PIL.Image.MAX_IMAGE_PIXELS``, an error above ~179 MP)
still applies as a backstop; raising ``max_pixels`` beyond it also needs raising that.
"""

# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Modes Image.reduce() averages correctly. Palette indices and 1-bit/16-bit data must be
# converted first (averaging palette indices gives nonsense colours).
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "I", "F"})
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_WHITE = (255, 255, 255)
# 16-bit -> 8-bit by rounding v / 257 (65535 -> 255); a lookup avoids a float copy.
_LUT16 = np.rint(np.arange(65536, dtype=np.float32) / 257).astype(np.uint8)
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image ready for embedding.

    Attributes:
        image: Mode ``"RGB"``, EXIF orientation applied, reduced so that its shorter side
            is at least ``min_side`` (or the original size when that is smaller).
        metadata: Embedded metadata; its width/height are the full-resolution size.
    """

    image: Image.Image
    metadata: ImageMetadata


def decode_image(path: Path, *, min_side: int = 224, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode one image file to RGB and read its metadata.

    Animated GIF/WebP/APNG give their first frame, multi-page TIFFs their first page.
    Transparent pixels are composited onto white: DAM libraries are full of product
    cut-outs meant to be shown on white, and black (what a plain convert gives) would
    change what CLIP sees. 16-bit and float images are scaled, not clipped, to 8 bits.

    Args:
        path: The image file.
        min_side: The returned image's shorter side is kept at least this long.
        max_pixels: Refuse images whose full size exceeds this many pixels.

    Returns:
        The RGB image and its metadata.

    Raises:
        DecodeError: The file is missing, unreadable, not an image, truncated, corrupt or
            larger than ``max_pixels``. Metadata problems never raise.
        ValueError: ``min_side`` or ``max_pixels`` is not positive.
    """
    if min_side < 1 or max_pixels < 1:
        raise ValueError(f"min_side and max_pixels must be positive, got {min_side}, {max_pixels}")
    path = Path(path)
    # Per call, not at import: pytest and apps that wrap imports in catch_warnings would drop
    # an import-time filter. Before Python 3.14 catch_warnings swaps a process-wide list, so
    # with decode threads these two Pillow warnings may end up silenced process-wide (benign)
    # and a filter another thread adds at that very moment could be lost (nothing here does).
    with warnings.catch_warnings():
        # Our pixel check below is the guard, so Pillow's ~89 MP bomb warning is noise; its
        # UserWarnings (corrupt EXIF, palette transparency...) concern data we drop anyway.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        try:
            im = Image.open(path)
        except Exception as exc:  # any failure to open is a decode failure of this file
            raise DecodeError(path, _reason(path, exc, max_pixels)) from exc
        try:
            return _decode_opened(path, im, min_side, max_pixels)
        except DecodeError:
            raise
        except Exception as exc:  # MemoryError included: one huge file must not end a batch
            raise DecodeError(path, _reason(path, exc, max_pixels)) from exc
        finally:
            im.close()


def _decode_opened(path: Path, im: ImageFile.ImageFile, min_side: int, max_pixels: int) -> DecodedImage:
    width, height = im.size  # from the header: nothing decoded yet
    if width * height > max_pixels:
        raise DecodeError(path, _too_large(width * height, max_pixels, f"{width}x{height} = "))
    # JPEG: libjpeg decodes straight to 1/2, 1/4 or 1/8 scale, and Pillow picks the
    # smallest scale keeping both sides >= min_side. Far faster than a full decode.
    drafted = im.format in _JPEG_FORMATS and im.draft("RGB", (min_side, min_side)) is not None
    # Full decode inside the try, so truncation is detected now rather than later.
    # LOAD_TRUNCATED_IMAGES is left off on purpose: a half image must not be indexed.
    im.load()

    exif = _read_exif(im)
    orientation = _orientation(exif)
    if orientation in (5, 6, 7, 8):  # quarter turns: the upright image is portrait
        width, height = height, width

    out: Image.Image = im
    reduced = drafted  # the DCT scaling is the reduction; no second pass on top
    if not reduced and out.mode in _REDUCIBLE:
        out, reduced = _reduce(out, min_side), True
    out = _to_rgb(out)
    if not reduced:
        out = _reduce(out, min_side)
    if orientation in _ORIENTATION:
        out = out.transpose(_ORIENTATION[orientation])
    if out is im:
        out = im.copy()  # closing the file would invalidate the opened image itself

    try:
        metadata = read_metadata(im, exif, width, height)
    except Exception:  # belt and braces: read_metadata already drops bad blocks
        metadata = ImageMetadata(width=width, height=height)
    return DecodedImage(image=out, metadata=metadata)


def _read_exif(im: Image.Image) -> Image.Exif | None:
    try:
        return im.getexif()
    except Exception:  # a corrupt EXIF block must not fail the decode
        return None


def _orientation(exif: Image.Exif | None) -> int:
    try:
        value = exif.get(0x0112, 1) if exif is not None else 1
        return int(value)
    except (TypeError, ValueError):
        return 1


def _reduce(im: Image.Image, min_side: int) -> Image.Image:
    # Integer box averaging: cheap, little aliasing, and keeps the shorter side >= min_side.
    factor = min(im.size) // min_side
    return im.reduce(factor) if factor >= 2 else im


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB (transparency onto white, high bit depth scaled)."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _to_8bit(im).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        # P/L/RGB with a tRNS chunk or GIF transparency index become RGBA here too.
        rgba = im.convert("RGBA") if mode != "La" else im.convert("LA").convert("RGBA")
        background = Image.new("RGB", im.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    # CMYK (Pillow already un-inverts Adobe CMYK JPEGs), YCbCr, LAB, HSV, P, L, 1, RGBX.
    return im.convert("RGB")


def _to_8bit(im: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit integer or float greyscale to 8 bits over its range."""
    data = np.asarray(im)
    if im.mode.startswith("I;16"):
        return Image.fromarray(_LUT16[data.astype(np.uint16, copy=False)])
    finite = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0) if im.mode == "F" else data
    low, high = float(finite.min()), float(finite.max())
    if im.mode == "I" and low >= 0 and high <= 65535:
        # 16-bit PNG/TIFF data that Pillow widened to 32-bit "I": use its real depth.
        # (Values all <= 255 are taken as 8-bit data stored wide.)
        return Image.fromarray(_LUT16[finite] if high > 255 else finite.astype(np.uint8))
    if im.mode == "F" and low >= 0 and high <= 1:
        scale, offset = 255.0, 0.0  # normalised float data
    elif low >= 0 and high <= 255:
        scale, offset = 1.0, 0.0
    else:  # arbitrary range (signed, HDR): stretch to 0..255
        scale, offset = 255.0 / max(high - low, 1e-12), low
    scaled = (finite.astype(np.float32) - offset) * scale
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _amount(pixels: int) -> str:
    if pixels < 100_000:  # only tiny test limits get here
        return f"{pixels} pixels"
    return f"{pixels / 1e6:.1f}".removesuffix(".0") + " MP"


def _too_large(pixels: int, max_pixels: int, dims: str = "") -> str:
    return (
        f"image too large: {dims}{_amount(pixels)} exceeds the {_amount(max_pixels)} limit "
        "(ASSETLENS_MAX_PIXELS)"
    )


def _reason(path: Path, exc: BaseException, max_pixels: int) -> str:
    """A short human-readable cause for a failure to open or decode ``path``."""
    detail = str(exc).strip()
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        match = _BOMB_PIXELS.search(detail)
        pixels = int(match[1]) if match else 0
        if pixels > max_pixels:
            return _too_large(pixels, max_pixels)
        return f"image too large for Pillow's PIL.Image.MAX_IMAGE_PIXELS limit ({detail})"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnidentifiedImageError):
        return _unidentified(path)
    if isinstance(exc, MemoryError):
        return "out of memory while decoding the image"
    if isinstance(exc, EOFError) or "truncated" in detail.lower():
        return f"truncated or corrupt image data ({detail or 'unexpected end of file'})"
    if isinstance(exc, SyntaxError | OSError | ValueError):
        # Pillow raises SyntaxError for malformed headers/chunks, OSError for decoder errors.
        return f"corrupt or unsupported image data ({detail or type(exc).__name__})"
    return f"cannot decode image ({type(exc).__name__}: {detail})"


def _unidentified(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        head = b"?"
    if not head:
        return "empty file (0 bytes)"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIC/HEIF image: not an image Pillow can read without the pillow-heif plugin"
    return "not an image Pillow can read"
