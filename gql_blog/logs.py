"""Logging for every server process: one JSON object per line on stderr, event names with fields."""

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord carries; anything else arrived through `extra=` and becomes a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured duplicate of the message
}


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "event", **extra}`, one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry |= {
            key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def logging_config(*, debug: bool) -> dict[str, Any]:
    """A `logging.config.dictConfig` dict; uvicorn applies it once in each worker process."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "gql_blog.logs.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
            }
        },
        # uvicorn's and strawberry's loggers (strawberry.execution) propagate to this one handler.
        # The app logs one `graphql.request` line per request, so uvicorn's access log is off.
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gql_blog": {"level": "DEBUG" if debug else "INFO"},
            "uvicorn": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
            # Library chatter at INFO is no news for a server's log: alembic's "Context impl"
            # on every /readyz (readiness reads the revision through alembic), the pool's
            # "Pool disposed" on every stop. GQL_BLOG_ECHO_SQL logs statements regardless.
            "alembic": {"level": "WARNING"},
            "sqlalchemy": {"level": "WARNING"},
        },
    }
