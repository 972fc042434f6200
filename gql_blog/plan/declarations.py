"""What each GraphQL field of an entity type reads, declared once beside its strawberry field.

A strawberry field carries its declaration as `metadata={PLAN: ...}`; a plain field without a
resolver reads the model column of the same name (see `gql_blog.plan.build`). strawberry's
resolvers and the planner both follow these declarations, so the schema exists once.
"""

from dataclasses import dataclass

# The key under which a strawberry field's metadata holds its declaration.
PLAN = "gql_blog.plan"


@dataclass(frozen=True, slots=True)
class GlobalId:
    """The opaque Relay id of the row (its type name and primary key)."""


@dataclass(frozen=True, slots=True)
class Email:
    """The user's e-mail address, null unless the viewer is that user or an admin."""


@dataclass(frozen=True, slots=True)
class ToOne:
    """A row of `entity` whose id is the `foreign_key` column of this row."""

    entity: str
    foreign_key: str


@dataclass(frozen=True, slots=True)
class Tags:
    """A post's tags, by name, through post_tags."""


@dataclass(frozen=True, slots=True)
class Children:
    """A connection over a to-many relation (a key of `gql_blog.read_model.RELATIONS`)."""

    relation: str
    entity: str


Declaration = GlobalId | Email | ToOne | Tags | Children


def declare(declaration: Declaration) -> dict[str, Declaration]:
    """The metadata a strawberry field carries for the planner."""
    return {PLAN: declaration}
