"""Which input field a unique violation is about: the one place that reads the databases' messages.

A taken username, e-mail address or slug is found by the database's unique index, even when two
requests race; the writer turns the `IntegrityError` into a ConflictError naming the field.
"""

import re

from sqlalchemy.exc import IntegrityError


def conflict_field(error: IntegrityError, fields: dict[str, str]) -> str | None:
    """Which GraphQL input field a unique violation is about, from the constraint or column name.

    `fields` maps a substring of the database's message (constraint, index or column name, e.g.
    "username") to the GraphQL field name; None when the violation is not one of them.
    """
    text = _violated_constraint(str(error.orig)).lower()
    for needle, field in fields.items():
        if needle in text:
            return field
    return None


# Where each dialect names the violated constraint. The messages also quote the duplicate value
# (which may well contain "username" or "email"), so only the name is searched: PostgreSQL names
# it before the value, MariaDB after it, SQLite shows table.column and no value.
_CONSTRAINT_NAMES = (
    (re.compile(r'unique constraint "([^"]+)"'), 0),
    (re.compile(r"for key '([^']+)'"), -1),
    (re.compile(r"UNIQUE constraint failed: ([\w., ]+)"), 0),
)


def _violated_constraint(message: str) -> str:
    for pattern, position in _CONSTRAINT_NAMES:
        found = pattern.findall(message)
        if found:
            return str(found[position])
    return message
