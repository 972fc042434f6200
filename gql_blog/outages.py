"""Outage classification: which database failures mean busy or unavailable, and their reasons."""

import enum
import socket
import sqlite3

import sqlalchemy.exc
from sqlalchemy.exc import DBAPIError


class ConnectionLostError(ConnectionError):
    """The database connection broke under a statement sent on the driver's own connection."""


class Outage(enum.Enum):
    """Why a request could not reach the database: retrying later may well work."""

    BUSY = "busy"  # every connection is in use (or, on SQLite, the write lock stayed taken)
    UNAVAILABLE = "unavailable"  # the database refuses or drops connections


# PostgreSQL SQLSTATEs: too_many_connections; admin_shutdown, crash_shutdown, cannot_connect_now.
_BUSY_SQLSTATES = {"53300"}
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03"}
# Class 08, connection exceptions: asyncpg raises them itself (08003 for a connection that
# closed mid-statement) on the planned read path, which runs on its own pool (`ReadPool`).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08",)
# MySQL/MariaDB client errors: cannot connect, server gone away, connection lost; too many.
_UNAVAILABLE_ERRNOS = {2002, 2003, 2006, 2013}
_BUSY_ERRNOS = {1040}


def outage_of(error: BaseException) -> Outage | None:
    """The outage an exception (or one it was raised from) stands for; None for anything else."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        found = _outage_itself(cause)
        if found is not None:
            return found
        cause = cause.__cause__ or cause.__context__
    return None


def _outage_itself(error: BaseException) -> Outage | None:
    if isinstance(error, sqlalchemy.exc.TimeoutError):  # the pool had no connection to give
        return Outage.BUSY
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return Outage.UNAVAILABLE
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return Outage.UNAVAILABLE  # refused, reset, an unknown host, or the connect timed out
    sqlstate = getattr(error, "sqlstate", None)
    code = error.args[0] if error.args and isinstance(error.args[0], int) else None
    if sqlstate in _BUSY_SQLSTATES or code in _BUSY_ERRNOS:
        return Outage.BUSY
    if sqlstate in _UNAVAILABLE_SQLSTATES or code in _UNAVAILABLE_ERRNOS:
        return Outage.UNAVAILABLE
    if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
        return Outage.UNAVAILABLE
    if isinstance(error, sqlite3.OperationalError):
        return _SQLITE_OUTAGES.get(str(error))
    return None


_SQLITE_OUTAGES = {
    "database is locked": Outage.BUSY,
    "unable to open database file": Outage.UNAVAILABLE,
}


def error_reason(error: BaseException) -> str:
    """The driver's own message about a failure, on one line."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    args = cause.args
    # (errno, message) from OSError; (code, message) from asyncmy.
    text = str(args[1]) if len(args) == 2 and isinstance(args[0], int) else str(cause)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(cause).__name__
