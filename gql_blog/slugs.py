"""Posts' slugs: URL-safe names made from titles, unique among all posts (the contract's
"Slugs" rule, ../shared/API.md).

A title becomes a slug by Unicode NFKD, combining marks dropped, lower-casing, every run of
characters outside `a-z0-9` turned into one `-`, the `-` at either end removed, and a cut to
`MAX_LENGTH` characters (at the last `-` of the final 20, when there is one); `post` when nothing
is left. When another post has it, `-2`, `-3`, … is appended, the slug cut shorter first so that
it stays within `MAX_LENGTH`.
"""

import re
import unicodedata
from collections.abc import Iterator

MAX_LENGTH = 80
# Where a slug too long for MAX_LENGTH may be cut at a `-` rather than mid-word.
_CUT_WINDOW = 20
FALLBACK = "post"
_OUTSIDE = re.compile(r"[^a-z0-9]+")
VALID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def slugify(title: str) -> str:
    """The slug `title` asks for, before any suffix for uniqueness."""
    decomposed = unicodedata.normalize("NFKD", title)
    unmarked = "".join(char for char in decomposed if not unicodedata.combining(char))
    slug = _OUTSIDE.sub("-", unmarked.lower()).strip("-")
    return _cut(slug, MAX_LENGTH) or FALLBACK


def candidates(base: str) -> Iterator[str]:
    """`base`, then `base-2`, `base-3`, …: each within MAX_LENGTH."""
    number = 1
    while True:
        yield candidate(base, number)
        number += 1


def candidate(base: str, number: int) -> str:
    """The `number`th of `candidates(base)`, counting from 1 (`base` itself)."""
    if number == 1:
        return base
    return f"{numbered_head(base, len(str(number)))}-{number}"


def numbered_head(base: str, digits: int) -> str:
    """What precedes `-N` in `base`'s candidates whose number N has `digits` digits."""
    return _cut(base, MAX_LENGTH - 1 - digits) or FALLBACK


def number_of(base: str, slug: str) -> int | None:
    """N when `slug` is `candidate(base, N)` for an N of 2 or more; else None."""
    head, _, number = slug.rpartition("-")
    if not (number.isascii() and number.isdigit()) or number.startswith("0"):
        return None
    if head != numbered_head(base, len(number)) or int(number) < 2:
        return None
    return int(number)


def first_free(base: str, taken: set[str]) -> str:
    """The first of `candidates(base)` that no post has."""
    return next(candidate for candidate in candidates(base) if candidate not in taken)


def is_valid(slug: str) -> bool:
    """Whether `slug` may be set explicitly: `[a-z0-9]+(-[a-z0-9]+)*`, 1 to MAX_LENGTH long."""
    return len(slug) <= MAX_LENGTH and VALID.fullmatch(slug) is not None


def _cut(slug: str, length: int) -> str:
    if len(slug) <= length:
        return slug
    head = slug[:length]
    if slug[length] == "-":  # the cut falls between words already
        return head.strip("-")
    dash = head.rfind("-")
    if dash >= length - _CUT_WINDOW:
        head = head[:dash]
    return head.strip("-")
