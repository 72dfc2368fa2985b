"""Folder walker: find image, video and audio files under the given roots.

The kind of a file is decided by its content (magic bytes), never by its extension, because
DAM libraries are full of mislabelled files. Extensions only decide whether an unrecognised
file is worth reporting: a ``.jpg`` that is not an image lands in the failure log, a ``.txt``
is silently ignored. Standard library only, so scanning never pays for model imports.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from assetlens.enrich.errors import PathNotFoundError

Kind = Literal["image", "video", "audio"]

HEAD_SIZE = 512  # 64 bytes settle every format but MPEG-TS, whose sync bytes repeat every 188

_EXT_KIND: dict[str, str] = {
    f".{ext}": kind
    for kind, exts in (
        ("image", "jpg jpeg jpe jfif png gif webp tif tiff bmp dib ico heic heif hif avif jxl"),
        ("video", "mp4 m4v mov qt mkv webm avi ts m2ts mts flv f4v mpg mpeg m2v vob 3gp 3g2 wmv"),
        ("video", "asf ogv"),
        ("audio", "mp3 wav flac ogg oga opus m4a m4b aac aif aiff aifc amr wma caf au"),
    )
    for ext in exts.split()
}
MEDIA_EXTENSIONS: frozenset[str] = frozenset(_EXT_KIND)

# Prefixes long enough that no text file starts with them (hence the version bytes after
# ID3, OggS, caff), checked in order; RIFF, ftyp, EBML and MPEG sync need more logic.
# Ogg may carry Theora video, but is nearly always audio; the probe stage corrects the rest.
# fmt: off
_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"),
    (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"), (b"\xff\x0a", "image/jxl"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "image/jxl"), (b"FLV\x01", "video/x-flv"),
    (b"\x00\x00\x01\xba", "video/mpeg"), (b"\x00\x00\x01\xb3", "video/mpeg"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "video/x-ms-asf"), (b"ID3\x02", "audio/mpeg"),
    (b"ID3\x03", "audio/mpeg"), (b"ID3\x04", "audio/mpeg"), (b"fLaC", "audio/flac"),
    (b"OggS\x00", "audio/ogg"), (b"#!AMR-WB\n", "audio/amr-wb"), (b"#!AMR\n", "audio/amr"),
    (b"caff\x00\x01", "audio/x-caf"), (b".snd\x00\x00\x00", "audio/basic"),
)
_RIFF = {b"WEBP": "image/webp", b"AVI ": "video/x-msvideo", b"WAVE": "audio/wav"}
# fmt: on
# ISO-BMFF brands, "|"-separated because some contain spaces.
_HEIC = set(b"heic|heix|hevc|hevx|heim|heis".split(b"|"))
_AVIF = {b"avif", b"avis"}
_AUDIO_BRANDS = set(b"M4A |M4B |M4P |F4A |F4B ".split(b"|"))
_VIDEO_BRANDS = set(
    b"isom|iso2|iso3|iso4|iso5|iso6|mp41|mp42|mp71|avc1|dash|M4V |M4VH|M4VP|f4v |F4V |F4P "
    b"|mmp4|MSNV|XAVC|NDAS|qt  ".split(b"|")
)
_COMPAT_BRANDS = (
    (_AVIF, "image/avif"),
    (_HEIC, "image/heic"),
    ({b"mif1", b"msf1"}, "image/heif"),
    (_AUDIO_BRANDS, "audio/mp4"),
    (_VIDEO_BRANDS, "video/mp4"),
)
_FTYP_PREFIX = {b"qt ": "video/quicktime", b"3gp": "video/3gpp", b"3g2": "video/3gpp2"}
_BMP_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}


@dataclass(frozen=True)
class Candidate:
    """A media file found by the scan."""

    path: Path  # absolute but not symlink-resolved, so a symlinked file keeps its own name
    kind: Kind
    mime: str
    size: int
    mtime: float


@dataclass(frozen=True)
class ScanFailure:
    """A path that could not become a candidate, and a human readable reason."""

    path: Path
    reason: str


def _sniff_ftyp(head: bytes) -> str | None:
    """Classify an ISO-BMFF file (MP4, MOV, 3GP, M4A, HEIF, AVIF) by its ftyp brands."""
    major, end = head[8:12], min(int.from_bytes(head[:4], "big"), len(head))
    brands = {major, *(head[i : i + 4] for i in range(16, end - 3, 4))}
    if major in _AUDIO_BRANDS:  # first: an M4A is an MP4 too, but it must be audio
        return "audio/mp4"
    if major[:3] in _FTYP_PREFIX:
        return _FTYP_PREFIX[major[:3]]
    if major in _VIDEO_BRANDS:
        return "video/mp4"
    # Otherwise the compatible brands decide; generic HEIF (mif1) names its codec only there.
    return next((mime for group, mime in _COMPAT_BRANDS if brands & group), None)


def _sniff_mime(head: bytes) -> str | None:
    for magic, mime in _PREFIXES:
        if head.startswith(magic):
            return mime
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if head[4:8] in (b"moov", b"mdat", b"wide", b"pnot"):  # QuickTime from before ftyp
        return "video/quicktime"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML; its DocType sits in the first bytes
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return "image/bmp"  # "BM" alone is too weak: text may start with it
    if head.startswith(b"\x00\x00\x01\x00") and head[4:6] != b"\x00\x00":
        return "image/x-icon"  # reserved 0, type 1 (icon), non-zero image count
    for skip in (0, 4):  # MPEG-TS (188-byte packets), M2TS (4-byte timecode + packet)
        step = 188 + skip
        if len(head) > skip + 2 * step and all(head[skip + i * step] == 0x47 for i in range(3)):
            return "video/mp2t"
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    # MPEG audio frame sync; reserved field values rule out noise. Layer 00 means AAC ADTS.
    if head[1] & 0xF6 == 0xF0:
        return "audio/aac" if (head[2] >> 2) & 0xF < 13 else None
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bad = version == 1 or layer == 0 or head[2] >> 4 == 15 or (head[2] >> 2) & 3 == 3
    return None if bad else "audio/mpeg"


def sniff(head: bytes) -> tuple[Kind, str] | None:
    """Identify a media format from the start of a file.

    Args:
        head: The first bytes of the file; 64 settle every format except MPEG-TS, which
            needs three packets (377+ bytes) to be told from noise.

    Returns:
        ``(kind, mime)``, or None if the content is not a recognised media format.
    """
    mime = _sniff_mime(head)
    return None if mime is None else (cast(Kind, mime.partition("/")[0]), mime)


def sniff_file(path: Path) -> tuple[Kind, str] | None:
    """Identify a file's media format from its first :data:`HEAD_SIZE` bytes.

    Raises:
        OSError: If the file cannot be opened or read.
    """
    # O_NONBLOCK: a FIFO slipped in under a media name must not hang the scan.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        head = b""
        while len(head) < HEAD_SIZE and (chunk := os.read(fd, HEAD_SIZE - len(head))):
            head += chunk
    finally:
        os.close(fd)
    return sniff(head)


# Compiled globs: one regex for the path relative to its root, one for the bare name.
_Globs = tuple[re.Pattern[str], re.Pattern[str]]


def _compile(patterns: Sequence[str]) -> _Globs:
    """Compile fnmatch globs, spelling out ``**``: ``**/`` may match no folder at all, and
    ``x/**`` also matches the folder ``x`` itself (so an exclude of it prunes the walk).
    As in .gitignore, only patterns without a ``/`` match the bare name at any depth."""
    todo, seen = list(patterns), set(patterns)
    while todo:
        p = todo.pop()
        alts = [p[: m.start()] + p[m.end() :] for m in re.finditer(r"\*\*/", p)]
        for alt in alts + ([p[:-3]] if p.endswith("/**") else []):
            if alt and alt not in seen:
                seen.add(alt)
                todo.append(alt)

    def join(ps: Iterable[str]) -> re.Pattern[str]:  # "(?!)" never matches
        return re.compile("|".join(fnmatch.translate(os.path.normcase(p)) for p in ps) or "(?!)")

    return join(sorted(seen)), join(p for p in patterns if "/" not in p)


def _matches(globs: _Globs, rel: str, name: str) -> bool:
    return bool(globs[0].match(os.path.normcase(rel)) or globs[1].match(os.path.normcase(name)))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")  # os.fsdecode keeps undecodable bytes as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def path_uri(path: Path | str) -> str:
    """The text a path is stored under: the path itself, or for a name that is not UTF-8, its
    bytes with the undecodable ones escaped (``caf\\xe9.jpg``), which SQLite can store."""
    text = os.fspath(path)
    return text if _is_utf8(text) else os.fsencode(text).decode("utf-8", "backslashreplace")


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return (exc.strerror or type(exc).__name__).lower()


def scan(
    roots: Sequence[Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    include_hidden: bool = False,
) -> Iterator[Candidate | ScanFailure]:
    """Walk roots (files or folders) in sorted order; yield media files and failures.

    Symlinks are followed, but each real folder is entered once. Per-file problems become
    :class:`ScanFailure` items, never exceptions. Globs match the path relative to its root
    (posix) or the bare name; an exclude that matches a folder prunes it.

    Args:
        roots: Files or folders to scan; explicit roots are never skipped as hidden.
        include: If given, only files matching one of these patterns are kept.
        exclude: Files and folders matching any of these patterns are skipped.
        include_hidden: Also walk names starting with ``.``.

    Returns:
        A lazy iterator of candidates and failures.

    Raises:
        PathNotFoundError: At call time, if a root does not exist (a usage error).
    """
    # Checked here, not in the generator, so a typo fails before any work starts.
    abs_roots = list(dict.fromkeys(os.path.abspath(os.fspath(r)) for r in roots))
    for root in abs_roots:
        if not os.path.lexists(root):
            raise PathNotFoundError(root)
    inc = _compile(include) if include else None
    return _walk(abs_roots, inc, _compile(exclude), include_hidden)


def _walk(
    roots: list[str], inc: _Globs | None, exc: _Globs, hidden: bool
) -> Iterator[Candidate | ScanFailure]:
    visited: set[tuple[int, int]] = set()  # shared by all roots, so overlaps are walked once
    # Entries still to visit, deepest folder last: (parent path, parent rel, sorted entries).
    # An explicit stack rather than recursion, so deep trees cannot hit the recursion limit.
    stack: list[tuple[str, str, Iterator[str | os.DirEntry[str]]]] = [("", "", iter(roots))]
    while stack:
        parent, parent_rel, items = stack[-1]
        if (item := next(items, None)) is None:
            stack.pop()
            continue
        is_root = isinstance(item, str)  # explicit roots: never hidden, rel is just the name
        path = item if isinstance(item, str) else os.path.join(parent, item.name)
        name = os.path.basename(path)
        rel = f"{parent_rel}/{name}" if parent_rel else name
        if not is_root and not hidden and name.startswith("."):
            continue
        if not is_root and _matches(exc, rel, name):
            continue  # before any stat: an excluded folder is pruned, never even listed
        if not _is_utf8(path if is_root else name):
            # SQLite stores text as UTF-8: such a name could only be kept mangled, and the
            # asset could never be found from it again. Reported once, not descended into.
            yield ScanFailure(Path(path), "file name is not valid UTF-8: rename it (e.g. with convmv)")
            continue
        try:
            # Follows symlinks, as the scan deliberately does; DirEntry caches what it can.
            st = os.stat(path) if isinstance(item, str) else item.stat()
            if stat.S_ISDIR(st.st_mode) and not st.st_ino:  # Windows DirEntry leaves it 0
                st = os.stat(path)
        except FileNotFoundError:
            if os.path.islink(path):
                yield ScanFailure(Path(path), "broken symbolic link")
            continue  # otherwise it vanished between listing and stat
        except OSError as e:
            yield ScanFailure(Path(path), f"cannot access: {_why(e)}")
            continue
        if stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in visited:
                continue  # a symlink loop, or a folder reached twice
            visited.add((st.st_dev, st.st_ino))
            try:
                with os.scandir(path) as it:
                    children = sorted(it, key=lambda entry: entry.name)
            except FileNotFoundError:
                continue
            except OSError as e:
                yield ScanFailure(Path(path), f"cannot read folder: {_why(e)}")
                continue
            stack.append((path, "" if is_root else rel, iter(children)))
        elif stat.S_ISREG(st.st_mode):
            if (inc and not _matches(inc, rel, name)) or (is_root and _matches(exc, rel, name)):
                continue
            yield from _check_file(path, st)
        # Sockets, FIFOs and devices are never media; opening a FIFO could even block.


def _check_file(path: str, st: os.stat_result) -> Iterator[Candidate | ScanFailure]:
    """Sniff one regular file and yield its candidate, its failure, or nothing."""
    try:
        found = sniff_file(Path(path)) if st.st_size else None
    except FileNotFoundError:
        return
    except OSError as e:
        yield ScanFailure(Path(path), f"cannot read file: {_why(e)}")
        return
    if found is not None:
        yield Candidate(Path(path), found[0], found[1], st.st_size, st.st_mtime)
        return
    ext = os.path.splitext(path)[1].lower()
    if kind := _EXT_KIND.get(ext):  # only files that claim to be media earn a failure
        what = "content is not a recognised image, video or audio format"
        what = what if st.st_size else "file is empty"
        article = "a" if kind == "video" else "an"
        yield ScanFailure(Path(path), f"{what} (extension {ext} suggests {article} {kind})")
