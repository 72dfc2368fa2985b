"""Readers of the descriptive blocks embedded in still images: XMP packets and IPTC-IIM.

Both are best effort, like the rest of :mod:`enrich.metadata`, which merges them with EXIF.
XMP is parsed with the standard library (no ``defusedxml`` dependency); packets with a DTD
are refused so entity tricks cannot apply, and XMP never legitimately carries one.
"""

import io
import re
import xml.etree.ElementTree as ET
from typing import Any

from PIL import Image, IptcImagePlugin

__all__ = ["parse_xmp", "read_iptc"]


_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_PREFIXES = {  # canonical prefixes, so keys do not depend on what the writer chose
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://ns.adobe.com/xap/1.0/rights/": "xmpRights",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://cipa.jp/exif/1.0/": "exifEX",
    "http://ns.adobe.com/exif/1.0/aux/": "aux",
    "http://ns.adobe.com/tiff/1.0/": "tiff",
    "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/": "Iptc4xmpCore",
    "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt",
    "http://ns.adobe.com/lightroom/1.0/": "lr",
}
_SKIP_NS = (
    "http://ns.adobe.com/xap/1.0/mm/",
    "http://ns.adobe.com/xap/1.0/sType/",
    "http://ns.adobe.com/camera-raw-settings/1.0/",
)
_SKIP_PROPS = frozenset({"photoshop:History", "photoshop:DocumentAncestors"})
_MAX_XMP_BYTES = 4 << 20
_XMP_ROOT = re.compile(rb"<(?:[\w.-]+:)?(?:xmpmeta|xapmeta|RDF)\b")


# --- IPTC ---------------------------------------------------------------------------


def read_iptc(im: Image.Image) -> dict[str, list[str]]:
    """Return IPTC-IIM datasets as ``{"2:25": [...]}``; only JPEG and TIFF carry them."""
    if not isinstance(im, Image.Image) or im.format not in ("JPEG", "MPO", "TIFF"):
        return {}
    info = IptcImagePlugin.getiptcinfo(im) or {}  # type: ignore[arg-type]
    charset = info.get((1, 90))
    # 1:90 "ESC % G" declares UTF-8; without it, UTF-8 is still the common case today,
    # and Latin-1 never fails for the legacy rest.
    utf8_declared = isinstance(charset, bytes) and b"\x1b%G" in charset
    out: dict[str, list[str]] = {}
    for (record, dataset), raw in info.items():
        if record != 2:
            continue
        texts = []
        for item in raw if isinstance(raw, list) else [raw]:
            try:
                text = item.decode("utf-8")
            except UnicodeDecodeError:
                text = item.decode("utf-8" if utf8_declared else "latin-1", "replace")
            if text := text.strip("\x00 \t\r\n"):
                texts.append(text)
        if texts:
            out[f"2:{dataset}"] = texts
    return out


# --- XMP ----------------------------------------------------------------------------


def parse_xmp(packet: bytes | str | None) -> dict[str, Any]:
    """Parse an XMP packet into ``{"prefix:Name": value}``.

    Simple values are strings, ``rdf:Bag``/``rdf:Seq`` lists of strings, ``rdf:Alt`` the
    ``x-default`` (else first) alternative, and structures nested dicts.

    Args:
        packet: The raw packet, as Pillow stores it in ``im.info["xmp"]``.

    Returns:
        The properties; empty when the packet is missing, too large or malformed.
    """
    if not packet:
        return {}
    data = packet.encode("utf-8") if isinstance(packet, str) else bytes(packet)
    if len(data) > _MAX_XMP_BYTES or b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return {}
    start = _XMP_ROOT.search(data)
    if not start:
        return {}
    end = data.rfind(b">", start.start())
    data = data[start.start() : end + 1]  # drop the xpacket wrapper, padding and NULs
    doc_prefixes: dict[str, str] = {}
    root: ET.Element | None = None
    try:
        for event, item in ET.iterparse(io.BytesIO(data), events=("start", "start-ns")):
            if event == "start-ns":
                doc_prefixes.setdefault(item[1], item[0])
            elif root is None:
                root = item
    except ET.ParseError:
        return {}
    if root is None:
        return {}
    rdfs = [root] if root.tag == f"{_RDF}RDF" else list(root.iter(f"{_RDF}RDF"))
    props: dict[str, Any] = {}
    for rdf in rdfs:
        for description in rdf.findall(f"{_RDF}Description"):
            for key, value in _xmp_props(description, doc_prefixes, 0).items():
                props.setdefault(key, value)
    return props


def _xmp_name(tag: str, doc_prefixes: dict[str, str]) -> str | None:
    uri, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    if uri.startswith(_SKIP_NS) or uri == _RDF[1:-1] or uri.endswith("/XML/1998/namespace"):
        return None
    name = f"{_PREFIXES.get(uri) or doc_prefixes.get(uri) or uri}:{local}"
    return None if name in _SKIP_PROPS else name


def _xmp_props(node: ET.Element, doc_prefixes: dict[str, str], depth: int) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for attr, value in node.attrib.items():  # the attribute shorthand for simple values
        if (name := _xmp_name(attr, doc_prefixes)) and value.strip():
            props.setdefault(name, value.strip())
    for child in node:
        if (name := _xmp_name(child.tag, doc_prefixes)) is not None:
            value = _xmp_value(child, doc_prefixes, depth)
            if value not in (None, "", [], {}):
                props.setdefault(name, value)
    return props


def _xmp_value(node: ET.Element, doc_prefixes: dict[str, str], depth: int) -> Any:
    if (resource := node.get(f"{_RDF}resource")) is not None:
        return resource
    children = list(node)
    if not children:
        return (node.text or "").strip() or None
    first = children[0]
    if first.tag in (f"{_RDF}Bag", f"{_RDF}Seq"):
        items = (_xmp_value(li, doc_prefixes, depth + 1) for li in first.findall(f"{_RDF}li"))
        return [v for v in items if v not in (None, "", {})]
    if first.tag == f"{_RDF}Alt":
        alternatives = first.findall(f"{_RDF}li")
        default = [li for li in alternatives if li.get(_XML_LANG) == "x-default"]
        chosen = default or alternatives
        return _xmp_value(chosen[0], doc_prefixes, depth + 1) if chosen else None
    if depth >= 4:  # deep structures are tool-private; stop rather than recurse forever
        return None
    if (value := node.find(f"{_RDF}value")) is not None:  # qualified simple value
        return (value.text or "").strip() or None
    container = first if first.tag == f"{_RDF}Description" else node
    return _xmp_props(container, doc_prefixes, depth + 1) or None
