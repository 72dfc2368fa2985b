"""Tests for enrich.scan: content sniffing and the folder walker, on real files."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tempfile
import wave
from pathlib import Path

import pytest
from PIL import Image, features

from assetlens.enrich.scan import MEDIA_EXTENSIONS, Candidate, ScanFailure, path_uri, scan, sniff, sniff_file


def _image_bytes(fmt: str, **save_args: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, fmt, **save_args)
    return buf.getvalue()


PNG = _image_bytes("PNG")
JPEG = _image_bytes("JPEG")


def _write(path: Path, data: bytes = PNG) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _run(*roots: Path, **kwargs: object) -> tuple[list[Candidate], list[ScanFailure]]:
    items = list(scan(list(roots), **kwargs))  # type: ignore[arg-type]
    assert all(isinstance(i, Candidate | ScanFailure) for i in items)
    return (
        [i for i in items if isinstance(i, Candidate)],
        [i for i in items if isinstance(i, ScanFailure)],
    )


def _rels(items: list[Candidate] | list[ScanFailure], root: Path) -> list[str]:
    return [i.path.relative_to(root).as_posix() for i in items]


# --- sniff: real files written by Pillow and the stdlib ---------------------------------------

PILLOW_FORMATS = [
    ("JPEG", {}, "image/jpeg"),
    ("PNG", {}, "image/png"),
    ("GIF", {}, "image/gif"),
    ("WEBP", {}, "image/webp"),
    ("TIFF", {}, "image/tiff"),
    ("TIFF", {"compression": "tiff_lzw"}, "image/tiff"),
    ("BMP", {}, "image/bmp"),
    ("ICO", {}, "image/x-icon"),
]


@pytest.mark.parametrize(("fmt", "args", "mime"), PILLOW_FORMATS)
def test_sniff_file_recognises_pillow_images(
    tmp_path: Path, fmt: str, args: dict[str, object], mime: str
) -> None:
    path = _write(tmp_path / "img.bin", _image_bytes(fmt, **args))
    assert sniff_file(path) == ("image", mime)


def test_sniff_file_recognises_pillow_avif(tmp_path: Path) -> None:
    if not features.check("avif"):
        pytest.skip("this Pillow build cannot write AVIF")
    path = _write(tmp_path / "img.avif", _image_bytes("AVIF"))
    assert sniff_file(path) == ("image", "image/avif")


def test_sniff_file_recognises_wave(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 800)
    assert sniff_file(path) == ("audio", "audio/wav")


# --- sniff: documented magic bytes for formats the stdlib cannot write --------------------------

EBML = b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08"
TS_PACKET = b"\x47\x40\x00\x10" + b"\xff" * 184

MAGIC = [
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image", "image/heic"),
    (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "image", "image/heic"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "image", "image/avif"),
    (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif", "image", "image/avif"),
    (b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00mif1", "image", "image/heif"),
    (b"\xff\x0a\xff\x07\x08\x83\x04\x0c", "image", "image/jxl"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n\x00\x00\x00\x14ftypjxl ", "image", "image/jxl"),
    (b"MM\x00*\x00\x00\x00\x08", "image", "image/tiff"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video", "video/mp4"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video", "video/mp4"),
    (b"\x00\x00\x00\x18ftypdash\x00\x00\x00\x00iso6mp41", "video", "video/mp4"),
    (b"\x00\x00\x00\x18ftypM4V \x00\x00\x00\x01M4V M4A ", "video", "video/mp4"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "video", "video/quicktime"),
    (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "video", "video/quicktime"),
    (b"\x00\x00\x00\x18ftyp3gp5\x00\x00\x00\x00isom3gp5", "video", "video/3gpp"),
    (b"\x00\x00\x00\x14ftyp3g2a\x00\x00\x00\x003g2a", "video", "video/3gpp2"),
    (b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00M4A isommp42", "audio", "audio/mp4"),
    (b"\x00\x00\x00\x1cftypM4B \x00\x00\x02\x00M4B isommp42", "audio", "audio/mp4"),
    (EBML + b"\x42\x82\x88matroska\x42\x87\x81\x04", "video", "video/x-matroska"),
    (EBML + b"\x42\x82\x84webm\x42\x87\x81\x04", "video", "video/webm"),
    (b"RIFF\x24\x00\x01\x00AVI LIST", "video", "video/x-msvideo"),
    (b"FLV\x01\x05\x00\x00\x00\x09", "video", "video/x-flv"),
    (b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01", "video", "video/mpeg"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa", "video", "video/x-ms-asf"),
    (TS_PACKET * 3, "video", "video/mp2t"),
    ((b"\x00\x00\x00\x00" + TS_PACKET) * 3, "video", "video/mp2t"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x23TSSE", "audio", "audio/mpeg"),
    (b"\xff\xfb\x90\x64\x00\x0f\xf0\x00", "audio", "audio/mpeg"),
    (b"\xff\xf1\x50\x80\x03\xdf\xfc", "audio", "audio/aac"),
    (b"\xff\xf9\x50\x80\x03\xdf\xfc", "audio", "audio/aac"),
    (b"fLaC\x00\x00\x00\x22\x12\x00", "audio", "audio/flac"),
    (b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01OpusHead", "audio", "audio/ogg"),
    (b"FORM\x00\x01\x40\x2eAIFFCOMM", "audio", "audio/aiff"),
    (b"FORM\x00\x01\x40\x2eAIFCFVER", "audio", "audio/aiff"),
    (b"RIFF\x24\x00\x01\x00WAVEfmt ", "audio", "audio/wav"),
    (b"#!AMR\n\x04c<", "audio", "audio/amr"),
    (b"#!AMR-WB\n\x04c<", "audio", "audio/amr-wb"),
    (b"caff\x00\x01\x00\x00desc", "audio", "audio/x-caf"),
    (b".snd\x00\x00\x00\x18\xff\xff\xff\xff\x00\x00\x00\x03", "audio", "audio/basic"),
]


@pytest.mark.parametrize(("head", "kind", "mime"), MAGIC, ids=[m for _, _, m in MAGIC])
def test_sniff_magic_bytes(head: bytes, kind: str, mime: str) -> None:
    assert sniff(head) == (kind, mime)
    assert sniff(head + b"\x00" * 600) == (kind, mime)  # trailing data never changes the verdict


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello, world\n",
        b"caffeine intake log",  # text that happens to begin with a magic word
        b"ID3 tags still to fix",
        b"OggS is the Ogg capture pattern",
        b"BM is how this text note begins, not a bitmap",
        b"\xff\xff\xff\xff",  # frame sync with reserved fields set: noise, not MP3
        b"RIFF\x24\x00\x00\x00XXXX",  # RIFF of an unknown type
        b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom"[:12],  # unknown ftyp brand
        b"G" + b"a" * 600,  # starts like an MPEG-TS packet but has no sync pattern
        TS_PACKET * 2,  # too short to prove the 188-byte rhythm
    ],
)
def test_sniff_rejects_non_media(head: bytes) -> None:
    assert sniff(head) is None


def test_media_extensions_are_lowercase_with_dot() -> None:
    assert {".jpg", ".png", ".mp4", ".mov", ".mp3", ".wav", ".tif"} <= MEDIA_EXTENSIONS
    assert all(e.startswith(".") and e == e.lower() for e in MEDIA_EXTENSIONS)
    assert ".txt" not in MEDIA_EXTENSIONS and ".xmp" not in MEDIA_EXTENSIONS


# --- scan: content beats extension ----------------------------------------------------------


def test_kind_comes_from_content_not_extension(tmp_path: Path) -> None:
    png_as_jpg = _write(tmp_path / "photo.jpg", PNG)
    jpeg_as_txt = _write(tmp_path / "notes.txt", JPEG)
    found, failed = _run(tmp_path)
    assert failed == []
    by_name = {c.path.name: c for c in found}
    assert by_name["photo.jpg"].mime == "image/png"
    assert by_name["notes.txt"] == Candidate(
        path=jpeg_as_txt,
        kind="image",
        mime="image/jpeg",
        size=len(JPEG),
        mtime=jpeg_as_txt.stat().st_mtime,
    )
    assert by_name["photo.jpg"].path == png_as_jpg and png_as_jpg.is_absolute()


def test_unrecognised_media_names_fail_and_others_are_ignored(tmp_path: Path) -> None:
    _write(tmp_path / "fake.jpg", b"this is plain text, not a JPEG\n")
    _write(tmp_path / "empty.png", b"")
    _write(tmp_path / "clip.MP4", b"<html>not a video</html>")
    _write(tmp_path / "readme.txt", b"just text")
    _write(tmp_path / "photo.xmp", b"<x:xmpmeta/>")
    _write(tmp_path / "empty.txt", b"")
    found, failed = _run(tmp_path)
    assert found == []
    reasons = {f.path.name: f.reason for f in failed}
    assert set(reasons) == {"fake.jpg", "empty.png", "clip.MP4"}
    assert reasons["fake.jpg"] == (
        "content is not a recognised image, video or audio format (extension .jpg suggests an image)"
    )
    assert reasons["empty.png"] == "file is empty (extension .png suggests an image)"
    assert reasons["clip.MP4"].endswith("(extension .mp4 suggests a video)")


def test_fifo_is_ignored_without_blocking(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "pipe.mp4")
    _write(tmp_path / "a.png")
    found, failed = _run(tmp_path)
    assert _rels(found, tmp_path) == ["a.png"] and failed == []


# --- scan: roots, order, names --------------------------------------------------------------


def test_nonexistent_root_raises_at_call_time(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        scan([tmp_path, tmp_path / "missing"])  # not even iterated


def test_file_roots_relative_roots_and_overlaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _write(tmp_path / "lib" / "a.png")
    _write(tmp_path / "lib" / "sub" / "b.png")
    found, _ = _run(a)
    assert [c.path for c in found] == [a]
    assert _run(a, include=["*.jpg"]) == _run(a, exclude=["a.*"]) == ([], [])  # globs still apply
    monkeypatch.chdir(tmp_path)
    found, _ = _run(Path("lib"), Path("lib/sub"), Path("lib"))
    assert _rels(found, tmp_path) == ["lib/a.png", "lib/sub/b.png"]
    assert all(c.path.is_absolute() for c in found)


def test_walk_order_is_sorted_and_deterministic(tmp_path: Path) -> None:
    for rel in ["z.png", "b/d.png", "a.png", "b.png", "b/c.png", "B.png"]:
        _write(tmp_path / rel)
    first = list(scan([tmp_path]))
    assert _rels([c for c in first if isinstance(c, Candidate)], tmp_path) == [
        "B.png",
        "a.png",
        "b/c.png",
        "b/d.png",
        "b.png",
        "z.png",
    ]
    assert list(scan([tmp_path])) == first


def test_unicode_spaces_and_newlines_in_names(tmp_path: Path) -> None:
    names = ["ünïcödé 写真.png", "with  spaces .jpg", "new\nline.png", "日本 フォルダ/é.png"]
    for name in names:
        _write(tmp_path / name)
    found, failed = _run(tmp_path)
    assert failed == []
    assert sorted(_rels(found, tmp_path)) == sorted(names)


# --- scan: hidden names and globs -----------------------------------------------------------


def test_hidden_files_and_folders(tmp_path: Path) -> None:
    for rel in ["v.png", ".hidden.png", ".cache/a.png", "sub/.thumbs/b.png"]:
        _write(tmp_path / rel)
    assert _rels(_run(tmp_path)[0], tmp_path) == ["v.png"]
    assert _rels(_run(tmp_path, include_hidden=True)[0], tmp_path) == [
        ".cache/a.png",
        ".hidden.png",
        "sub/.thumbs/b.png",
        "v.png",
    ]
    # Explicit roots are never skipped for being hidden.
    assert _rels(_run(tmp_path / ".cache", tmp_path / ".hidden.png")[0], tmp_path) == [
        ".cache/a.png",
        ".hidden.png",
    ]


@pytest.fixture
def globbed(tmp_path: Path) -> Path:
    for rel in ["a.png", "a.tmp", "raw/b.png", "sub/raw/c.png", "sub/d.jpg", "keep/e.png"]:
        _write(tmp_path / rel, JPEG if rel.endswith(".jpg") else PNG)
    return tmp_path


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ((), (), ["a.png", "a.tmp", "keep/e.png", "raw/b.png", "sub/d.jpg", "sub/raw/c.png"]),
        (("*.png",), (), ["a.png", "keep/e.png", "raw/b.png", "sub/raw/c.png"]),
        ((), ("*.tmp",), ["a.png", "keep/e.png", "raw/b.png", "sub/d.jpg", "sub/raw/c.png"]),
        ((), ("**/raw/**",), ["a.png", "a.tmp", "keep/e.png", "sub/d.jpg"]),
        ((), ("raw/**",), ["a.png", "a.tmp", "keep/e.png", "sub/d.jpg", "sub/raw/c.png"]),
        (("sub/**",), (), ["sub/d.jpg", "sub/raw/c.png"]),
        (("**/*.jpg", "keep/*"), (), ["keep/e.png", "sub/d.jpg"]),
        (("*.png",), ("sub", "*.tmp"), ["a.png", "keep/e.png", "raw/b.png"]),
    ],
)
def test_include_and_exclude_globs(
    globbed: Path, include: tuple[str, ...], exclude: tuple[str, ...], expected: list[str]
) -> None:
    found, failed = _run(globbed, include=include, exclude=exclude)
    assert failed == []
    assert _rels(found, globbed) == expected


def test_excluded_folder_is_pruned_not_just_filtered(tmp_path: Path) -> None:
    _write(tmp_path / "ok.png")
    # A broken link inside "raw" would be reported if the walk entered the folder at all.
    (tmp_path / "deep" / "raw").mkdir(parents=True)
    (tmp_path / "deep" / "raw" / "x.png").symlink_to(tmp_path / "missing")
    assert len(_run(tmp_path)[1]) == 1
    found, failed = _run(tmp_path, exclude=["raw"])
    assert _rels(found, tmp_path) == ["ok.png"] and failed == []


# --- scan: symlinks -------------------------------------------------------------------------


def test_symlink_loops_terminate_and_each_file_is_yielded_once(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "x.png")
    (tmp_path / "a" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "a" / "self").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "again").symlink_to("../a", target_is_directory=True)
    found, failed = _run(tmp_path)
    assert _rels(found, tmp_path) == ["a/x.png"] and failed == []


def test_self_referencing_symlink_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    found, failed = _run(tmp_path)
    assert found == []
    assert [(f.path.name, f.reason) for f in failed] == [("loop.jpg", "cannot access: symbolic link loop")]


def test_symlinked_file_and_folder_keep_their_own_names(tmp_path: Path) -> None:
    lib, outside = tmp_path / "lib", tmp_path / "outside"
    real = _write(lib / "real.png")
    (lib / "alias.jpg").symlink_to(real)
    _write(outside / "o.png")
    (lib / "linked").symlink_to(outside, target_is_directory=True)
    found, failed = _run(lib)
    assert failed == []
    assert _rels(found, lib) == ["alias.jpg", "linked/o.png", "real.png"]
    assert {c.mime for c in found} == {"image/png"}
    # A symlink given as a root is not resolved either.
    assert [c.path for c in _run(lib / "alias.jpg")[0]] == [lib / "alias.jpg"]


def test_broken_symlinks_are_failures(tmp_path: Path) -> None:
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "gone-dir").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    found, failed = _run(tmp_path)
    assert found == []
    assert [(f.path.name, f.reason) for f in failed] == [
        ("gone-dir", "broken symbolic link"),
        ("gone.jpg", "broken symbolic link"),
    ]
    assert _run(tmp_path / "gone.jpg")[1] == [failed[1]]  # also as an explicit root


# --- scan: unreadable things ----------------------------------------------------------------


def _scan_unprivileged(root: Path) -> list[tuple[str, str, str]]:
    """Scan as an unprivileged user: root reads everything, so drop to nobody in a fork."""

    def describe(items: list[Candidate | ScanFailure]) -> list[tuple[str, str, str]]:
        return [
            (type(i).__name__, i.path.relative_to(root).as_posix(), getattr(i, "reason", "")) for i in items
        ]

    if os.geteuid() != 0:
        return describe(list(scan([root])))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges for real, scan, report as JSON, never return
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with os.fdopen(write_fd, "w") as out:
                json.dump(describe(list(scan([root]))), out)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "scan failed in the unprivileged child"
    return [tuple(row) for row in json.loads(data)]


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions only")
def test_unreadable_folder_and_file_are_failures() -> None:
    # Not tmp_path: its parents are private to the current user, and as root the scan runs
    # as nobody, who must be able to reach the tree.
    root = Path(tempfile.mkdtemp(prefix="assetlens-scan-"))
    locked_dir = root / "locked"
    try:
        root.chmod(0o755)
        _write(root / "ok.png").chmod(0o644)
        _write(locked_dir / "inside.png")
        locked_file = _write(root / "secret.png")
        locked_dir.chmod(0)
        locked_file.chmod(0)
        rows = _scan_unprivileged(root)
    finally:
        locked_dir.chmod(stat.S_IRWXU)
        shutil.rmtree(root)
    assert rows == [
        ("ScanFailure", "locked", "cannot read folder: permission denied"),
        ("Candidate", "ok.png", ""),
        ("ScanFailure", "secret.png", "cannot read file: permission denied"),
    ]


def test_path_too_long_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    # A real OSError that even root gets: nest folders past PATH_MAX, creating them with
    # dir_fd since no single path to the bottom is valid.
    if os.mkdir not in os.supports_dir_fd:
        pytest.skip("needs mkdir(dir_fd=)")
    _write(tmp_path / "top.png")
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(24):  # 24 * 201 characters is well past Linux's 4096
            os.mkdir("d" * 200, dir_fd=fd)
            fd, parent = os.open("d" * 200, os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
    finally:
        os.close(fd)
    found, failed = _run(tmp_path)
    assert _rels(found, tmp_path) == ["top.png"]
    assert len(failed) == 1 and "too long" in failed[0].reason


def test_names_that_are_not_utf8_are_failures_with_a_storable_uri(tmp_path: Path) -> None:
    # Linux names are bytes; SQLite stores UTF-8 text. Such a file is reported, never a crash.
    bad_file = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.png"))
    bad_folder = Path(os.fsdecode(bytes(tmp_path) + b"/d\xfcr"))
    _write(bad_file)
    _write(bad_folder / "inside.png")
    _write(tmp_path / "café.png")

    found, failed = _run(tmp_path)

    assert _rels(found, tmp_path) == ["café.png"]
    assert sorted(f.path for f in failed) == sorted([bad_file, bad_folder])
    assert {f.reason for f in failed} == {"file name is not valid UTF-8: rename it (e.g. with convmv)"}
    assert path_uri(bad_file) == f"{tmp_path}/caf\\xe9.png"
    assert path_uri(tmp_path / "café.png") == f"{tmp_path}/café.png"
