"""Expensive requests take turns, so that one client's costly work cannot starve everyone.

A request is expensive when its price (the cost the limits check and `extensions.cost`
reports) reaches `GQL_BLOG_EXPENSIVE_COST`. Each worker runs at most
`GQL_BLOG_MAX_EXPENSIVE_REQUESTS` of them at once: each holds one database connection, so
expensive work uses at most that share of the pool, and cheap requests never wait behind it for
a connection. Up to `GQL_BLOG_EXPENSIVE_QUEUE_SIZE` more wait for a turn, each at most
`GQL_BLOG_POOL_TIMEOUT_SECONDS` (as for a pool connection); a request beyond the queue, or
that waited that long, is answered 503 `SERVER_BUSY` before any SQL runs. Cheap requests are
never queued here.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gql_blog.config import Settings

logger = logging.getLogger(__name__)


class ServerBusyError(Exception):
    """No turn for an expensive request came free in time (or the queue for one was full)."""


def is_expensive(cost: int, settings: Settings) -> bool:
    """Whether a request of this price takes turns with the other expensive ones."""
    return cost >= settings.expensive_cost


class ExpensiveRequests:
    """One worker's turns for expensive requests: a bounded number run, a bounded queue waits."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._turns = asyncio.Semaphore(settings.max_expensive_requests)
        self._waiting = 0

    @asynccontextmanager
    async def admitted(self, cost: int) -> AsyncIterator[None]:
        """Run the block now if the request is cheap; else once it has a turn."""
        if not is_expensive(cost, self._settings):
            yield
            return
        await self._take_turn(cost)
        try:
            yield
        finally:
            self._turns.release()

    async def _take_turn(self, cost: int) -> None:
        if self._turns.locked() and self._waiting >= self._settings.expensive_queue_size:
            logger.warning("admission.queue_full", extra={"cost": cost})
            raise ServerBusyError("the queue of expensive requests is full")
        self._waiting += 1
        try:
            async with asyncio.timeout(self._settings.pool_timeout_seconds):
                await self._turns.acquire()
        except TimeoutError as error:
            logger.warning("admission.wait_timeout", extra={"cost": cost})
            raise ServerBusyError("no turn for an expensive request came free in time") from error
        finally:
            self._waiting -= 1
