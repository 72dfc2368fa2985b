"""CLIP's text tokenizer without torch: the token ids of open_clip's ``SimpleTokenizer``.

open_clip's tokenizer is a byte-level BPE over 49 152 tokens, but importing open_clip loads
torch and torchvision (about 2 s and 600 MB), which a text search on a cached ONNX text tower
never needs otherwise. This module computes the same ids with numpy:

- open_clip's default cleaning (``clean="lower"``): ftfy's ``fix_text``, HTML entities
  unescaped twice, whitespace collapsed, lowercase;
- open_clip's split pattern (letters, single digits, punctuation runs, English contractions,
  and the two special tokens, which a text may contain), each piece as its UTF-8 bytes mapped
  to printable characters, then merged by BPE rank;
- ``<start_of_text>`` + ids + ``<end_of_text>``, cut to the context length with the last
  position set to ``<end_of_text>``, padded with 0.

The merges are read from the vocabulary file that open_clip ships, located without importing
it (as :mod:`models.registry` reads its model configs): one source of truth, no copy to keep in
step. Architectures whose text config asks for another tokenizer (a Hugging Face tokenizer,
SigLIP's, other cleaning, token reduction masks; none of them in our registry) get open_clip's
own (:func:`tokenizer_for`).
"""

from __future__ import annotations

import html
import importlib.util
import itertools
import zlib
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, TypeVar

import ftfy
import numpy as np
import regex

from assetlens.models.errors import UnknownModelError
from assetlens.models.registry import arch_config

__all__ = ["ClipTokenizer", "tokenizer_for", "trim_tokens"]

START, END = "<start_of_text>", "<end_of_text>"
_MERGES = 49152 - 256 - 2  # open_clip keeps the first 48 894 merge rules of the file
_SPLIT = regex.compile(
    rf"{START}|{END}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+", regex.IGNORECASE
)

TokensT = TypeVar("TokensT")


def vocabulary_file() -> Path:
    """open_clip's BPE vocabulary (``bpe_simple_vocab_16e6.txt.gz``), found without importing it."""
    found = importlib.util.find_spec("open_clip")
    if found is None or found.origin is None:
        raise UnknownModelError("the open_clip package is not installed (its tokenizer vocabulary is needed)")
    return Path(found.origin).parent / "bpe_simple_vocab_16e6.txt.gz"


@cache
def _byte_symbols() -> dict[int, str]:
    """One printable character per byte value, as GPT-2's byte-level BPE maps them.

    Printable Latin-1 bytes stand for themselves; the others (controls, space, 0x7F-0xA0, 0xAD)
    take the characters from U+0100 upwards, in byte order. The dict's order (printable bytes
    first) is the order of the first 256 token ids.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    spare = iter(range(256, 512))
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(next(spare))
    return symbols


@cache
def _tables() -> tuple[dict[str, int], dict[str, int]]:
    """``(ids of tokens, rank of merge rules)`` from the vocabulary file (once per process, ~25 ms).

    A merge rule is kept as its line, ``"first second"``; its token is the two joined.
    """
    lines = _merge_lines()
    singles = list(_byte_symbols().values())
    tokens = [*singles, *(s + "</w>" for s in singles), *(line.replace(" ", "") for line in lines)]
    ids = dict(zip([*tokens, START, END], itertools.count(), strict=False))
    return ids, dict(zip(lines, itertools.count(), strict=False))


def _merge_lines() -> list[str]:
    """The merge rules open_clip uses: lines 2 to 48 895 of the file (of its 262 146)."""
    inflate = zlib.decompressobj(wbits=31)  # 31: a gzip container
    pending = vocabulary_file().read_bytes()
    text = b""
    while text.count(b"\n") <= _MERGES and pending:  # only the first fifth is needed
        text += inflate.decompress(pending, 1 << 20)
        pending = inflate.unconsumed_tail
    return text.decode("utf-8").split("\n", _MERGES + 1)[1 : _MERGES + 1]


@lru_cache(maxsize=1 << 16)
def _bpe(piece: str) -> tuple[str, ...]:
    """The BPE tokens of one piece (already byte-mapped): merge the best-ranked pair until none."""
    if piece in (START, END):
        return (piece,)
    ranks = _tables()[1]
    word = [*piece[:-1], piece[-1] + "</w>"]
    while len(word) > 1:
        pairs = {f"{a} {b}" for a, b in itertools.pairwise(word)}
        best = min(pairs, key=lambda pair: ranks.get(pair, _MERGES))  # _MERGES: ranked below all
        if best not in ranks:
            break
        first, second = best.split(" ")
        merged, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                merged.append(first + second)
                i += 2
            else:
                merged.append(word[i])
                i += 1
        word = merged
    return tuple(word)


def clean(text: str) -> str:
    """open_clip's default text cleaning (its ``clean="lower"``)."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """Texts to ``int64`` token arrays ``(N, context_length)``, exactly as open_clip makes them.

    Args:
        context_length: Positions per text (77 for every CLIP in the registry).
    """

    def __init__(self, context_length: int = 77) -> None:
        self.context_length = context_length
        self._ids = _tables()[0]
        symbols = _byte_symbols()
        self._symbols = tuple(symbols[b] for b in range(256))
        self.start_id, self.end_id = self._ids[START], self._ids[END]

    def encode(self, text: str) -> list[int]:
        """The token ids of one text, without start, end or padding."""
        ids: list[int] = []
        for piece in _SPLIT.findall(clean(text)):
            mapped = "".join(self._symbols[b] for b in piece.encode("utf-8"))
            ids.extend(self._ids[token] for token in _bpe(mapped))
        return ids

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Token arrays of texts: start, ids, end; cut to the context (ending on end); 0-padded."""
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.start_id, *self.encode(text), self.end_id][: self.context_length]
            ids[-1] = self.end_id
            out[row, : len(ids)] = ids
        return out


def tokenizer_for(arch: str) -> Callable[[list[str]], np.ndarray]:
    """The tokenizer of an architecture, as texts -> ``int64`` array ``(N, context)``.

    Ours (:class:`ClipTokenizer`) where open_clip would build its ``SimpleTokenizer`` with its
    default options (every model we register); else open_clip's own (importing it, and torch).
    """
    text_cfg: dict[str, Any] = dict(arch_config(arch).get("text_cfg") or {})
    plain = not text_cfg.get("hf_tokenizer_name") and "siglip" not in arch.lower()
    if plain and not text_cfg.get("tokenizer_kwargs"):
        return ClipTokenizer(int(text_cfg.get("context_length") or 77))
    return _open_clip_tokenizer(arch)


def _open_clip_tokenizer(arch: str) -> Callable[[list[str]], np.ndarray]:
    import open_clip  # imported late: loads torch; only unusual tokenizers need it

    tokenizer = open_clip.get_tokenizer(arch)
    return lambda texts: tokenizer(texts).numpy().astype(np.int64, copy=False)


def trim_tokens(tokens: TokensT) -> TokensT:
    """Cut the tokens (array or tensor) after the longest text's end-of-text token (the highest id).

    CLIP's text tower is causal and pools at the end-of-text token, so positions after the
    longest text's end can never influence the result: the text features of the trimmed
    tokens equal ``model.encode_text`` of all 77, with ~10-token work instead of 77 for typical
    queries and tag prompts (about 6x faster for ViT-B-32).
    """
    n = int(tokens.argmax(-1).max()) + 1  # type: ignore[attr-defined]
    return tokens[:, :n]  # type: ignore[index]
