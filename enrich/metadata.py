"""Embedded still-image metadata (EXIF, XMP, IPTC) normalised for a DAM.

Everything here is best effort: a malformed block is dropped, never raised, because a
photo with a broken maker note is still a photo worth tagging. This module holds the
entry point (:func:`read_metadata`), the merged :class:`ImageMetadata` and EXIF handling;
the XMP and IPTC parsers live in :mod:`enrich.xmp_iptc`.
"""

import dataclasses
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import ExifTags, Image, TiffImagePlugin

from assetlens.enrich.xmp_iptc import parse_xmp, read_iptc

__all__ = ["ImageMetadata", "parse_xmp", "read_metadata"]


@dataclass(frozen=True)
class ImageMetadata:
    """Normalised metadata of one image; every field but the size may be empty.

    Attributes:
        width: Full-resolution width after EXIF orientation (not the decoded, reduced size).
        height: Full-resolution height after EXIF orientation.
        created: ISO 8601 capture time, with UTC offset when the file records one.
        camera: ``"Make Model"`` with the make not repeated (``"Canon EOS 5D"``).
        lens: Lens model.
        gps: ``(latitude, longitude)`` in decimal degrees, south and west negative.
        keywords: IPTC 2:25 and XMP ``dc:subject``, de-duplicated case-insensitively,
            first spelling and order kept.
        title: XMP ``dc:title`` or IPTC 2:05 object name.
        description: XMP ``dc:description``, IPTC 2:120 caption or EXIF ImageDescription.
        creator: XMP ``dc:creator``, IPTC 2:80 by-line or EXIF Artist.
        copyright: XMP ``dc:rights``, IPTC 2:116 or EXIF Copyright.
        usage_terms: XMP ``xmpRights:UsageTerms``.
        exif: JSON-serialisable EXIF by tag name; GPS tags nested under ``"GPSInfo"``.
        xmp: JSON-serialisable XMP properties as ``"prefix:Name"`` (editing history and
            Camera Raw settings left out).
    """

    width: int
    height: int
    created: str | None = None
    camera: str | None = None
    lens: str | None = None
    gps: tuple[float, float] | None = None
    keywords: tuple[str, ...] = ()
    title: str | None = None
    description: str | None = None
    creator: str | None = None
    copyright: str | None = None
    usage_terms: str | None = None
    exif: dict[str, Any] = field(default_factory=dict)
    xmp: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the metadata as a JSON-serialisable dict (tuples become lists)."""
        data = dataclasses.asdict(self)
        data["gps"] = list(self.gps) if self.gps is not None else None
        data["keywords"] = list(self.keywords)
        return data


_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
# Layout, pointer and blob tags: meaningless for search, and strip tables can be huge.
_SKIP_TAG_NAMES = (
    "ImageWidth ImageLength BitsPerSample Compression PhotometricInterpretation "
    "StripOffsets SamplesPerPixel RowsPerStrip StripByteCounts PlanarConfiguration "
    "ColorMap TileWidth TileLength TileOffsets TileByteCounts ExtraSamples SampleFormat "
    "JpegIFOffset JpegIFByteCount XMLPacket IPTCNAA ImageResources InterColorProfile "
    "ExifOffset GPSInfo ExifInteroperabilityOffset MakerNote PrintImageMatching"
)
_SKIP_TAGS = frozenset(ExifTags.Base[name] for name in _SKIP_TAG_NAMES.split())
_XP_TAGS = {
    0x9C9B: "XPTitle",
    0x9C9C: "XPComment",
    0x9C9D: "XPAuthor",
    0x9C9E: "XPKeywords",
    0x9C9F: "XPSubject",
}  # Windows Explorer fields, UTF-16LE byte arrays
_MAX_ITEMS = 64  # longer arrays are tables (tone curves...), not descriptive metadata
# Descriptions cameras write by default; they describe nothing.
_JUNK_TEXT = frozenset(
    {
        "olympus digital camera",
        "sony dsc",
        "digital camera",
        "default",
        "konica minolta digital camera",
        "minolta digital camera",
    }
)
_DATE = re.compile(
    r"^\s*(\d{4})(?:[:-](\d{2})(?:[:-](\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?(?:[.,]\d+)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?)?)?)?\s*$"
)
_OFFSET = re.compile(r"^\s*(Z|[+-]\d{2}:?\d{2})\s*$")
_XMP_GPS = re.compile(r"^\s*(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?(?:,(\d+(?:\.\d+)?))?([NSEW])\s*$")


def read_metadata(im: Image.Image, exif: Image.Exif | None, width: int, height: int) -> ImageMetadata:
    """Collect and normalise the metadata of an opened, loaded image.

    Args:
        im: The opened image (its ``info`` holds the raw XMP and IPTC blocks).
        exif: ``im.getexif()``, already read by the caller for the orientation.
        width: Full-resolution width after orientation.
        height: Full-resolution height after orientation.

    Returns:
        The metadata; unreadable blocks are simply missing.
    """
    raw, exif_dict = _exif_dicts(exif)
    xmp = _safe(parse_xmp, im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")) or {}
    iptc = _safe(read_iptc, im) or {}
    ifd0, sub, gps_ifd = raw.get("ifd0", {}), raw.get("exif", {}), raw.get("gps", {})

    created = (
        _iso_date(sub.get(0x9003), sub.get(0x9011))  # DateTimeOriginal + OffsetTimeOriginal
        or _iso_date(sub.get(0x9004), sub.get(0x9012))  # DateTimeDigitized
        # XMP before EXIF DateTime: DateTime is the last-modified time (MWG guidance), and
        # editors rewrite it on every save while keeping xmp:CreateDate.
        or _first(
            _iso_date(xmp.get(k))
            for k in ("photoshop:DateCreated", "exif:DateTimeOriginal", "xmp:CreateDate")
        )
        or _iso_date(ifd0.get(0x0132), sub.get(0x9010))
    )
    keywords = [*iptc.get("2:25", []), *_as_list(xmp.get("dc:subject")), *_split(exif_dict.get("XPKeywords"))]
    description = _first(
        _text(v)
        for v in (
            xmp.get("dc:description"),
            iptc.get("2:120"),
            exif_dict.get("ImageDescription"),
            exif_dict.get("XPSubject"),
        )
    )
    if description and description.casefold() in _JUNK_TEXT:
        description = None
    return ImageMetadata(
        width=width,
        height=height,
        created=created,
        camera=_camera(_text(exif_dict.get("Make")), _text(exif_dict.get("Model"))),
        lens=_first(
            _text(v) for v in (exif_dict.get("LensModel"), xmp.get("aux:Lens"), xmp.get("exifEX:LensModel"))
        ),
        gps=_safe(_gps, gps_ifd, xmp),
        keywords=_dedupe(keywords),
        title=_first(_text(v) for v in (xmp.get("dc:title"), iptc.get("2:5"), exif_dict.get("XPTitle"))),
        description=description,
        creator=_first(
            _text(v)
            for v in (
                xmp.get("dc:creator"),
                iptc.get("2:80"),
                exif_dict.get("Artist"),
                exif_dict.get("XPAuthor"),
            )
        ),
        copyright=_first(
            _text(v) for v in (xmp.get("dc:rights"), iptc.get("2:116"), exif_dict.get("Copyright"))
        ),
        usage_terms=_text(xmp.get("xmpRights:UsageTerms")),
        exif=exif_dict,
        xmp=xmp,
    )


def _safe(fn: Any, *args: Any) -> Any:
    # Metadata must never fail a decode: any parser error just drops that block.
    try:
        return fn(*args)
    except Exception:
        return None


# --- EXIF ---------------------------------------------------------------------------


def _exif_dicts(exif: Image.Exif | None) -> tuple[dict[str, dict[int, Any]], dict[str, Any]]:
    """Return the raw IFDs by tag number and the JSON-serialisable by-name view."""
    raw: dict[str, dict[int, Any]] = {}
    named: dict[str, Any] = {}
    if exif is None:
        return raw, named
    raw["ifd0"] = _safe(dict, exif) or {}
    raw["exif"] = _safe(exif.get_ifd, _EXIF_IFD) or {}
    raw["gps"] = _safe(exif.get_ifd, _GPS_IFD) or {}
    for tag, value in (*raw["ifd0"].items(), *raw["exif"].items()):
        name = _XP_TAGS.get(tag) or ExifTags.TAGS.get(tag)
        if name is None or tag in _SKIP_TAGS:
            continue
        if tag in _XP_TAGS:
            value = _safe(_xp_text, value)
        elif tag == 0x9286:  # UserComment: 8-byte charset header, then text
            value = _safe(_user_comment, value)
        converted = _jsonable(value)
        if converted is not None:
            named.setdefault(name, converted)
    gps = {ExifTags.GPSTAGS[t]: v for t, v in raw["gps"].items() if t in ExifTags.GPSTAGS}
    if gps_json := _jsonable(gps):
        named["GPSInfo"] = gps_json
    return raw, named


def _jsonable(value: Any) -> Any:
    """Convert an EXIF value to JSON types, or None when it carries no usable text/number."""
    if isinstance(value, TiffImagePlugin.IFDRational):
        value = float(value)  # a zero denominator gives nan, dropped below
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        if len(value) > 256:
            return None
        try:
            text = value.decode("ascii").strip("\x00")
        except UnicodeDecodeError:
            return None
        return _clean_text(text) if text.isprintable() else None
    if isinstance(value, str):
        return _clean_text(_fix_mojibake(value))
    if isinstance(value, tuple | list):
        if len(value) > _MAX_ITEMS:
            return None
        items = [_jsonable(v) for v in value]
        return [v for v in items if v is not None] or None
    if isinstance(value, dict):
        out = {str(k): v for k, v in ((k, _jsonable(v)) for k, v in value.items()) if v is not None}
        return out or None
    return None


def _clean_text(text: str) -> str | None:
    # Fixed-width EXIF fields are padded with NULs or spaces; NUL also separates
    # photographer and editor in Copyright.
    parts = [p.strip() for p in text.split("\x00")]
    joined = " / ".join(p for p in parts if p)
    return joined or None


def _fix_mojibake(text: str) -> str:
    # Pillow decodes EXIF ASCII as Latin-1, but most cameras and editors write UTF-8.
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _xp_text(value: Any) -> str | None:
    data = bytes(value) if isinstance(value, tuple | list) else value
    return data.decode("utf-16-le").rstrip("\x00") if isinstance(data, bytes) else None


def _user_comment(value: Any) -> str | None:
    if not isinstance(value, bytes):
        return value if isinstance(value, str) else None
    header, body = value[:8], value[8:]
    if header.startswith(b"UNICODE"):
        # Byte order follows the EXIF block's; a BOM-less guess by NUL position works.
        codec = "utf-16-be" if body[:1] == b"\x00" else "utf-16-le"
        return body.decode(codec, "replace").rstrip("\x00")
    return body.decode("utf-8", "replace") if header.startswith((b"ASCII", b"\x00")) else None


def _gps(gps_ifd: dict[int, Any], xmp: dict[str, Any]) -> tuple[float, float] | None:
    lat = _dms(gps_ifd.get(2), gps_ifd.get(1), "S")
    lon = _dms(gps_ifd.get(4), gps_ifd.get(3), "W")
    if lat is None or lon is None:
        lat, lon = _xmp_coord(xmp.get("exif:GPSLatitude")), _xmp_coord(xmp.get("exif:GPSLongitude"))
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        return None
    return round(lat, 7), round(lon, 7)


def _dms(value: Any, ref: Any, negative: str) -> float | None:
    if value is None:
        return None
    parts = [float(v) for v in (value if isinstance(value, tuple | list) else (value,))][:3]
    degrees = sum(p / 60**i for i, p in enumerate(parts))
    if not math.isfinite(degrees):
        return None
    ref_text = ref.decode("ascii", "ignore") if isinstance(ref, bytes) else str(ref or "")
    return -degrees if ref_text.strip().upper().startswith(negative) else degrees


def _xmp_coord(value: Any) -> float | None:
    # XMP writes "DDD,MM,SSk" or "DDD,MM.mmk" (k = N/S/E/W).
    match = _XMP_GPS.match(value) if isinstance(value, str) else None
    if not match:
        return None
    degrees = sum(float(p or 0) / 60**i for i, p in enumerate(match.groups()[:3]))
    return -degrees if match[4] in "SW" else degrees


# --- dates, text helpers ------------------------------------------------------------


def _iso_date(value: Any, offset: Any = None) -> str | None:
    """Normalise an EXIF (``2021:06:01 12:34:56``) or XMP (ISO 8601) date to ISO 8601."""
    if not isinstance(value, str) or not (match := _DATE.match(value)):
        return None
    year, month, day, hour, minute, second, tz = match.groups()
    try:
        if hour is None:  # XMP allows a bare year or year-month
            datetime(int(year), int(month or 1), int(day or 1))
            return "-".join(p for p in (year, month, day) if p)
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError:  # "0000:00:00 00:00:00" and other placeholders
        return None
    zone = tz or (m[1] if isinstance(offset, str) and (m := _OFFSET.match(offset)) else None)
    if zone and zone != "Z" and ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    return moment.isoformat() + (zone.replace("Z", "+00:00") if zone else "")


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = ", ".join(v for v in (_text(x) for x in value) if v)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return _split(value)


def _split(value: Any) -> list[str]:
    # Keywords stored as one string (Windows XPKeywords, flat dc:subject) use ; or ,.
    return re.split(r"[;,]", value) if isinstance(value, str) else []


def _dedupe(values: list[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for value in values:
        text = value.strip()
        if text:
            seen.setdefault(text.casefold(), text)
    return tuple(seen.values())


def _first(values: Any) -> str | None:
    return next((v for v in values if v), None)


def _camera(make: str | None, model: str | None) -> str | None:
    if make and model:
        # "Canon" + "Canon EOS 5D", "NIKON CORPORATION" + "NIKON D850": make already there.
        brand = make.split()[0]
        if re.match(re.escape(brand) + r"\b", model, re.IGNORECASE):
            return model
        return f"{make} {model}"
    return model or make
