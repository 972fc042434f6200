"""Deterministic demo data: users, posts (some drafts), comments and tags, inserted in bulk.

The same plan and random seed give the same rows on an empty database. Rows go in with Core
`insert()` executemany, chunked, inside the caller's transaction. Primary keys continue from each
table's current maximum, so seeding a database that already has rows works too; usernames end in
the user's id, so they stay unique.
"""

import functools
import itertools
import random
import string
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_blog import auth, models, slugs

# Every seeded user signs in with this password.
DEMO_PASSWORD = "demo-password"
# The first user of every run is named this, then its id (`demo1` on an empty database).
DEMO_USERNAME = "demo"
DRAFT_SHARE = 0.15
# Of the comments after a post's first: how many reply to an earlier one; of all, how many
# were edited since.
REPLY_SHARE = 0.35
EDIT_SHARE = 0.1
MAX_TAGS_PER_POST = 4
HISTORY = timedelta(days=730)
# asyncpg refuses statements with more than 32,767 bind parameters; stay under it on every table.
MAX_BIND_PARAMETERS = 32_767
CHUNK_ROWS = 2_000

TAGS = (
    "python", "sql", "graphql", "postgresql", "sqlite", "mariadb", "async", "testing",
    "performance", "security", "devops", "docker", "linux", "rust", "go", "javascript",
    "typescript", "css", "design", "career", "remote-work", "productivity", "open-source",
    "tutorial", "opinion", "book-review", "travel", "cooking", "coffee", "running",
    "photography", "music", "gardening", "chess", "gaming", "history", "science", "math",
    "writing", "meta",
)  # fmt: skip
FIRST_NAMES = (
    "Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Guido",
    "Zoë", "José", "Siobhán", "Ngozi", "Mei", "Aarav", "Fatima", "Lars", "Ingrid", "Mateo",
    "Amara", "Hiroshi", "Chloé", "Rahul", "Olga", "Kwame", "Sofia", "Noah", "Leila", "Tomás",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie",
    "Allen", "van Rossum", "García", "O'Brien", "Okafor", "Nakamura", "Müller", "Kowalski",
    "Johansson", "Haddad", "Singh", "Petrova", "Mensah", "Rossi", "Dubois", "Kim", "Nguyen",
)  # fmt: skip
TOPICS = (
    "async Python", "SQL indexes", "GraphQL", "keyset pagination", "type hints",
    "database migrations", "container images", "code review", "test fixtures", "caching",
    "PostgreSQL", "SQLite", "MariaDB", "load balancers", "sourdough bread", "trail running",
    "home espresso", "mechanical keyboards", "film photography", "chess openings",
    "urban gardening", "board games", "jazz piano", "budget travel", "remote work",
)  # fmt: skip
ADJECTIVES = (
    "practical", "gentle", "surprising", "opinionated", "short", "complete", "honest",
    "unexpected", "boring", "fast", "friendly", "minimal",
)  # fmt: skip
VERBS = ("debugged", "rewrote", "measured", "replaced", "scaled", "simplified", "broke", "shipped")
PLACES = ("work", "home", "a startup", "the library", "a hackathon", "our meetup")
DURATIONS = ("a weekend", "three evenings", "a month", "two years", "an afternoon")
OUTCOMES = (
    "it changed how I work", "I am still not sure it was worth it", "everything got simpler",
    "I learned to respect it", "I broke production once",
)  # fmt: skip
VIRTUES = ("patience", "small steps", "good defaults", "reading the manual", "measuring first")
COMPARISONS = ("faster", "cheaper", "quieter", "smaller", "simpler")

WORDS: dict[str, Sequence[str]] = {
    "topic": TOPICS,
    "other": TOPICS,
    "adjective": ADJECTIVES,
    "verb": VERBS,
    "place": PLACES,
    "duration": DURATIONS,
    "outcome": OUTCOMES,
    "virtue": VIRTUES,
    "comparison": COMPARISONS,
    "count": [str(count) for count in range(3, 13)],
}
TITLE_TEMPLATES = (
    "A {adjective} guide to {topic}",
    "{count} things I learned about {topic}",
    "Why {topic} is more {adjective} than you think",
    "How we {verb} {topic} at {place}",
    "Notes on {topic}",
    "{topic} vs. {other}, compared",
    "What {topic} taught me about {other}",
    "The week I {verb} {topic}",
    "{topic}, revisited",
    "Getting started with {topic}",
    "In defence of {topic}",
)
SENTENCE_TEMPLATES = (
    "I spent {duration} on {topic} and {outcome}.",
    "The first thing to know about {topic} is that it rewards {virtue}.",
    "Most advice on {topic} skips the part about {other}.",
    "We {verb} our setup twice before it felt {adjective}.",
    "If you only remember one thing, make it {virtue}.",
    "{topic} and {other} have more in common than it seems.",
    "My notes are below, {adjective} as they are.",
    "The numbers surprised me: {count} times {comparison} than before.",
    "There is a {adjective} trick here that nobody mentioned at {place}.",
    "Next time I would start with {other} instead.",
)
COMMENT_TEMPLATES = (
    "Great post, thanks!",
    "I tried this with {topic} and it worked.",
    "Have you compared it with {other}?",
    "This matches my experience at {place}.",
    "Small typo in the second paragraph.",
    "Bookmarked for later.",
    "I disagree about {topic}, but well argued.",
    "Could you write a follow-up on {other}?",
    "We {verb} ours last year; {outcome}.",
)
BIO_TEMPLATES = (
    "Writes about {topic} and {other}.",
    "Learning {topic}, one mistake at a time.",
    "Works from {place}; {verb} more things than planned.",
    "Opinions my own. {topic} enthusiast.",
)

Row = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedPlan:
    """How much to create; `random_seed` makes it repeatable."""

    users: int = 100
    posts_per_user: int = 10
    comments_per_post: int = 2
    random_seed: int = 42

    def __post_init__(self) -> None:
        if min(self.users, self.posts_per_user, self.comments_per_post) < 0:
            raise ValueError("seed counts must not be negative")

    @property
    def posts(self) -> int:
        return self.users * self.posts_per_user

    @property
    def comments(self) -> int:
        return self.posts * self.comments_per_post

    @property
    def rows(self) -> int:
        """Users, posts and comments: the units `on_progress` reports."""
        return self.users + self.posts + self.comments


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedCounts:
    """What one run inserted; `tags` counts only tags that did not exist yet."""

    users: int
    posts: int
    drafts: int
    comments: int
    tags: int
    post_tags: int
    # A username to sign in with (the run's first user); None when it added no user.
    demo_username: str | None = None


@dataclass(slots=True)
class _Batch:
    posts: list[Row] = field(default_factory=list)
    links: list[Row] = field(default_factory=list)
    comments: list[Row] = field(default_factory=list)

    @property
    def drafts(self) -> int:
        return sum(1 for post in self.posts if not post["published"])


@dataclass(frozen=True, slots=True)
class _Ids:
    posts: Iterator[int]
    comments: Iterator[int]


def _ignore_progress(rows: int) -> None:
    """Report nothing."""


async def seed_database(
    connection: AsyncConnection,
    plan: SeedPlan,
    *,
    now: datetime | None = None,
    on_progress: Callable[[int], None] = _ignore_progress,
) -> SeedCounts:
    """Insert the plan's rows in the connection's transaction; `on_progress(n)` after each chunk."""
    tag_ids, new_tags = await _ensure_tags(connection)
    first_user = await _next_id(connection, models.User)
    user_ids = range(first_user, first_user + plan.users)
    rng = random.Random(plan.random_seed)
    maker = _RowMaker(rng, now=now or models.utc_now(), commenters=user_ids)
    maker.take_slugs(await connection.scalars(select(models.Post.slug)))
    users = [maker.user(user_id) for user_id in user_ids]
    if users:
        users[0] = maker.demo_user(users[0])
    for chunk in _chunks(users, CHUNK_ROWS):
        await _insert(connection, models.User, chunk)
        on_progress(len(chunk))
    ids = _Ids(
        posts=itertools.count(await _next_id(connection, models.Post)),
        comments=itertools.count(await _next_id(connection, models.Comment)),
    )
    drafts = links = 0
    authors_per_batch = max(1, CHUNK_ROWS // max(1, plan.posts_per_user))
    for authors in _chunks(users, authors_per_batch):
        batch = maker.posts(authors, plan=plan, tag_ids=tag_ids, ids=ids)
        await _insert(connection, models.Post, batch.posts)
        await _insert(connection, models.post_tags, batch.links)
        await _insert(connection, models.Comment, batch.comments)
        on_progress(len(batch.posts) + len(batch.comments))
        drafts += batch.drafts
        links += len(batch.links)
    await _advance_postgresql_sequences(connection)
    return SeedCounts(
        users=plan.users,
        posts=plan.posts,
        drafts=drafts,
        comments=plan.comments,
        tags=new_tags,
        post_tags=links,
        demo_username=users[0]["username"] if users else None,
    )


class _RowMaker:
    """Builds rows from word lists; every random choice comes from one seeded `random.Random`."""

    def __init__(self, rng: random.Random, *, now: datetime, commenters: range) -> None:
        self._rng = rng
        self._now = now
        self._commenters = commenters
        self._password_hash = _demo_password_hash()
        # Pools of ready-made text: a few random picks per row keep 100,000 posts fast to build.
        sentences = [self._fill(rng.choice(SENTENCE_TEMPLATES)) for _ in range(400)]
        remarks = [self._fill(rng.choice(COMMENT_TEMPLATES)) for _ in range(150)]
        self._paragraphs = [self._join(sentences, 2, 6) for _ in range(1000)]
        self._comments = [self._join(remarks, 1, 3) for _ in range(1000)]
        self._bios = [self._fill(rng.choice(BIO_TEMPLATES)) for _ in range(100)]
        # Threads and edits draw from their own generator: the other rows stay as they were.
        self._threads = random.Random(rng.random())
        self._slugs_taken: set[str] = set()
        # Per slug base, the number of the next candidate that may be free (`slugs.candidate`).
        self._slug_numbers: dict[str, int] = {}

    def take_slugs(self, taken: Iterable[str | None]) -> None:
        """Slugs the database holds already: new posts' slugs avoid them."""
        self._slugs_taken.update(slug for slug in taken if slug is not None)

    def _slug(self, title: str) -> str:
        """The first free slug of the title, as createPost picks it (without a read per post)."""
        base = slugs.slugify(title)
        number = self._slug_numbers.get(base, 1)
        while (found := slugs.candidate(base, number)) in self._slugs_taken:
            number += 1
        self._slug_numbers[base] = number + 1
        self._slugs_taken.add(found)
        return found

    def user(self, user_id: int) -> Row:
        rng = self._rng
        first_name = rng.choice(FIRST_NAMES) if rng.random() > 0.08 else None
        last_name = rng.choice(LAST_NAMES) if rng.random() > 0.12 else None
        username = _username(first_name, last_name, user_id)
        bio = " ".join(rng.choices(self._bios, k=rng.randint(1, 2))) if rng.random() > 0.3 else None
        return {
            "id": user_id,
            "username": username,
            "email": f"{username}@example.com",
            "password_hash": self._password_hash,
            "first_name": first_name,
            "last_name": last_name,
            "bio": bio,
            "age": rng.randint(16, 80) if rng.random() > 0.25 else None,
            "is_active": True,
            "is_admin": False,
            "created_at": self._now - HISTORY * rng.random(),
        }

    def demo_user(self, user: Row) -> Row:
        """`user`, renamed to the predictable `demo<id>` that the README signs in with."""
        username = _username(DEMO_USERNAME, None, user["id"])
        return user | {"username": username, "email": f"{username}@example.com"}

    def posts(
        self, authors: Sequence[Row], *, plan: SeedPlan, tag_ids: Sequence[int], ids: _Ids
    ) -> _Batch:
        """Each author's posts, with their tags and comments by any seeded user."""
        batch = _Batch()
        for author in authors:
            for _ in range(plan.posts_per_user):
                post = self._post(next(ids.posts), author)
                batch.posts.append(post)
                batch.links.extend(self._links(post["id"], tag_ids))
                thread: list[Row] = []
                for _ in range(plan.comments_per_post):
                    thread.append(self._comment(next(ids.comments), post, thread))
                batch.comments.extend(thread)
        return batch

    def _post(self, post_id: int, author: Row) -> Row:
        rng = self._rng
        joined: datetime = author["created_at"]
        created_at = joined + (self._now - joined) * rng.random()
        title = self._fill(rng.choice(TITLE_TEMPLATES))
        content = "\n\n".join(rng.choices(self._paragraphs, k=rng.randint(1, 4)))
        published = rng.random() >= DRAFT_SHARE
        # Published some time after it was written (drafts: not yet).
        published_at = created_at + (self._now - created_at) * self._threads.random() ** 4
        return {
            "id": post_id,
            "title": title,
            "content": content,
            "published": published,
            "created_at": created_at,
            "updated_at": created_at,
            "published_at": published_at if published else None,
            "slug": self._slug(title),
            "user_id": author["id"],
        }

    def _links(self, post_id: int, tag_ids: Sequence[int]) -> list[Row]:
        chosen = self._rng.sample(tag_ids, self._rng.randint(0, MAX_TAGS_PER_POST))
        return [{"post_id": post_id, "tag_id": tag_id} for tag_id in chosen]

    def _comment(self, comment_id: int, post: Row, earlier: Sequence[Row]) -> Row:
        """A comment on `post`; some reply to one of its `earlier` comments, some were edited."""
        rng, threads = self._rng, self._threads
        posted: datetime = post["created_at"]
        content = rng.choice(self._comments)
        created_at = posted + (self._now - posted) * rng.random()
        user_id = rng.choice(self._commenters)
        parent = None
        if earlier and threads.random() < REPLY_SHARE:
            parent = threads.choice(earlier)
            # After its parent: replies come later.
            since = parent["created_at"]
            created_at = since + (self._now - since) * threads.random()
        edited_at = None
        if threads.random() < EDIT_SHARE:
            edited_at = created_at + (self._now - created_at) * threads.random()
        return {
            "id": comment_id,
            "content": content,
            "created_at": created_at,
            "user_id": user_id,
            "post_id": post["id"],
            "parent_id": None if parent is None else parent["id"],
            "edited_at": edited_at,
        }

    def _join(self, sentences: Sequence[str], fewest: int, most: int) -> str:
        return " ".join(self._rng.choices(sentences, k=self._rng.randint(fewest, most)))

    def _fill(self, template: str) -> str:
        """The template with a random word for each of its fields, capitalised."""
        words = {field: self._rng.choice(WORDS[field]) for field in _fields(template)}
        text = template.format(**words)
        return text[0].upper() + text[1:]


@functools.cache
def _fields(template: str) -> tuple[str, ...]:
    return tuple(field for _, field, _, _ in string.Formatter().parse(template) if field)


@functools.cache
def _demo_password_hash() -> str:
    """Hashed once per process and shared by every seeded user: argon2 is slow on purpose."""
    return auth.hash_password(DEMO_PASSWORD)


def _username(first_name: str | None, last_name: str | None, user_id: int) -> str:
    """`zoe_garcia42`: the names' letters, then the id; names hold no digits, so it is unique.

    Only letters, digits and `_`, as `register` demands of every username.
    """
    parts = [_ascii_letters(name) for name in (first_name, last_name) if name]
    base = "_".join(part for part in parts if part) or "reader"
    suffix = str(user_id)
    return base[: models.USERNAME_MAX - len(suffix)] + suffix


def _ascii_letters(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(char for char in folded.lower() if char.isalpha())


def _chunks(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def _insert(
    connection: AsyncConnection, target: type[models.Base] | Table, rows: Sequence[Row]
) -> None:
    """One executemany per chunk, each under every dialect's bind parameter limit."""
    if not rows:
        return
    size = min(CHUNK_ROWS, MAX_BIND_PARAMETERS // len(rows[0]))
    for chunk in _chunks(rows, size):
        await connection.execute(insert(target), list(chunk))


async def _next_id(connection: AsyncConnection, model: type[models.Base]) -> int:
    highest = await connection.scalar(select(func.max(model.__table__.c.id)))
    return int(highest or 0) + 1


async def _ensure_tags(connection: AsyncConnection) -> tuple[list[int], int]:
    """The vocabulary's tag ids in `TAGS` order, creating missing tags; and how many were new."""
    stmt = select(models.Tag.name, models.Tag.id).where(models.Tag.name.in_(TAGS))
    ids = dict((await connection.execute(stmt)).all())
    missing = [name for name in TAGS if name not in ids]
    first = await _next_id(connection, models.Tag)
    new_ids = {name: first + offset for offset, name in enumerate(missing)}
    await _insert(
        connection, models.Tag, [{"id": tag_id, "name": name} for name, tag_id in new_ids.items()]
    )
    ids |= new_ids
    return [ids[name] for name in TAGS], len(new_ids)


async def _advance_postgresql_sequences(connection: AsyncConnection) -> None:
    """Explicit ids leave PostgreSQL's sequences behind; MariaDB and SQLite follow by themselves."""
    if connection.dialect.name != "postgresql":
        return
    for model in (models.User, models.Post, models.Comment, models.Tag):
        table = model.__table__
        highest = select(func.max(table.c.id)).scalar_subquery()
        # setval is strict: on an empty table (NULL maximum) it leaves the sequence alone.
        await connection.execute(
            select(func.setval(func.pg_get_serial_sequence(model.__tablename__, "id"), highest))
        )
