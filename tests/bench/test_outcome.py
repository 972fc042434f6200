"""bench/outcome.py: the records bench/soak.lua writes in `done`."""

import pytest

from bench.outcome import AckedComment, AckedPost, OutcomeError, parse_outcome
from gql_blog.ids import encode_global_id

COMMENT = encode_global_id("Comment", 51)
POST = encode_global_id("Post", 7)


def test_counts_of_several_threads_add_up() -> None:
    text = "sent\tfeed\t3\nsent\tfeed\t4\nanswered\tfeed\t6\nfailed\tstatus 503\t1\n"

    outcome = parse_outcome(text)

    assert (outcome.sent["feed"], outcome.answered["feed"]) == (7, 6)
    assert dict(outcome.failed) == {"status 503": 1}


def test_acknowledged_writes_become_row_ids() -> None:
    text = f"comment\t{COMMENT}\t{POST}\tsoak ab12 1-3\npost\t{POST}\tfalse\tsoak ab12-1-5\n"

    outcome = parse_outcome(text)

    assert outcome.comments == [AckedComment(id=51, post_id=7, content="soak ab12 1-3")]
    assert outcome.posts == [AckedPost(id=7, published=False, title="soak ab12-1-5")]


def test_samples_keep_their_reason_and_body() -> None:
    outcome = parse_outcome('sample\terrors\t{"errors":[]}\n')

    assert outcome.samples == [("errors", '{"errors":[]}')]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("sent\tfeed\tmany", "'many' is not a count"),
        (f"comment\t{POST}\t{POST}\ttext", "not a Comment id"),
        (f"post\t{POST}\tmaybe\ttitle", "not a record"),
        ("hello", "not a record"),
    ],
    ids=["count", "wrong-type-of-id", "published-not-a-boolean", "unknown-record"],
)
def test_a_bad_line_is_named_with_the_problem(line: str, problem: str) -> None:
    with pytest.raises(OutcomeError, match="line 2 of the soak's outcome") as raised:
        parse_outcome(f"sent\tfeed\t1\n{line}\n")

    assert problem in str(raised.value)
