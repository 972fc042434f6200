"""Full-text search over posts: ranked hits with snippets, in keyset pages, a strategy per dialect.

- PostgreSQL: a stored generated `tsvector` column, `posts.search_vector` ('english'; title
  weight A, content B) with a GIN index; `websearch_to_tsquery`, `ts_rank` (a real, cast to double
  precision everywhere it is used) and `ts_headline`.
- SQLite: the FTS5 table `posts_fts` (external content over posts, porter stemming), kept in sync
  by triggers; the rank is `-bm25(posts_fts, 10.0, 1.0)` (bm25 is lower-is-better); `snippet()`.
- MariaDB: InnoDB FULLTEXT indexes over stored copies of title and content, `search_title` and
  `search_content`, under a case-insensitive collation (InnoDB matches words by the column's
  collation, and posts' is binary): on both, and on the title alone. The rank is
  `MATCH(title, content) + 2 * MATCH(title)` in natural language mode; the snippet is cut here
  from the content. InnoDB skips words under 3 characters and its stop words, does not stem,
  weighs words by the whole table's statistics and sees only committed rows.

Migration 0003 creates these objects; `is_search_object` hides them from autogenerate.

User text is a search, never syntax it did not mean. PostgreSQL reads it as a web search
("quoted phrases", `or`, `-word`, all else AND); SQLite gets the same reading with every word
quoted for FTS5; MariaDB's natural language mode matches any of the words. NUL characters and
unpaired surrogates are dropped, only the first 64 words count, and words over 256 characters (no
index holds them) are ignored. A text without a letter or digit finds nothing, and runs no SQL.

Ranks are higher-is-better floats that depend only on the text and the stored rows. A cursor holds
a hit's rank and id plus a fingerprint of the text and filter, and finds its place again with the
same expression the ORDER BY uses: rank descending, then id descending. Hits are marked «so».
"""

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Double,
    FromClause,
    Integer,
    Select,
    SQLColumnExpression,
    String,
    and_,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
    type_coerce,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.selectable import Subquery

from gql_blog import models
from gql_blog.ordering import (
    InvalidCursorError,
    Ordering,
    OrderTerm,
    decode_cursor_payload,
    encode_cursor_payload,
)
from gql_blog.read_model import Filter, filter_conditions
from gql_blog.serial_session import SerialSession
from gql_blog.visibility import visible_posts

MAX_WORDS = 64
MAX_WORD_LENGTH = 256
SNIPPET_WORDS = 30
HIT_START = "«"
HIT_END = "»"
ELLIPSIS = "…"
# page_request checks first/last as for every connection, and PageInfo reads only the direction,
# cursor values and has_more of a page's request. The search orders by (rank, id) itself: the
# request's ordering is never used to sort, so it names the id alone.
PAGE_ORDERING = Ordering.of("Post", [OrderTerm("ID", descending=True)])

# What migration 0003 adds beside the models, by the names reflection reports.
SEARCH_TABLES = frozenset(
    {
        "posts_fts",
        *(f"posts_fts_{part}" for part in ("data", "idx", "content", "docsize", "config")),
    }
)
SEARCH_COLUMNS = frozenset({"search_vector", "search_title", "search_content"})
SEARCH_INDEXES = frozenset(
    {"ix_posts_search_vector", "ix_posts_title_content_fulltext", "ix_posts_title_fulltext"}
)
_SEARCH_OBJECTS = {"table": SEARCH_TABLES, "column": SEARCH_COLUMNS, "index": SEARCH_INDEXES}

# InnoDB's default stop words: never matched there, so never marked in a MariaDB snippet.
_INNODB_STOPWORDS = frozenset(
    {
        *("a", "about", "an", "are", "as", "at", "be", "by", "com", "de", "en", "for", "from"),
        *("how", "i", "in", "is", "it", "la", "of", "on", "or", "that", "the", "this", "to"),
        *("was", "what", "when", "where", "who", "will", "with", "und", "www"),
    }
)
_INNODB_MIN_TOKEN = 3

# The parameter that holds the search's text in its statements (a statement serves every text).
TEXT_PARAMETER = "search_text"
_HEADLINE_OPTIONS = (
    f"StartSel={HIT_START}, StopSel={HIT_END}, MaxWords={SNIPPET_WORDS}, MinWords=15"
)
_WEB_SEARCH_ITEM = re.compile(r'(-?)"([^"]*)"?|(-?)([^\s"]+)')
_WORD = re.compile(r"\w+")

_SEARCH_VECTOR = literal_column("posts.search_vector", postgresql.TSVECTOR)
_FTS = table("posts_fts", column("rowid", Integer))
_SEARCH_TITLE = literal_column("posts.search_title", String())
_SEARCH_CONTENT = literal_column("posts.search_content", String())
_FTS_TABLE: ColumnElement[Any] = literal_column("posts_fts")


def is_search_object(name: str | None, type_: str) -> bool:
    """Whether a reflected table, column or index is one of search's (migration 0003's)."""
    return name in _SEARCH_OBJECTS.get(type_, frozenset())


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """One page of a search: its size, direction and the (rank, id) cursors it starts past."""

    size: int
    backward: bool = False
    after: tuple[float, int] | None = None
    before: tuple[float, int] | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    post: models.Post
    rank: float
    snippet: str


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: list[SearchHit]
    has_more: bool


class _Strategy(Protocol):
    """How one dialect finds, ranks and quotes; `page` adds the snippet to a ranked page.
    Its statements bind `text` as `:search_text` (`TEXT_PARAMETER`)."""

    @property
    def text(self) -> str: ...

    def source(self) -> FromClause: ...

    def match(self) -> ColumnElement[bool]: ...

    def rank(self) -> ColumnElement[float]: ...

    def page(self, ranked: Subquery, post: Sequence[Any]) -> Select[Any]: ...

    def snippet(self, content: str, title: str, selected: Sequence[Any]) -> str: ...


class _PostgreSQL:
    def __init__(self, text: str) -> None:
        self._text = text

    @property
    def text(self) -> str:
        return self._text

    def _query(self) -> ColumnElement[Any]:
        # A scalar subquery: computed once per statement (an InitPlan). A plain call is computed
        # again for every match ranked once PostgreSQL caches a generic plan of the prepared
        # statement (the text is a parameter): parsing and stemming it per row doubled a page.
        text = bindparam(TEXT_PARAMETER, self._text, type_=String)
        return select(func.websearch_to_tsquery("english", text)).scalar_subquery()

    def source(self) -> FromClause:
        return models.Post.__table__

    def match(self) -> ColumnElement[bool]:
        # A query of exclusions only ('-word') would match nearly every post: it finds nothing,
        # as on SQLite, where FTS5 cannot express it.
        return and_(
            _SEARCH_VECTOR.bool_op("@@")(self._query()), func.querytree(self._query()) != "T"
        )

    def rank(self) -> ColumnElement[float]:
        return cast(func.ts_rank(_SEARCH_VECTOR, self._query()), Double())

    def page(self, ranked: Subquery, post: Sequence[Any]) -> Select[Any]:
        headlines = [
            func.ts_headline("english", column, self._query(), _HEADLINE_OPTIONS)
            for column in (models.Post.content, models.Post.title)
        ]
        return select(*post, ranked.c.search_rank, *headlines).join_from(
            ranked, models.Post, models.Post.id == ranked.c.id
        )

    def snippet(self, content: str, title: str, selected: Sequence[Any]) -> str:
        return marked_snippet(str(selected[0]), str(selected[1]))


class _SQLite:
    def __init__(self, query: str) -> None:
        self._query = query

    @property
    def text(self) -> str:
        return self._query

    def source(self) -> FromClause:
        return models.Post.__table__.join(_FTS, _FTS.c.rowid == models.Post.id)

    def match(self) -> ColumnElement[bool]:
        return _FTS_TABLE.bool_op("MATCH")(bindparam(TEXT_PARAMETER, self._query, type_=String))

    def rank(self) -> ColumnElement[float]:
        return -func.bm25(_FTS_TABLE, 10.0, 1.0, type_=Double())

    def page(self, ranked: Subquery, post: Sequence[Any]) -> Select[Any]:
        # snippet() needs a MATCH on its own FTS cursor: one per hit of the page, found by rowid.
        snippets = [
            func.snippet(_FTS_TABLE, column, HIT_START, HIT_END, ELLIPSIS, SNIPPET_WORDS)
            for column in (1, 0)  # content, then title
        ]
        return (
            select(*post, ranked.c.search_rank, *snippets)
            .select_from(ranked)
            .join(models.Post, models.Post.id == ranked.c.id)
            .join(_FTS, _FTS.c.rowid == ranked.c.id)
            .where(self.match())
        )

    def snippet(self, content: str, title: str, selected: Sequence[Any]) -> str:
        return marked_snippet(str(selected[0]), str(selected[1]))


class _MariaDB:
    def __init__(self, words: list[str]) -> None:
        self._against = " ".join(words)
        self._terms = frozenset(
            word
            for word in words
            if len(word) >= _INNODB_MIN_TOKEN and word not in _INNODB_STOPWORDS
        )

    def _relevance(self, *columns: ColumnElement[str]) -> ColumnElement[float]:
        match = mysql.match(*columns, against=self._text()).in_natural_language_mode()
        return type_coerce(match, Double())

    def source(self) -> FromClause:
        return models.Post.__table__

    def match(self) -> ColumnElement[bool]:
        return mysql.match(
            _SEARCH_TITLE, _SEARCH_CONTENT, against=self._text()
        ).in_natural_language_mode()

    def _text(self) -> BindParameter[str]:
        return bindparam(TEXT_PARAMETER, self._against, type_=String)

    def rank(self) -> ColumnElement[float]:
        # A title hit outranks a hit in the content only: the title counts once more, twice.
        whole = self._relevance(_SEARCH_TITLE, _SEARCH_CONTENT)
        return whole + 2 * self._relevance(_SEARCH_TITLE)

    def page(self, ranked: Subquery, post: Sequence[Any]) -> Select[Any]:
        return select(*post, ranked.c.search_rank).join_from(
            ranked, models.Post, models.Post.id == ranked.c.id
        )

    @property
    def text(self) -> str:
        return self._against

    def snippet(self, content: str, title: str, selected: Sequence[Any]) -> str:
        return marked_snippet(cut_snippet(content, self._terms), cut_snippet(title, self._terms))


def marked_snippet(content: str, title: str) -> str:
    """The content's snippet when it shows a hit; else the title's, when the hit is there."""
    if HIT_START in content or HIT_START not in title:
        return content
    return title


def cut_snippet(content: str, terms: frozenset[str]) -> str:
    """Up to 30 words of `content` around the first word in `terms`, each such word «marked»."""
    words = content.split()
    first = next((index for index, word in enumerate(words) if _hit(word, terms)), 0)
    start = max(0, min(first - SNIPPET_WORDS // 3, len(words) - SNIPPET_WORDS))
    end = start + SNIPPET_WORDS

    def mark(found: re.Match[str]) -> str:
        word = found.group()
        return f"{HIT_START}{word}{HIT_END}" if word.lower() in terms else word

    text = " ".join(_WORD.sub(mark, word) for word in words[start:end])
    return (ELLIPSIS if start > 0 else "") + text + (ELLIPSIS if end < len(words) else "")


def _hit(word: str, terms: frozenset[str]) -> bool:
    return any(token.lower() in terms for token in _WORD.findall(word))


def _clean(text: str) -> str:
    """The text searched: no NUL or unpaired surrogate, at most 64 words, none absurdly long."""
    # PostgreSQL refuses NUL in text, and no driver encodes an unpaired surrogate.
    text = text.replace("\x00", " ").encode("utf-8", "ignore").decode("utf-8")
    words = [word for word in text.split() if len(word) <= MAX_WORD_LENGTH]
    return " ".join(words[:MAX_WORDS])


def _is_token_character(character: str) -> bool:
    # FTS5's unicode61 tokenizer: letters, numbers and private-use characters make tokens.
    category = unicodedata.category(character)
    return category[0] in "LN" or category == "Co"


def _has_token(text: str) -> bool:
    return any(_is_token_character(character) for character in text)


def _web_search_items(text: str) -> Iterator[tuple[str, str]]:
    """(operator, words) of a web-search text: operator "" (and), "or" or "-" (not)."""
    pending_or = False
    for item in _WEB_SEARCH_ITEM.finditer(text):
        quoted = item[2] is not None
        negated = bool(item[1] or item[3])
        words = item[2] if quoted else item[4]
        if not quoted and not negated and words.lower() == "or":
            pending_or = True
            continue
        if _has_token(words):
            yield ("-" if negated else "or" if pending_or else ""), words
            pending_or = False


def fts5_query(text: str) -> str | None:
    """An FTS5 MATCH text reading `text` as a web search, every word quoted; None: no words."""
    groups: list[list[str]] = []
    excluded: list[str] = []
    for operator, words in _web_search_items(text):
        phrase = '"' + words + '"'  # the words hold no double quote; FTS5 reads them literally
        if operator == "-":
            excluded.append(phrase)
        elif operator == "or" and groups:
            groups[-1].append(phrase)
        else:
            groups.append([phrase])
    if not groups:
        return None
    query = " AND ".join("(" + " OR ".join(group) + ")" for group in groups)
    return f"({query}) NOT ({' OR '.join(excluded)})" if excluded else query


def _strategy(dialect: str, text: str) -> _Strategy | None:
    if not _has_token(text):
        return None
    if dialect == "postgresql":
        return _PostgreSQL(text)
    if dialect == "sqlite":
        query = fts5_query(text)
        return None if query is None else _SQLite(query)
    if dialect in ("mysql", "mariadb"):
        words = _WORD.findall(text.lower())
        return _MariaDB(words) if words else None
    raise NotImplementedError(f"no full-text search for {dialect}")


def _order(
    rank: SQLColumnExpression[float], row_id: SQLColumnExpression[int], *, reverse: bool
) -> list[UnaryExpression[Any]]:
    if reverse:
        return [rank.asc(), row_id.asc()]
    return [rank.desc(), row_id.desc()]


def _past(
    rank: ColumnElement[float],
    values: tuple[float, int],
    *,
    forward: bool,
    inclusive: bool = False,
    name: str = "probe",
) -> ColumnElement[bool]:
    """Hits after (`forward`: lower rank, then lower id) or before a cursor's position, which
    binds `:<name>_rank` and `:<name>_id` (see `SearchQuery.parameters`)."""
    cursor_rank: BindParameter[float] = bindparam(f"{name}_rank", values[0], type_=Double())
    cursor_id = bindparam(f"{name}_id", values[1], type_=Integer)
    row_id = models.Post.id
    if forward:
        tie = row_id <= cursor_id if inclusive else row_id < cursor_id
        return or_(rank < cursor_rank, and_(rank == cursor_rank, tie))
    tie = row_id >= cursor_id if inclusive else row_id > cursor_id
    return or_(rank > cursor_rank, and_(rank == cursor_rank, tie))


class SearchQuery:
    """One search of posts as statements: its text, the viewer's visibility and a filter.

    No session: strawberry's resolver runs it through `PostSearch`, the planner through its own
    connection. The viewer is a user or the planner's viewer parameter (anything with
    `is_admin` and `id`).
    """

    def __init__(self, dialect: str, *, text: str, viewer: Any, where: Filter | None) -> None:
        self.text = _clean(text)
        self._conditions = [visible_posts(viewer), *filter_conditions(where)]
        # Cursors carry it: a cursor of another text or filter is refused, not misread.
        scope = "" if where is None else where.key
        self._fingerprint = hashlib.sha256(
            orjson.dumps(["Post.search", self.text, scope])
        ).hexdigest()[:12]
        self.strategy = _strategy(dialect, self.text)

    def cursor(self, rank: float, row_id: int) -> str:
        return encode_cursor_payload(self._fingerprint, [rank, row_id])

    def decode_cursor(self, cursor: str) -> tuple[float, int]:
        """The (rank, id) a cursor holds; `InvalidCursorError` unless this search made it."""
        raw_values = decode_cursor_payload(cursor, self._fingerprint, "search or filter")
        if len(raw_values) != 2:
            raise InvalidCursorError(f"invalid cursor {cursor!r}: wrong number of values")
        rank, row_id = raw_values
        if not (_is_finite_number(rank) and _is_row_id(row_id)):
            raise InvalidCursorError(f"invalid cursor {cursor!r}: bad rank or id")
        return float(rank), row_id

    def decode_argument(self, name: str, cursor: str | None) -> tuple[float, int] | None:
        """The `after` or `before` argument's position; its error names the argument."""
        if cursor is None:
            return None
        try:
            return self.decode_cursor(cursor)
        except InvalidCursorError as error:
            raise InvalidCursorError(f"`{name}`: {error}") from None

    def page_statement(
        self, request: SearchRequest, post: Sequence[Any] = (models.Post,)
    ) -> Select[Any] | None:
        """The statement of a page: (`post`, rank, *snippet parts) per hit, one more than the
        page to tell whether more follow; `post` is the Post entity or some of its columns.
        None: no words, nothing found."""
        strategy = self.strategy
        if strategy is None:
            return None
        ranked = self._ranked(strategy, request)
        order = _order(ranked.c.search_rank, ranked.c.id, reverse=request.backward)
        return strategy.page(ranked, post).order_by(*order)

    def hits_statement(self, request: SearchRequest, post: Sequence[Any]) -> Select[Any] | None:
        """The statement of a page whose snippets nobody asked for: (`post`, rank) per hit, as
        `page_statement` without the snippet parts, which cost a quarter of a page on
        PostgreSQL (ts_headline parses each hit's text). None: no words, nothing found."""
        strategy = self.strategy
        if strategy is None:
            return None
        ranked = self._ranked(strategy, request)
        order = _order(ranked.c.search_rank, ranked.c.id, reverse=request.backward)
        return (
            select(*post, ranked.c.search_rank)
            .join_from(ranked, models.Post, models.Post.id == ranked.c.id)
            .order_by(*order)
        )

    def _ranked(self, strategy: _Strategy, request: SearchRequest) -> Subquery:
        """The page's hits, best first: (id, search_rank), one more than the page."""
        rank = strategy.rank()
        return (
            select(models.Post.id.label("id"), rank.label("search_rank"))
            .select_from(strategy.source())
            .where(strategy.match(), *self._conditions, *self._cursor_conditions(rank, request))
            .order_by(*_order(rank, models.Post.id, reverse=request.backward))
            .limit(request.size + 1)
            .subquery("ranked")
        )

    def count_statement(self) -> Select[Any] | None:
        """The statement of `count`; None: no words."""
        strategy = self.strategy
        if strategy is None:
            return None
        return (
            select(func.count().label("count"))
            .select_from(strategy.source())
            .where(strategy.match(), *self._conditions)
        )

    def beyond_statement(self, values: tuple[Any, ...], *, forward: bool) -> Select[Any] | None:
        """Whether (`found`) any hit lies at a cursor's position or past it in one direction;
        None: no words, no hit."""
        strategy = self.strategy
        if strategy is None:
            return None
        found = (
            select(models.Post.id)
            .select_from(strategy.source())
            .where(
                strategy.match(),
                *self._conditions,
                _past(strategy.rank(), (values[0], values[1]), forward=forward, inclusive=True),
            )
        )
        return select(found.exists().label("found"))

    @staticmethod
    def _cursor_conditions(
        rank: ColumnElement[float], request: SearchRequest
    ) -> Sequence[ColumnElement[bool]]:
        found = []
        if request.after is not None:
            found.append(_past(rank, request.after, forward=True, name="after"))
        if request.before is not None:
            found.append(_past(rank, request.before, forward=False, name="before"))
        return found

    def parameters(self, request: SearchRequest) -> dict[str, Any]:
        """The values of a page's statement built for another search of the same shape
        (`shape`): the text and the cursors' positions."""
        values: dict[str, Any] = {}
        if self.strategy is not None:
            values[TEXT_PARAMETER] = self.strategy.text
        for name, cursor in (("after", request.after), ("before", request.before)):
            if cursor is not None:
                values[f"{name}_rank"], values[f"{name}_id"] = cursor
        return values

    @staticmethod
    def shape(request: SearchRequest) -> tuple[Any, ...]:
        """What a page's statement depends on besides its values (`parameters`), the viewer
        and the filter."""
        return (request.size, request.backward, request.after is None, request.before is None)


def page_of(request: SearchRequest, hits: list[Any]) -> tuple[list[Any], bool]:
    """The page of a page statement's hits (best first), and whether more follow."""
    kept = hits[: request.size]
    if request.backward:
        kept.reverse()
    return kept, len(hits) > request.size


class PostSearch:
    """A `SearchQuery` run on a session: hits are ORM posts (strawberry's resolver)."""

    def __init__(
        self,
        db: SerialSession,
        *,
        text: str,
        viewer: models.User | None,
        where: Filter | None = None,
    ) -> None:
        self._db = db
        dialect = db.session.get_bind().dialect.name
        self.query = SearchQuery(dialect, text=text, viewer=viewer, where=where)

    def encode_cursor(self, hit: SearchHit) -> str:
        return self.query.cursor(hit.rank, hit.post.id)

    async def page(self, request: SearchRequest) -> SearchPage:
        """One page of hits, best first."""
        strategy, stmt = self.query.strategy, self.query.page_statement(request)
        if strategy is None or stmt is None:
            return SearchPage(hits=[], has_more=False)
        hits = [
            SearchHit(
                row[0], float(row[1]), strategy.snippet(row[0].content, row[0].title, row[2:])
            )
            for row in await self._db.rows(stmt)
        ]
        kept, has_more = page_of(request, hits)
        return SearchPage(hits=kept, has_more=has_more)

    async def count(self) -> int:
        """How many posts the search finds (visibility and filter applied)."""
        stmt = self.query.count_statement()
        return 0 if stmt is None else int(await self._db.scalar(stmt))

    async def beyond(self, values: tuple[Any, ...], *, forward: bool) -> bool:
        """Whether any hit lies at a cursor's position or past it in one direction."""
        stmt = self.query.beyond_statement(values, forward=forward)
        return stmt is not None and bool(await self._db.scalar(stmt))


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_row_id(value: Any) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and -models.ID_LIMIT <= value < models.ID_LIMIT
    )
