"""One write, one transaction: commit what succeeded, roll back what was refused or failed.

Both execution paths run their writes here: strawberry's mutation fields (`schema/results.py`
turns a model rule's `InvalidValueError` into a `ValidationError`) and the planned mutations
(`plan/mutations.py`). The events the writes noted go to the bus only once the commit is done.
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import events

R = TypeVar("R")


async def run_write(
    session: AsyncSession,
    body: Callable[[], Awaitable[R]],
    *,
    bus: events.EventBus,
    is_refusal: Callable[[R], bool],
) -> R:
    """Run `body` in the session's transaction; a refusal value or an exception rolls it back.

    A model rule's `InvalidValueError` propagates after the rollback, as any exception does.
    """
    try:
        result = await body()
        refused = is_refusal(result)
        if not refused:
            await bus.record(session, events.pending(session))
    except BaseException:
        await roll_back(session)
        raise
    if refused:
        await roll_back(session)
        return result
    try:
        await session.commit()
    except BaseException:
        # A failed COMMIT (its connection lost, say) leaves the session mid-commit: roll back,
        # so the error that reaches the client is the COMMIT's, not the session's state.
        await roll_back(session)
        raise
    bus.committed(events.discard(session))
    return result


async def roll_back(session: AsyncSession) -> None:
    """Forget the transaction's events, then roll it back."""
    events.discard(session)
    await session.rollback()
