"""Alembic, driven from code: upgrade, downgrade, current revision and drift checks for one URL.

The functions are synchronous (Alembic's env.py runs its own event loop); call them from async
code with `asyncio.to_thread`.
"""

from collections.abc import Mapping
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

import gql_blog
from gql_blog import search
from gql_blog.errors import MigrationError as MigrationError  # re-exported: callers name it here
from gql_blog.models import Base


def script_location() -> Path:
    """The migrations folder: inside an installed wheel, or the repository's alembic/."""
    package = Path(gql_blog.__file__).resolve().parent
    for candidate in (package / "_alembic", package.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise MigrationError(f"no migrations found next to {package}")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise MigrationError("the migration scripts have no head revision")
    return head


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def current_revision(connection: Connection) -> str | None:
    """The revision the connected database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def include_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """Autogenerate compares what the models declare, not full-text search's objects."""
    return not search.is_search_object(name, type_)


def schema_differences(connection: Connection) -> list[object]:
    """What autogenerate would change to make the database match the models (empty: in sync)."""
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "target_metadata": Base.metadata,
            "include_name": include_name,
        },
    )
    return list(compare_metadata(context, Base.metadata))
