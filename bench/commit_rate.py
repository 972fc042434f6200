"""`python -m bench.commit_rate`: what PostgreSQL alone commits of addComment, per variant.

No server: 16 asyncpg clients send addComment's statements (the token's user, the post read,
the comment, its audit row, its outbox row) in a transaction each, for a few seconds per variant,
the variants side by side and repeated, so that a shared machine's noise shows as spread:

- `share`: the post read `FOR SHARE`, as `writes.find_post` reads it;
- `plain`: without the lock;
- `+notify`: a `pg_notify` inside the transaction (the event bus before 62c3679);
- `+after`: one NOTIFY after the commits, from a connection of its own, for every commit made
  while the previous one was on its way (`events.PostgresBus` since 62c3679).

    .venv/bin/python -m bench.commit_rate postgresql://postgres@127.0.0.1:5432/gqlb_writes \\
        share+notify,share+after,share --post-id 5 --user-id 1
"""

import asyncio
import time
from typing import Final

import asyncpg
import click

CLIENTS: Final = 16
CHANNEL: Final = "gql_blog_commit_rate"
_USER = "SELECT * FROM users WHERE id = $1"
_POST = "SELECT * FROM posts WHERE id = $1 AND (published OR user_id = $2)"
_COMMENT = (
    "INSERT INTO comments (content, created_at, user_id, post_id)"
    " VALUES ('Measured.', now(), $1, $2) RETURNING id"
)
_AUDIT = (
    "INSERT INTO audit_logs (entity_type, entity_id, action, actor_id, changes, created_at)"
    " VALUES ('Comment', $1, 'CREATE', $2, '{}', now())"
)
_OUTBOX = (
    "INSERT INTO event_outbox (kind, post_id, comment_id, created_at)"
    " VALUES ('comment_added', $1, $2, now())"
)
_NOTIFY = "SELECT pg_notify($1, '')"


class _Variant:
    """One variant's transactions, and its NOTIFYs after the commits when it sends them so."""

    def __init__(self, name: str, post_id: int, user_id: int) -> None:
        self.name = name
        self._post_id = post_id
        self._user_id = user_id
        self._notify_wanted = asyncio.Event()

    async def write(self, connection: asyncpg.Connection) -> None:
        await connection.fetchrow(_USER, self._user_id)
        lock = " FOR SHARE" if self.name.startswith("share") else ""
        async with connection.transaction():
            await connection.fetchrow(_POST + lock, self._post_id, self._user_id)
            comment_id = await connection.fetchval(_COMMENT, self._user_id, self._post_id)
            await connection.execute(_AUDIT, comment_id, self._user_id)
            await connection.execute(_OUTBOX, self._post_id, comment_id)
            if self.name.endswith("+notify"):
                await connection.execute(_NOTIFY, CHANNEL)
        if self.name.endswith("+after"):
            self._notify_wanted.set()

    async def notify_after_commits(self, connection: asyncpg.Connection) -> None:
        while True:
            await self._notify_wanted.wait()
            self._notify_wanted.clear()
            await connection.execute(_NOTIFY, CHANNEL)


async def _rate(url: str, variant: _Variant, seconds: float) -> float:
    connections = [await asyncpg.connect(url) for _ in range(CLIENTS + 1)]
    notifying = asyncio.create_task(variant.notify_after_commits(connections[-1]))
    written = 0
    stop = time.monotonic() + seconds

    async def client(connection: asyncpg.Connection) -> None:
        nonlocal written
        while time.monotonic() < stop:
            await variant.write(connection)
            written += 1

    started = time.monotonic()
    try:
        await asyncio.gather(*(client(connection) for connection in connections[:-1]))
    finally:
        notifying.cancel()
        for connection in connections:
            await connection.close()
    return written / (time.monotonic() - started)


@click.command()
@click.argument("url")
@click.argument("variants")
@click.option("--post-id", type=int, required=True, help="The post every comment goes to.")
@click.option("--user-id", type=int, required=True, help="The commenting user.")
@click.option("--rounds", default=3, show_default=True, help="How often each variant runs.")
@click.option("--seconds", default=4.0, show_default=True, help="How long each run lasts.")
def main(url: str, variants: str, post_id: int, user_id: int, rounds: int, seconds: float) -> None:
    """Commits per second of each of VARIANTS (comma-separated) on the database at URL."""
    names = variants.split(",")
    for _ in range(rounds):
        rates = [
            asyncio.run(_rate(url, _Variant(name, post_id, user_id), seconds)) for name in names
        ]
        click.echo(
            "  ".join(f"{name} {rate:,.0f}/s" for name, rate in zip(names, rates, strict=True))
        )


if __name__ == "__main__":
    main()
