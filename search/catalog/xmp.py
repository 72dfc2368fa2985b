"""XMP packets for sidecar files: written new, or merged into an existing sidecar.

A packet holds the standard properties DAM tools read (Lightroom, Bridge, darktable, digiKam,
exiftool): ``dc:subject`` (keywords, an ``rdf:Bag``), ``dc:title``, ``dc:description``,
``dc:rights`` and ``xmpRights:UsageTerms`` (language alternatives, ``x-default``) and
``dc:creator`` (an ``rdf:Seq``), plus AssetLens' own properties in the namespace
``https://assetlens.dev/ns/1.0/`` (prefix ``assetlens``):

* ``assetlens:assetId``, ``assetlens:uri``, ``assetlens:contentHash``, ``assetlens:exported``;
* ``assetlens:tags``: a bag of ``{assetlens:name, assetlens:score, assetlens:source, assetlens:time}``;
* ``assetlens:fields``: the DAM fields (``meta``), a bag of ``{assetlens:name, assetlens:value,
  assetlens:type}``, ``value`` being the text of a string and the JSON of anything else;
* ``assetlens:text``: the text read in the pictures (OCR), a bag of ``{assetlens:value,
  assetlens:box (x0 y0 x1 y1, fractions of the picture), assetlens:confidence, assetlens:time}``.
  Not ``dc:description``: that holds a person's caption, which OCR text must not replace;
* ``assetlens:subjects``: the keywords AssetLens added to ``dc:subject`` (so a later export
  removes only its own stale keywords, never the ones a person or another program set).

The XML is built with ElementTree, which escapes ``< & > "``; characters that XML 1.0 cannot hold
(control characters, lone surrogates) are dropped.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from assetlens.search.errors import SearchError

X = "adobe:ns:meta/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
XMP_RIGHTS = "http://ns.adobe.com/xap/1.0/rights/"
ASSETLENS = "https://assetlens.dev/ns/1.0/"
XML = "http://www.w3.org/XML/1998/namespace"
PREFIXES = {"x": X, "rdf": RDF, "dc": DC, "xmpRights": XMP_RIGHTS, "assetlens": ASSETLENS}
_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class XmpError(SearchError):
    """An existing sidecar that cannot be merged into."""


@dataclass(frozen=True)
class XmpContent:
    """What AssetLens writes into a packet (built by :mod:`search.catalog.export`)."""

    asset_id: int
    uri: str
    content_hash: str | None
    exported: str
    keywords: tuple[str, ...] = ()
    title: str | None = None
    description: str | None = None
    creators: tuple[str, ...] = ()
    rights: str | None = None
    usage_terms: str | None = None
    tags: tuple[tuple[str, float, str, float | None], ...] = ()  # name, score, source, time
    fields: tuple[tuple[str, Any], ...] = ()  # dotted meta name, value
    text: tuple[
        tuple[str, tuple[float, ...], float, float | None], ...
    ] = ()  # OCR: line, box, confidence, time


def _q(prefix: str, name: str) -> str:
    return f"{{{PREFIXES[prefix]}}}{name}"


def _clean(value: Any) -> str:
    return _INVALID.sub("", value if isinstance(value, str) else str(value))


def _register(extra: dict[str, str] | None = None) -> None:
    for prefix, uri in (extra or {}).items():
        if prefix and not re.fullmatch(r"ns\d+", prefix) and uri not in PREFIXES.values():
            with contextlib.suppress(ValueError):  # a prefix ElementTree reserves
                ET.register_namespace(prefix, uri)
    for prefix, uri in PREFIXES.items():
        ET.register_namespace(prefix, uri)


def _leaf(parent: ET.Element, tag: str, text: Any) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = _clean(text)
    return element


def _container(parent: ET.Element, tag: str, kind: str) -> ET.Element:
    return ET.SubElement(ET.SubElement(parent, tag), _q("rdf", kind))


def _alt(parent: ET.Element, tag: str, text: str) -> None:
    _leaf(_container(parent, tag, "Alt"), _q("rdf", "li"), text).set(f"{{{XML}}}lang", "x-default")


def _struct_bag(parent: ET.Element, tag: str, items: list[dict[str, Any]]) -> None:
    bag = _container(parent, tag, "Bag")
    for item in items:
        li = ET.SubElement(bag, _q("rdf", "li"), {_q("rdf", "parseType"): "Resource"})
        for key, value in item.items():
            if value is not None:
                _leaf(li, _q("assetlens", key), value)


def _add_properties(desc: ET.Element, c: XmpContent, subjects: list[str], added: list[str]) -> None:
    if subjects:
        bag = _container(desc, _q("dc", "subject"), "Bag")
        for keyword in subjects:
            _leaf(bag, _q("rdf", "li"), keyword)
    for name, value in (("title", c.title), ("description", c.description), ("rights", c.rights)):
        if value:
            _alt(desc, _q("dc", name), value)
    if c.creators:
        seq = _container(desc, _q("dc", "creator"), "Seq")
        for creator in c.creators:
            _leaf(seq, _q("rdf", "li"), creator)
    if c.usage_terms:
        _alt(desc, _q("xmpRights", "UsageTerms"), c.usage_terms)
    _leaf(desc, _q("assetlens", "assetId"), c.asset_id)
    _leaf(desc, _q("assetlens", "uri"), c.uri)
    if c.content_hash:
        _leaf(desc, _q("assetlens", "contentHash"), c.content_hash)
    _leaf(desc, _q("assetlens", "exported"), c.exported)
    if c.tags:
        items = [{"name": n, "score": f"{s:.4f}", "source": src, "time": t} for n, s, src, t in c.tags]
        _struct_bag(desc, _q("assetlens", "tags"), items)
    if c.fields:
        items = [
            {"name": n, "value": v if isinstance(v, str) else json.dumps(v, ensure_ascii=False),
             "type": _json_type(v)}
            for n, v in c.fields
        ]  # fmt: skip
        _struct_bag(desc, _q("assetlens", "fields"), items)
    if c.text:
        lines = [
            {"value": v, "box": " ".join(f"{x:.4f}" for x in box), "confidence": f"{p:.4f}", "time": t}
            for v, box, p, t in c.text
        ]
        _struct_bag(desc, _q("assetlens", "text"), lines)
    bag = _container(desc, _q("assetlens", "subjects"), "Bag")
    for keyword in added:
        _leaf(bag, _q("rdf", "li"), keyword)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "null"


def _serialise(root: ET.Element) -> str:
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="unicode") + "\n"


def new_packet(c: XmpContent) -> str:
    """A new sidecar holding ``c``."""
    _register()
    root = ET.Element(_q("x", "xmpmeta"), {_q("x", "xmptk"): "AssetLens"})
    desc = ET.SubElement(
        ET.SubElement(root, _q("rdf", "RDF")), _q("rdf", "Description"), {_q("rdf", "about"): ""}
    )
    _add_properties(desc, c, _dedupe(c.keywords), _dedupe(c.keywords))
    return _serialise(root)


def _dedupe(words: Any) -> list[str]:
    seen: dict[str, str] = {}
    for word in words:
        cleaned = _clean(word).strip()
        if cleaned:
            seen.setdefault(cleaned.casefold(), cleaned)
    return list(seen.values())


def _texts(desc: ET.Element, tag: str) -> list[str]:
    return [li.text or "" for prop in desc.findall(tag) for li in prop.iter(_q("rdf", "li"))]


def merge_packet(existing: bytes, c: XmpContent, *, overwrite: bool) -> str | None:
    """Merge ``c`` into an existing sidecar (see :mod:`search.catalog.export` for the rules).

    Returns:
        The merged packet, or None for a sidecar another program wrote when not ``overwrite``.

    Raises:
        XmpError: The sidecar is not XML or not XMP (with ``overwrite`` it is replaced instead).
    """
    try:
        prefixes = {p: u for _, (p, u) in ET.iterparse(io.BytesIO(existing), events=("start-ns",))}
        root = ET.fromstring(existing)
    except ET.ParseError as exc:
        if overwrite:
            return new_packet(c)
        raise XmpError(f"the existing sidecar is not valid XML ({exc}): --overwrite replaces it") from exc
    ours = any(
        e.tag.startswith(f"{{{ASSETLENS}}}") or any(a.startswith(f"{{{ASSETLENS}}}") for a in e.attrib)
        for e in root.iter()
    )
    if not ours and not overwrite:
        return None
    rdf = root if root.tag == _q("rdf", "RDF") else root.find(_q("rdf", "RDF"))
    if rdf is None:
        if overwrite:
            return new_packet(c)
        raise XmpError("the existing sidecar has no rdf:RDF: not XMP")
    _register(prefixes)
    descriptions = rdf.findall(_q("rdf", "Description")) or [
        ET.SubElement(rdf, _q("rdf", "Description"), {_q("rdf", "about"): ""})
    ]
    previous = {w.casefold() for d in descriptions for w in _texts(d, _q("assetlens", "subjects"))}
    kept = [w for d in descriptions for w in _texts(d, _q("dc", "subject")) if w.casefold() not in previous]
    managed = {_q("dc", "subject")}
    managed |= {_q("dc", n) for n, v in (("title", c.title), ("description", c.description),
                                          ("rights", c.rights), ("creator", c.creators)) if v}  # fmt: skip
    if c.usage_terms:
        managed.add(_q("xmpRights", "UsageTerms"))
    for desc in descriptions:
        for child in list(desc):
            if child.tag in managed or child.tag.startswith(f"{{{ASSETLENS}}}"):
                desc.remove(child)
        for attribute in list(desc.attrib):
            if attribute in managed or attribute.startswith(f"{{{ASSETLENS}}}"):
                del desc.attrib[attribute]
    subjects = _dedupe([*kept, *c.keywords])
    known = {w.casefold() for w in kept}
    added = [w for w in _dedupe(c.keywords) if w.casefold() not in known]
    _add_properties(descriptions[0], c, subjects, added)
    return _serialise(root)
