"""The torch-free tokenizer gives open_clip's token ids, text for text, on thousands of texts."""

from __future__ import annotations

import random
import string
import subprocess
import sys

import numpy as np
import open_clip
import pytest

from assetlens.models.registry import CLIP_MODELS, register_tiny_config
from assetlens.models.tokenizer import ClipTokenizer, tokenizer_for, trim_tokens
from assetlens.models.vocab import load_vocabulary

# Character pools of the generated texts: scripts, marks and symbols a DAM library meets.
POOLS = {
    "ascii": string.ascii_letters + " " + string.digits + " " + string.punctuation,
    "accents": "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿßÀÉÎÕÜŒœŠšŽžĳŁłŃńŚśŹźĆćĘęĄą",
    "cjk": "東京タワー夜景の写真赤い靴白い背景猫犬桜富士山한국어사진서울중국北京上海",
    "rtl": "שלום עולם תמונה של חתול مرحبا بالعالم صورة قطة حذاء أحمر",
    "indic_cyrillic": "नमस्ते दुनिया बिल्ली Привет мир фотография кошки Ελληνικά",
    "emoji": "😀😂🥲👍🏽👩‍👩‍👧‍👦🇩🇪🇯🇵❤️‍🔥🐶🐱👟🌅✨🏳️‍🌈",
    "marks": "e\u0301a\u0308n\u0303\u200b\u200d\u200e\u200f\ufeff\u00ad\u2028\u00a0\u3000\t\n\r\x00\x07",
    "entities": " &amp; &lt;b&gt; &amp;amp; &#39; &quot; &eacute; &#x1F600; ",
    "mojibake": " Ã© Ã¼ â€™ â€œ Ã¶ ",
    "special": " <start_of_text> <end_of_text> <END_OF_TEXT> it's they'll we've I'd ",
}
EDGE_CASES = [
    "",
    " ",
    "   \t\n  ",
    "\u3000\u00a0",
    "a",
    "A PHOTO OF A CAT",
    "x" * 5000,
    " ".join(["a very long product description"] * 40),
    "東京" * 200,
    "👍" * 100,
    "<end_of_text>",
    "a <end_of_text> b",
    "1234567890 3.14159 2024-01-01",
    "can't won't shouldn't y'all o'clock",
    "ﬁ ﬂ ① ㎏ Ⅻ",  # compatibility characters (ftfy leaves most alone)
    "\ud800 lone surrogate \udcff",  # from a command line with undecodable bytes
]


def generated_texts(count: int, seed: int = 0) -> list[str]:
    """Seeded mixes of the pools, from one character to several hundred."""
    rng = random.Random(seed)
    names = list(POOLS)
    texts = []
    for _ in range(count):
        picked = rng.sample(names, rng.randint(1, 3))
        length = rng.choice([1, 2, 5, 12, 30, 80, 300])
        texts.append("".join(rng.choice(POOLS[rng.choice(picked)]) for _ in range(length)))
    return texts


def vocabulary_texts() -> list[str]:
    """The default vocabulary's tags and synonyms in a prompt: what tagging tokenizes."""
    terms = load_vocabulary().terms
    return [f"a photo of {name}." for term in terms for name in (term.tag, *term.synonyms)]


@pytest.fixture(scope="module")
def reference() -> open_clip.tokenizer.SimpleTokenizer:
    register_tiny_config()
    return open_clip.get_tokenizer("ViT-B-32")


def test_same_ids_as_open_clip_on_thousands_of_texts(reference: open_clip.tokenizer.SimpleTokenizer) -> None:
    texts = [*EDGE_CASES, *vocabulary_texts(), *generated_texts(2500)]
    assert len(texts) > 3000
    ours = tokenizer_for("ViT-B-32")
    assert isinstance(ours, ClipTokenizer)  # not open_clip's, which would import torch
    got, want = ours(texts), reference(texts).numpy()
    assert got.dtype == np.int64 and got.shape == (len(texts), 77)
    differ = [texts[i] for i in np.flatnonzero((got != want).any(axis=1))]
    assert not differ, f"{len(differ)} texts tokenized differently, e.g. {differ[:3]!r}"


def test_truncation_ends_on_the_end_token(reference: open_clip.tokenizer.SimpleTokenizer) -> None:
    tokens = tokenizer_for("ViT-B-32")(["x" * 5000, "a cat", ""])
    assert tokens[0, -1] == 49407 and np.count_nonzero(tokens[0]) == 77
    assert list(tokens[1, :4]) == [49406, 320, 2368, 49407]  # <start> a cat <end>
    assert list(tokens[2, :3]) == [49406, 49407, 0]


@pytest.mark.parametrize("name", sorted(CLIP_MODELS))
def test_every_registered_model_uses_ours_with_open_clips_ids(name: str) -> None:
    arch = CLIP_MODELS[name].arch
    register_tiny_config()
    texts = [*EDGE_CASES, *generated_texts(100, seed=1)]
    ours = tokenizer_for(arch)
    assert isinstance(ours, ClipTokenizer)
    np.testing.assert_array_equal(ours(texts), open_clip.get_tokenizer(arch)(texts).numpy())


@pytest.mark.parametrize("arch", ["coca_ViT-B-32", "PE-Core-B-16", "PE-Core-bigG-14-448"])
def test_other_context_lengths_match_open_clip(arch: str) -> None:
    texts = [*EDGE_CASES, *generated_texts(100, seed=2)]
    ours = tokenizer_for(arch)
    assert isinstance(ours, ClipTokenizer) and ours.context_length in (76, 32, 72)
    np.testing.assert_array_equal(ours(texts), open_clip.get_tokenizer(arch)(texts).numpy())


def test_other_tokenizers_are_left_to_open_clip() -> None:
    # SigLIP's config names a Hugging Face tokenizer: ours must not stand in for it. open_clip's
    # own is used, and without the transformers package it fails as open_clip fails.
    arch = "ViT-B-16-SigLIP"
    try:
        open_clip.get_tokenizer(arch)
    except ImportError as exc:
        with pytest.raises(type(exc)):
            tokenizer_for(arch)
    else:
        assert not isinstance(tokenizer_for(arch), ClipTokenizer)


def test_trim_tokens_cuts_after_the_longest_text() -> None:
    tokens = tokenizer_for("ViT-B-32")(["a cat", "a photo of a red shoe", ""])
    trimmed = trim_tokens(tokens)
    assert trimmed.shape == (3, 8)  # <start> a photo of a red shoe <end>
    np.testing.assert_array_equal(trimmed, tokens[:, :8])


def test_tokenizing_imports_neither_torch_nor_open_clip() -> None:
    code = (
        "import sys\n"
        "from assetlens.models.tokenizer import tokenizer_for\n"
        "tokens = tokenizer_for('ViT-B-32')(['a photo of a cat', '東京 😀'])\n"
        "assert tokens.shape == (2, 77), tokens.shape\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision', 'open_clip'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
