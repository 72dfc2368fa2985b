"""Tests for enrich.decode: images are built with Pillow in tmp_path, plus real photos."""

import io
import json
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assetlens.enrich.decode import DEFAULT_MAX_PIXELS, DecodedImage, decode_image
from assetlens.enrich.errors import DecodeError, EnrichError
from assetlens.enrich.metadata import ImageMetadata, parse_xmp

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def close(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def pixel(decoded: DecodedImage, xy: tuple[int, int]) -> tuple[int, ...]:
    value = decoded.image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def save(im: Image.Image, path: Path, **params: object) -> Path:
    im.save(path, **params)
    return path


# --- geometry ------------------------------------------------------------------------


def test_exif_orientation_6_swaps_size_and_rotates_pixels(tmp_path: Path) -> None:
    im = Image.new("RGB", (400, 300), BLUE)
    im.paste(RED, (0, 0, 100, 100))  # stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    path = save(im, tmp_path / "rotated.jpg", exif=exif, quality=95)

    decoded = decode_image(path)

    assert decoded.image.size == (300, 400)
    assert (decoded.metadata.width, decoded.metadata.height) == (300, 400)
    assert close(pixel(decoded, (250, 50)), RED)  # top-left moved to top-right
    assert close(pixel(decoded, (50, 50)), BLUE)
    assert decoded.metadata.exif["Orientation"] == 6


def test_jpeg_draft_decodes_small_but_reports_full_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    big = Image.fromarray(noise).resize((4000, 3000), Image.Resampling.NEAREST)
    path = save(big, tmp_path / "big.jpg", quality=80)

    decoded = decode_image(path)

    assert 224 <= min(decoded.image.size) < 3000
    assert decoded.image.size == (500, 375)  # 1/8 DCT scale
    assert (decoded.metadata.width, decoded.metadata.height) == (4000, 3000)


def test_jpeg_draft_never_goes_below_min_side(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (1000, 450), GREEN), tmp_path / "wide.jpg")
    decoded = decode_image(path, min_side=224)
    assert min(decoded.image.size) >= 224
    assert decoded.image.size == (500, 225)  # 1/2 scale; 1/4 would give 113


def test_non_jpeg_is_reduced_by_an_integer_factor(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (2000, 1000), GREEN), tmp_path / "big.png")
    decoded = decode_image(path)
    assert decoded.image.size == (500, 250)
    assert (decoded.metadata.width, decoded.metadata.height) == (2000, 1000)
    assert close(pixel(decoded, (10, 10)), GREEN, tol=0)


def test_small_image_is_kept_at_its_size_and_usable_after_close(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (40, 30), RED), tmp_path / "small.png")
    decoded = decode_image(path)
    assert decoded.image.size == (40, 30)
    assert decoded.image.mode == "RGB"
    assert pixel(decoded, (5, 5)) == RED
    assert len(decoded.image.tobytes()) == 40 * 30 * 3


# --- modes ---------------------------------------------------------------------------


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = save(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), tmp_path / "cmyk.jpg")
    decoded = decode_image(path)
    assert decoded.image.mode == "RGB"
    assert close(pixel(decoded, (32, 24)), RED)


def test_palette_png_with_transparency_goes_onto_white(tmp_path: Path) -> None:
    im = Image.new("P", (40, 20), 0)
    im.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    im.paste(1, (20, 0, 40, 20))
    path = save(im, tmp_path / "palette.png", transparency=0)

    decoded = decode_image(path)

    assert decoded.image.mode == "RGB"
    assert pixel(decoded, (5, 5)) == WHITE  # transparent index, not palette black
    assert pixel(decoded, (30, 5)) == GREEN


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    im = Image.new("RGBA", (40, 20), (255, 0, 0, 0))
    im.paste((255, 0, 0, 255), (20, 0, 30, 20))
    im.paste((255, 0, 0, 128), (30, 0, 40, 20))
    decoded = decode_image(save(im, tmp_path / "cutout.png"))
    assert pixel(decoded, (5, 5)) == WHITE
    assert pixel(decoded, (25, 5)) == RED
    assert close(pixel(decoded, (35, 5)), (255, 127, 127), tol=2)


def test_la_is_composited_on_white(tmp_path: Path) -> None:
    im = Image.new("LA", (20, 20), (0, 0))
    decoded = decode_image(save(im, tmp_path / "la.png"))
    assert pixel(decoded, (5, 5)) == WHITE


def test_16bit_greyscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    data = np.full((64, 64), 32768, dtype=np.uint16)
    data[:8, :8] = 0
    data[-8:, -8:] = 65535
    data[20:30, 20:30] = 16384
    im = Image.fromarray(data)
    assert im.mode == "I;16"
    path = save(im, tmp_path / "deep.png")
    assert Image.open(path).getextrema() == (0, 65535)  # really a 16-bit file

    decoded = decode_image(path)

    assert decoded.image.mode == "RGB"
    assert close(pixel(decoded, (40, 40)), (128, 128, 128), tol=1)
    assert close(pixel(decoded, (25, 25)), (64, 64, 64), tol=1)
    assert pixel(decoded, (0, 0)) == (0, 0, 0)
    assert pixel(decoded, (63, 63)) == WHITE


def test_float_tiff_in_unit_range_is_scaled(tmp_path: Path) -> None:
    data = np.full((16, 16), 0.5, dtype=np.float32)
    decoded = decode_image(save(Image.fromarray(data), tmp_path / "float.tif"))
    assert close(pixel(decoded, (4, 4)), (128, 128, 128), tol=1)


def test_greyscale_and_one_bit(tmp_path: Path) -> None:
    grey = decode_image(save(Image.new("L", (20, 20), 100), tmp_path / "grey.png"))
    assert pixel(grey, (3, 3)) == (100, 100, 100)

    bits = Image.new("1", (20, 20), 0)
    bits.paste(1, (10, 0, 20, 20))
    decoded = decode_image(save(bits, tmp_path / "bits.png"))
    assert decoded.image.mode == "RGB"
    assert pixel(decoded, (3, 3)) == (0, 0, 0)
    assert pixel(decoded, (15, 3)) == WHITE


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("anim.gif", {"duration": 100, "loop": 0}),
        ("anim.webp", {"duration": 100, "loop": 0, "lossless": True}),
        ("anim.png", {"duration": 100, "loop": 0}),  # APNG
    ],
)
def test_animation_gives_first_frame(tmp_path: Path, name: str, params: dict[str, object]) -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, BLUE, GREEN)]
    path = save(frames[0], tmp_path / name, save_all=True, append_images=frames[1:], **params)
    with Image.open(path) as check:
        assert getattr(check, "n_frames", 1) == 3

    decoded = decode_image(path)

    assert decoded.image.mode == "RGB"
    assert close(pixel(decoded, (16, 16)), RED, tol=4)


def test_multipage_tiff_gives_first_page(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (32, 32), colour) for colour in (GREEN, RED)]
    path = save(pages[0], tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    decoded = decode_image(path)
    assert pixel(decoded, (16, 16)) == GREEN


# --- failures ------------------------------------------------------------------------


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims a size but holds garbage pixels: decoding them would fail."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"junk") + chunk(b"IEND", b"")
    )
    return path


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    path = png_header_only(tmp_path / "bomb.png", 12_000, 12_000)
    with pytest.raises(DecodeError) as info:
        decode_image(path, max_pixels=100_000_000)
    assert info.value.reason == (
        "image too large: 12000x12000 = 144 MP exceeds the 100 MP limit (ASSETLENS_MAX_PIXELS)"
    )
    assert DEFAULT_MAX_PIXELS == 100_000_000


def test_pillow_hard_limit_is_reported_the_same_way(tmp_path: Path) -> None:
    path = png_header_only(tmp_path / "bomb.png", 20_000, 20_000)
    with pytest.raises(DecodeError, match=r"image too large: 400 MP exceeds the 100 MP limit"):
        decode_image(path)


def test_small_pixel_limit(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (20, 10), RED), tmp_path / "tiny.png")
    with pytest.raises(DecodeError, match=r"20x10 = 200 pixels exceeds the 100 pixels limit"):
        decode_image(path, max_pixels=100)


@pytest.mark.parametrize("source", ["cat.jpg", "png"])
def test_truncated_files_fail(tmp_path: Path, source: str) -> None:
    if source == "png":
        noise = np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(noise).save(buffer, "PNG")
        data = buffer.getvalue()
    else:
        data = (PHOTOS / source).read_bytes()
    path = tmp_path / f"cut.{source.rsplit('.', 1)[-1]}"
    path.write_bytes(data[: len(data) * 6 // 10])

    with pytest.raises(DecodeError, match="truncated or corrupt image data") as info:
        decode_image(path)
    assert info.value.path == path


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"hello, I am a text file\n" * 20, "not an image Pillow can read"),
        (bytes(range(256)) * 8, "not an image Pillow can read"),
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64, "HEIC/HEIF image"),
    ],
)
def test_non_images_fail_with_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(DecodeError) as info:
        decode_image(path)
    assert info.value.reason.startswith(reason)
    assert str(info.value) == f"{path}: {info.value.reason}"
    assert isinstance(info.value, EnrichError)


def test_corrupt_jpeg_body_fails(tmp_path: Path) -> None:
    data = bytearray((PHOTOS / "coffee.jpg").read_bytes())
    data[len(data) // 3 :] = b"\xff" * (len(data) - len(data) // 3)
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(DecodeError):
        decode_image(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="file not found"):
        decode_image(tmp_path / "nope.jpg")
    with pytest.raises(DecodeError, match="directory"):
        decode_image(tmp_path)


def test_decode_error_pickles() -> None:
    error = pickle.loads(pickle.dumps(DecodeError(Path("a/b.jpg"), "broken")))
    assert (error.path, error.reason, str(error)) == (Path("a/b.jpg"), "broken", "a/b.jpg: broken")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        decode_image(PHOTOS / "cat.jpg", min_side=0)


# --- metadata ------------------------------------------------------------------------


def test_exif_date_camera_lens_gps_are_read(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D"
    exif[0x010E] = "Harbour at dawn"
    exif[0x013B] = "Jane Doe"
    exif[0x8298] = "(c) 2021 Jane Doe"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2021:06:01 12:34:56"
    sub[0x9011] = "+02:00"
    sub[0xA434] = "EF 50mm f/1.8"
    sub[0x829A] = 0.004  # ExposureTime, a rational
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
    gps[3], gps[4] = "W", (13.0, 24.0, 36.0)
    path = save(Image.new("RGB", (64, 48), RED), tmp_path / "exif.jpg", exif=exif)

    meta = decode_image(path).metadata

    assert meta.created == "2021-06-01T12:34:56+02:00"
    assert meta.camera == "Canon EOS 5D"
    assert meta.lens == "EF 50mm f/1.8"
    assert meta.gps is not None
    assert meta.gps == pytest.approx((52.52, -13.41))
    assert meta.description == "Harbour at dawn"
    assert meta.creator == "Jane Doe"
    assert meta.copyright == "(c) 2021 Jane Doe"
    assert meta.exif["Make"] == "Canon"
    assert meta.exif["ExposureTime"] == pytest.approx(0.004)
    assert meta.exif["GPSInfo"]["GPSLatitudeRef"] == "N"
    assert json.loads(json.dumps(meta.as_dict()))["gps"] == pytest.approx([52.52, -13.41])


def test_camera_make_not_repeated(tmp_path: Path) -> None:
    for make, model, expected in [
        ("NIKON CORPORATION", "NIKON D850", "NIKON D850"),
        ("Apple", "iPhone 12", "Apple iPhone 12"),
    ]:
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = make, model
        path = save(Image.new("RGB", (8, 8)), tmp_path / "cam.jpg", exif=exif)
        assert decode_image(path).metadata.camera == expected


XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"
    xmlns:ps="http://ns.adobe.com/photoshop/1.0/"
    ps:DateCreated="2019-07-14T08:30:00Z">
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Lighthouse</rdf:li></rdf:Alt></dc:title>
   <dc:description><rdf:Alt>
     <rdf:li xml:lang="fr-FR">Phare au coucher du soleil</rdf:li>
     <rdf:li xml:lang="x-default">Lighthouse at sunset</rdf:li>
   </rdf:Alt></dc:description>
   <dc:creator><rdf:Seq><rdf:li>Ana Lima</rdf:li></rdf:Seq></dc:creator>
   <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">© 2019 Ana Lima</rdf:li></rdf:Alt></dc:rights>
   <xmpRights:UsageTerms><rdf:Alt>
     <rdf:li xml:lang="x-default">Editorial use only</rdf:li>
   </rdf:Alt></xmpRights:UsageTerms>
   <dc:subject><rdf:Bag>
     <rdf:li>lighthouse</rdf:li><rdf:li>sea</rdf:li><rdf:li>Sunset</rdf:li><rdf:li>sea</rdf:li>
   </rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def test_xmp_fields_are_read(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (64, 48), BLUE), tmp_path / "xmp.jpg", xmp=XMP.encode())

    meta = decode_image(path).metadata

    assert meta.title == "Lighthouse"
    assert meta.description == "Lighthouse at sunset"
    assert meta.creator == "Ana Lima"
    assert meta.copyright == "© 2019 Ana Lima"
    assert meta.usage_terms == "Editorial use only"
    assert meta.keywords == ("lighthouse", "sea", "Sunset")
    assert meta.created == "2019-07-14T08:30:00+00:00"
    assert meta.xmp["photoshop:DateCreated"] == "2019-07-14T08:30:00Z"  # canonical prefix
    assert meta.xmp["dc:subject"] == ["lighthouse", "sea", "Sunset", "sea"]
    json.dumps(meta.as_dict())


def test_xmp_in_png(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP)
    path = save(Image.new("RGB", (16, 16)), tmp_path / "xmp.png", pnginfo=info)
    assert decode_image(path).metadata.title == "Lighthouse"


def test_xmp_with_doctype_or_bad_xml_is_dropped() -> None:
    evil = '<!DOCTYPE x [<!ENTITY a "aaaa">]>' + XMP
    assert parse_xmp(evil) == {}
    assert parse_xmp(b"<x:xmpmeta><rdf:RDF><unclosed") == {}
    assert parse_xmp(None) == {}


def iptc_app13(datasets: list[tuple[int, int, bytes]]) -> bytes:
    """An APP13 "Photoshop 3.0" segment whose 0x0404 resource holds IPTC-IIM datasets."""
    iim = b"".join(b"\x1c" + bytes([rec, ds]) + struct.pack(">H", len(v)) + v for rec, ds, v in datasets)
    if len(iim) % 2:
        iim += b"\x00"
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim)) + iim
    body = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def jpeg_without_xmp() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), GREEN).save(buffer, "JPEG")
    return buffer.getvalue()


def test_iptc_fields_are_read(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), GREEN).save(buffer, "JPEG", xmp=XMP.encode())
    jpeg = buffer.getvalue()
    segment = iptc_app13(
        [
            (1, 90, b"\x1b%G"),  # UTF-8
            (2, 5, b"Cafe terrace"),
            (2, 25, "café".encode()),
            (2, 25, b"street"),
            (2, 25, b"SEA"),  # duplicate of the XMP "sea", case aside
            (2, 80, b"Bo Berg"),
            (2, 116, b"Bo Berg Photo AB"),
            (2, 120, b"Tables outside a cafe"),
        ]
    )
    path = tmp_path / "iptc.jpg"
    path.write_bytes(jpeg[:2] + segment + jpeg[2:])

    meta = decode_image(path).metadata

    # XMP wins for single values; keywords merge IPTC first, then XMP.
    assert meta.keywords == ("café", "street", "SEA", "lighthouse", "Sunset")
    assert meta.title == "Lighthouse"
    assert meta.creator == "Ana Lima"

    path.write_bytes(jpeg[:2] + segment + jpeg_without_xmp()[2:])
    meta = decode_image(path).metadata
    assert meta.title == "Cafe terrace"
    assert meta.creator == "Bo Berg"
    assert meta.copyright == "Bo Berg Photo AB"
    assert meta.description == "Tables outside a cafe"
    assert meta.keywords == ("café", "street", "SEA")


def test_bad_metadata_never_fails_the_decode(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    bad_exif, bad_xmp = b"Exif\x00\x00II*\x00garbage!", b"<x:xmpmeta><broken"
    Image.new("RGB", (64, 48), RED).save(buffer, "JPEG", exif=bad_exif, xmp=bad_xmp)
    path = tmp_path / "badmeta.jpg"
    path.write_bytes(buffer.getvalue())

    decoded = decode_image(path)

    assert close(pixel(decoded, (10, 10)), RED)
    assert decoded.metadata.xmp == {}
    assert decoded.metadata.created is None


def test_as_dict_is_json_serialisable_with_defaults() -> None:
    meta = ImageMetadata(width=3, height=2)
    assert json.loads(json.dumps(meta.as_dict())) == {
        "width": 3,
        "height": 2,
        "created": None,
        "camera": None,
        "lens": None,
        "gps": None,
        "keywords": [],
        "title": None,
        "description": None,
        "creator": None,
        "copyright": None,
        "usage_terms": None,
        "exif": {},
        "xmp": {},
    }


def test_unicode_and_spaces_in_path(tmp_path: Path) -> None:
    folder = tmp_path / "ünï cødé"
    folder.mkdir()
    path = save(Image.new("RGB", (30, 20), GREEN), folder / "photo 1.jpg")
    decoded = decode_image(path)
    assert decoded.image.size == (30, 20)
    assert close(pixel(decoded, (15, 10)), GREEN)


# --- real photographs ----------------------------------------------------------------


def test_sample_folder_is_small_and_licensed() -> None:
    photos = sorted(PHOTOS.glob("*.jpg"))
    assert len(photos) >= 6
    assert sum(p.stat().st_size for p in PHOTOS.iterdir()) < 1_500_000
    assert "BSD" in (PHOTOS / "LICENSE.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(p.name for p in PHOTOS.glob("*.jpg")))
def test_real_photos_decode_to_rgb(name: str) -> None:
    decoded = decode_image(PHOTOS / name)
    full = (decoded.metadata.width, decoded.metadata.height)
    assert decoded.image.mode == "RGB"
    assert min(decoded.image.size) >= min(224, *full)
    assert decoded.image.size[0] <= full[0] and decoded.image.size[1] <= full[1]
    assert np.asarray(decoded.image).std() > 10  # real content, not a blank frame
    json.dumps(decoded.metadata.as_dict())


def test_real_photo_metadata_prefers_xmp_create_date_over_exif_datetime() -> None:
    # The Hubble file's EXIF DateTime is Photoshop's last save (2012-09-17); XMP keeps
    # the creation date.
    meta = decode_image(PHOTOS / "hubble_deep_field.jpg").metadata
    assert meta.created == "2012-06-29T09:29:00-04:00"
    assert meta.exif["Software"] == "Adobe Photoshop CS5 Macintosh"
    assert (meta.width, meta.height) == (1000, 872)
