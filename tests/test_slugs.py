"""Slugs from titles, as the contract's "Slugs" rule says (gql_blog/slugs.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gql_blog import slugs


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Hello, World!", "hello-world"),
        ("  Crème brûlée à la carte  ", "creme-brulee-a-la-carte"),
        ("\uff26\uff55\uff4c\uff4c \uff11\uff12\uff13", "full-123"),  # NFKD folds fullwidth forms
        ("İstanbul'da", "istanbul-da"),
        ("C++ & C#: a --- comparison", "c-c-a-comparison"),
        ("日本語", "post"),  # nothing of a-z0-9 is left
        ("!!!", "post"),
        ("", "post"),
        ("Already-a-slug-42", "already-a-slug-42"),
    ],
)
def test_a_title_becomes_its_slug(title: str, slug: str) -> None:
    assert slugs.slugify(title) == slug


def test_a_long_title_is_cut_at_a_dash_in_the_last_twenty() -> None:
    title = " ".join(["word"] * 30)  # word-word-…: 149 characters as a slug
    slug = slugs.slugify(title)
    assert slug == "-".join(["word"] * 16)  # 79 characters: the cut at 80 fell mid-word
    assert len(slug) <= slugs.MAX_LENGTH


def test_a_long_word_is_cut_at_the_limit() -> None:
    assert slugs.slugify("a" * 200) == "a" * 80
    # A dash before the last twenty characters is too far back to cut at.
    assert slugs.slugify("ab " + "c" * 200) == "ab-" + "c" * 77


def test_a_cut_between_words_keeps_the_whole_head() -> None:
    title = "x" * 80 + " tail"
    assert slugs.slugify(title) == "x" * 80


def test_a_taken_slug_gets_the_first_free_number() -> None:
    assert slugs.first_free("hello", set()) == "hello"
    assert slugs.first_free("hello", {"hello"}) == "hello-2"
    assert slugs.first_free("hello", {"hello", "hello-2", "hello-3"}) == "hello-4"


def test_a_numbered_slug_stays_within_the_limit() -> None:
    base = "a" * 80
    numbered = slugs.first_free(base, {base, base[:78] + "-2"})
    assert numbered == "a" * 78 + "-3"


@pytest.mark.parametrize(
    ("slug", "valid"),
    [
        ("hello-world", True),
        ("a", True),
        ("a" * 80, True),
        ("a" * 81, False),
        ("", False),
        ("-hello", False),
        ("hello-", False),
        ("hello--world", False),
        ("Hello", False),
        ("héllo", False),
        ("hello world", False),
    ],
)
def test_an_explicit_slug_must_match_the_pattern(slug: str, valid: bool) -> None:
    assert slugs.is_valid(slug) is valid


@given(st.text(max_size=300))
def test_every_title_gives_a_valid_slug(title: str) -> None:
    slug = slugs.slugify(title)
    assert slugs.is_valid(slug), slug
    assert slugs.slugify(slug) == slug  # a slug is its own title's slug


@given(st.text(max_size=120), st.sets(st.text(max_size=90), max_size=5), st.integers(1, 30))
def test_every_numbered_candidate_is_valid_and_new(title: str, others: set[str], n: int) -> None:
    base = slugs.slugify(title)
    taken = others | {c for c, _ in zip(slugs.candidates(base), range(n), strict=False)}
    free = slugs.first_free(base, taken)
    assert free not in taken
    assert slugs.is_valid(free), free
