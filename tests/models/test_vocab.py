"""Tests of the tag vocabulary format, the shipped default list and the loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from assetlens.models.errors import VocabularyError
from assetlens.models.vocab import (
    DEFAULT_CATEGORY,
    DEFAULT_VOCABULARY,
    UnknownTagError,
    VocabTerm,
    Vocabulary,
    load_vocabulary,
    parse_vocabulary,
)

CATEGORIES = (
    "objects",
    "products",
    "scenes",
    "settings",
    "people",
    "activities",
    "colours",
    "styles",
    "asset_types",
)
ASSET_TYPES = (
    "product shot",
    "lifestyle",
    "flat lay",
    "portrait",
    "logo",
    "screenshot",
    "illustration",
    "document",
    "chart",
    "infographic",
    "packshot",
    "banner",
    "icon",
    "diagram",
    "map",
    "texture",
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped default -------------------------------------------------------------


def test_default_vocabulary_is_a_packaged_file() -> None:
    assert DEFAULT_VOCABULARY.name == "default.txt"
    assert DEFAULT_VOCABULARY.is_file()


def test_default_vocabulary_size_categories_and_asset_types() -> None:
    vocab = load_vocabulary()
    assert len(vocab) >= 550
    assert len(set(vocab.tags())) == len(vocab)
    assert set(vocab.categories()) == set(CATEGORIES)
    per_category = {c: sum(t.category == c for t in vocab.terms) for c in CATEGORIES}
    assert all(n >= 20 for n in per_category.values()), per_category
    for tag in ASSET_TYPES:
        assert vocab.term(tag).category == "asset_types"


def test_default_vocabulary_is_clean() -> None:
    """No implicit parents (every parent is written as a tag) and canonical tag text."""
    explicit = parse_vocabulary(DEFAULT_VOCABULARY.read_text("utf-8"), str(DEFAULT_VOCABULARY))
    explicit_tags = {t.tag for t in explicit}
    assert len(load_vocabulary()) == len(explicit)
    for term in explicit:
        assert set(term.parents) <= explicit_tags, term
        for text in (term.tag, *term.synonyms, *term.parents):
            assert text == " ".join(text.lower().split())


def test_default_vocabulary_examples() -> None:
    vocab = load_vocabulary()
    sneaker = vocab.term("sneaker")
    assert sneaker.category == "products"
    assert "trainer" in sneaker.synonyms
    assert sneaker.parents == ("shoe", "footwear")
    assert "coffee" in vocab.ancestors("espresso")
    assert "city street at night" in vocab
    assert vocab.term("white background").category == "settings"


# --- parsing -------------------------------------------------------------------------


def test_parse_every_syntax_form() -> None:
    text = """
    # a comment

    plain tag
    [Scenes]
      Beach   =  Seaside ,  SEA  Shore
    sunset > sky
    sneaker = trainer, athletic shoe > shoe, footwear
       # indented comment
    [asset types]
    flat lay
    """
    terms = parse_vocabulary(text)
    assert terms == (
        VocabTerm("plain tag", DEFAULT_CATEGORY),
        VocabTerm("beach", "scenes", ("seaside", "sea shore")),
        VocabTerm("sunset", "scenes", (), ("sky",)),
        VocabTerm("sneaker", "scenes", ("trainer", "athletic shoe"), ("shoe", "footwear")),
        VocabTerm("flat lay", "asset types"),
    )
    assert DEFAULT_CATEGORY == "general"


def test_parse_drops_duplicate_synonyms_and_parents() -> None:
    (term,) = parse_vocabulary("mug = cup, Cup, mug > tableware, tableware")
    assert term.synonyms == ("cup",)
    assert term.parents == ("tableware",)


def test_parse_empty_text_gives_no_terms() -> None:
    assert parse_vocabulary("# only a comment\n\n") == ()


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("= synonym", "missing tag"),
        ("> parent", "missing tag"),
        ("tag =", "nothing after"),
        ("tag = , ", "nothing after"),
        ("tag >", "nothing after"),
        ("tag = a, , b", "empty item"),
        ("tag > a,", "empty item"),
        ("tag > parent = synonym", "before"),
        ("tag = a = b", "more than one"),
        ("tag > a > b", "more than one"),
        ("[unclosed", "unclosed"),
        ("[]", "empty category"),
        ("[a [b]]", "malformed"),
        ("tag # inline comment", "'#'"),
        ("tag]", "']'"),
        ("shoe > shoe", "itself"),
    ],
)
def test_malformed_lines_name_source_and_line(line: str, fragment: str) -> None:
    text = f"# header\n[objects]\nfine tag\n{line}\n"
    with pytest.raises(VocabularyError) as info:
        parse_vocabulary(text, source="my.txt")
    message = str(info.value)
    assert message.startswith("my.txt:4: ")
    assert fragment in message


def test_duplicate_tag_in_one_file_is_an_error() -> None:
    with pytest.raises(VocabularyError, match=r"x\.txt:3: duplicate tag 'beach' \(first"):
        parse_vocabulary("beach\n[scenes]\nBeach = seaside\n", source="x.txt")


def test_malformed_user_file_error_names_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "user.txt", "good\n\n= bad\n")
    with pytest.raises(VocabularyError, match=r"user\.txt:3: "):
        load_vocabulary(path)


# --- loading and merging ---------------------------------------------------------------


def test_merge_user_file_into_default(tmp_path: Path) -> None:
    default = load_vocabulary()
    path = write(
        tmp_path / "brand.txt",
        "[products]\n"
        "sneaker = kicks, trainer > shoe, apparel item\n"
        "acme rocket shoe = rocket shoe > running shoe\n"
        "[scenes]\n"
        "espresso = short black > drink\n",
    )
    vocab = load_vocabulary(path)
    sneaker = vocab.term("sneaker")
    assert sneaker.category == "products"
    assert sneaker.synonyms == (*default.term("sneaker").synonyms, "kicks")
    assert sneaker.parents == ("shoe", "footwear", "apparel item")
    espresso = vocab.term("espresso")
    assert espresso.category == default.term("espresso").category == "objects"
    assert espresso.parents == ("coffee", "drink")
    assert vocab.tags()[: len(default)] == default.tags()
    assert vocab.tags()[len(default)] == "acme rocket shoe"
    assert vocab.term("acme rocket shoe") == VocabTerm(
        "acme rocket shoe", "products", ("rocket shoe",), ("running shoe",)
    )
    assert vocab.ancestors("acme rocket shoe")[:3] == ("running shoe", "sneaker", "shoe")


def test_implicit_parent_tags(tmp_path: Path) -> None:
    path = write(tmp_path / "v.txt", "[gear]\ntent > camping gear, shelter\n[x]\nhut > shelter\n")
    vocab = load_vocabulary(path, include_default=False)
    assert vocab.tags() == ("tent", "hut", "camping gear", "shelter")
    assert vocab.term("shelter") == VocabTerm("shelter", "gear")
    assert vocab.term("camping gear").synonyms == ()


def test_user_file_only(tmp_path: Path) -> None:
    vocab = load_vocabulary(write(tmp_path / "v.txt", "alpha\nbeta > alpha\n"), include_default=False)
    assert vocab.tags() == ("alpha", "beta")
    assert vocab.term("alpha").category == DEFAULT_CATEGORY


def test_include_default_false_without_extra_is_an_error() -> None:
    with pytest.raises(VocabularyError, match="nothing to load"):
        load_vocabulary(include_default=False)


def test_empty_user_vocabulary_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.txt", "# nothing here\n")
    with pytest.raises(VocabularyError, match="empty"):
        load_vocabulary(path, include_default=False)


def test_missing_file_error_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "vocab.txt"
    with pytest.raises(VocabularyError, match="not found") as info:
        load_vocabulary(missing)
    assert str(missing) in str(info.value)


def test_directory_instead_of_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError) as info:
        load_vocabulary(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_non_utf8_file_error_names_path(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(VocabularyError, match="not valid UTF-8") as info:
        load_vocabulary(path)
    assert str(path) in str(info.value)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff[styles]\nvaporwave\n".encode())
    vocab = load_vocabulary(path, include_default=False)
    assert vocab.term("vaporwave").category == "styles"


def test_unicode_tags_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path / "u.txt", "[scenes]\nCafé = Kaffeehaus\nstraße > Café\n")
    vocab = load_vocabulary(path, include_default=False)
    assert vocab.tags() == ("café", "straße")
    assert vocab.term("CAFÉ").synonyms == ("kaffeehaus",)
    assert vocab.ancestors("straße") == ("café",)
    decomposed = "cafe\u0301"  # 'e' + combining acute accent: the same tag after NFC
    assert vocab.term(decomposed).tag == "café"
    again = parse_vocabulary(path.read_text("utf-8"))
    assert [t.tag for t in again] == ["café", "straße"]


# --- digest --------------------------------------------------------------------------


def test_digest_is_stable_across_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "v.txt", "kicks > sneaker\n")
    first, second = load_vocabulary(path), load_vocabulary(path)
    assert first.digest == second.digest
    assert len(first.digest) == 64
    int(first.digest, 16)
    assert first == second
    assert load_vocabulary().digest == load_vocabulary().digest


@pytest.mark.parametrize(
    "changed",
    [
        "kicks > running shoe\n",  # parent
        "kicks = sneakers > sneaker\n",  # synonym
        "[products]\nkicks > sneaker\n",  # category
        "kicks > sneaker\nmore kicks\n",  # extra tag
    ],
)
def test_digest_changes_when_user_file_changes(tmp_path: Path, changed: str) -> None:
    path = write(tmp_path / "v.txt", "kicks > sneaker\n")
    before = load_vocabulary(path, include_default=False).digest
    write(path, changed)
    assert load_vocabulary(path, include_default=False).digest != before


@pytest.mark.parametrize(
    ("one", "other"),
    [("a\nb\n", "b\na\n"), ("x > a, b\n", "x > b, a\n"), ("x = a, b\n", "x = b, a\n")],
)
def test_digest_depends_on_order(tmp_path: Path, one: str, other: str) -> None:
    first = load_vocabulary(write(tmp_path / "1.txt", one), include_default=False)
    second = load_vocabulary(write(tmp_path / "2.txt", other), include_default=False)
    assert first.digest != second.digest


def test_digest_differs_with_and_without_user_file(tmp_path: Path) -> None:
    path = write(tmp_path / "v.txt", "[products]\nsneaker = kicks\n")
    assert load_vocabulary(path).digest != load_vocabulary().digest


def test_digest_ignores_comments_and_whitespace(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "beach = seaside > coast\n")
    b = write(tmp_path / "b.txt", "# comment\n\n  Beach=seaside>COAST  \n")
    assert (
        load_vocabulary(a, include_default=False).digest == load_vocabulary(b, include_default=False).digest
    )


# --- Vocabulary behaviour ------------------------------------------------------------


def test_ancestors_transitive_nearest_first_without_duplicates() -> None:
    vocab = Vocabulary(
        (
            VocabTerm("running shoe", "products", parents=("sneaker", "shoe")),
            VocabTerm("sneaker", "products", parents=("shoe", "footwear")),
            VocabTerm("shoe", "products", parents=("footwear",)),
            VocabTerm("footwear", "products"),
        )
    )
    assert vocab.ancestors("running shoe") == ("sneaker", "shoe", "footwear")
    assert vocab.ancestors("footwear") == ()


def test_ancestors_terminate_on_cycles(tmp_path: Path) -> None:
    path = write(tmp_path / "cycle.txt", "a > b\nb > c\nc > a, d\nself = me > a\n")
    vocab = load_vocabulary(path, include_default=False)
    assert vocab.ancestors("a") == ("b", "c", "d")
    assert vocab.ancestors("c") == ("a", "d", "b")
    assert vocab.ancestors("self") == ("a", "b", "c", "d")


def test_cycle_created_by_merge_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path / "v.txt", "shoe > sneaker\n")
    vocab = load_vocabulary(path)
    assert "sneaker" in vocab.ancestors("shoe")
    assert "shoe" in vocab.ancestors("sneaker")
    assert "sneaker" not in vocab.ancestors("sneaker")


def test_term_lookup_and_unknown_tag() -> None:
    vocab = load_vocabulary()
    assert vocab.term("  Running   SHOE ").tag == "running shoe"
    with pytest.raises(UnknownTagError, match="unknown tag 'no such tag'"):
        vocab.term("no such tag")
    with pytest.raises(VocabularyError):
        vocab.ancestors("no such tag")
    with pytest.raises(KeyError):
        vocab.term("no such tag")
    assert "no such tag" not in vocab


def test_vocabulary_rejects_duplicate_terms() -> None:
    with pytest.raises(VocabularyError, match="duplicate tag 'a'"):
        Vocabulary((VocabTerm("a", "x"), VocabTerm("A", "y")))


def test_vocab_term_normalises_and_rejects_empty_tag() -> None:
    term = VocabTerm("  Coffee   Cup ", "Objects", ("Mug", "mug", "coffee cup"), ("Cup",))
    assert term == VocabTerm("coffee cup", "objects", ("mug",), ("cup",))
    with pytest.raises(VocabularyError):
        VocabTerm("   ", "objects")
