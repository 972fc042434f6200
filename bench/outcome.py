"""What bench/soak.lua wrote in `done`: its counts, failures and acknowledged writes.

One record per line, fields separated by tabs:

    sent      KIND  COUNT     requests of KIND sent by one thread (feed, detail, user, comment,
                              post; blank_comment and draft count the special ones among them)
    answered  KIND  COUNT     answers of KIND as expected (blank_comment: its ValidationError)
    failed    REASON COUNT    answers that were not (a status, "errors", an unexpected result)
    sample    REASON BODY     the start of a few failed answers
    comment   ID  POST_ID  CONTENT        an acknowledged addComment (global ids)
    post      ID  PUBLISHED  TITLE        an acknowledged createPost

Counts of several threads add up.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gql_blog.errors import InvalidIdError
from gql_blog.ids import decode_global_id


class OutcomeError(ValueError):
    """A line of the outcome file is not one of its records."""


@dataclass(frozen=True, slots=True)
class AckedComment:
    """A comment the server acknowledged: its row id, its post's row id and its text."""

    id: int
    post_id: int
    content: str


@dataclass(frozen=True, slots=True)
class AckedPost:
    """A post the server acknowledged: its row id, whether it was published, its title."""

    id: int
    published: bool
    title: str


@dataclass(slots=True)
class Outcome:
    sent: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    samples: list[tuple[str, str]] = field(default_factory=list)
    comments: list[AckedComment] = field(default_factory=list)
    posts: list[AckedPost] = field(default_factory=list)


def row_id(global_id: str, type_name: str) -> int:
    """The row id in a global id of `type_name`; OutcomeError for anything else."""
    try:
        _, number = decode_global_id(global_id, known_types={type_name})
    except InvalidIdError as error:
        raise OutcomeError(f"not a {type_name} id: {error}") from None
    return number


def acked_comment(global_id: str, post_global_id: str, content: str) -> AckedComment:
    return AckedComment(row_id(global_id, "Comment"), row_id(post_global_id, "Post"), content)


def acked_post(global_id: str, *, published: bool, title: str) -> AckedPost:
    return AckedPost(row_id(global_id, "Post"), published, title)


def parse_outcome(text: str) -> Outcome:
    """Every record of the outcome file's text; OutcomeError names the first bad line."""
    outcome = Outcome()
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            _add_record(outcome, line.split("\t"))
        except OutcomeError as error:
            raise OutcomeError(
                f"line {number} of the soak's outcome ({line[:80]!r}): {error}"
            ) from None
    return outcome


def read_outcome(path: Path) -> Outcome:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise OutcomeError(f"wrk wrote no outcome to {path}: {error}") from None
    return parse_outcome(text)


_PUBLISHED = {"true": True, "false": False}


def _add_record(outcome: Outcome, fields: list[str]) -> None:
    match fields:
        case ["sent", kind, count]:
            outcome.sent[kind] += _count(count)
        case ["answered", kind, count]:
            outcome.answered[kind] += _count(count)
        case ["failed", reason, count]:
            outcome.failed[reason] += _count(count)
        case ["sample", reason, body]:
            outcome.samples.append((reason, body))
        case ["comment", global_id, post_global_id, content]:
            outcome.comments.append(acked_comment(global_id, post_global_id, content))
        case ["post", global_id, published, title] if published in _PUBLISHED:
            outcome.posts.append(
                acked_post(global_id, published=_PUBLISHED[published], title=title)
            )
        case _:
            raise OutcomeError(
                "not a record: sent, answered, failed, sample, comment or post and its fields"
            )


def _count(text: str) -> int:
    if not text.isdigit():
        raise OutcomeError(f"{text!r} is not a count")
    return int(text)
