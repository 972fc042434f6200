"""Opaque global ids: base64 of `Type:integer`, as Relay expects."""

import base64
import binascii
from collections.abc import Collection

from gql_blog.entities import NODE_MODELS
from gql_blog.errors import InvalidIdError


def encode_global_id(type_name: str, row_id: int) -> str:
    return base64.b64encode(f"{type_name}:{row_id}".encode()).decode()


def decode_global_id(
    value: str, *, known_types: Collection[str] = NODE_MODELS.keys()
) -> tuple[str, int]:
    """(type name, row id) of a global id; `InvalidIdError` ("invalid id") for anything else."""
    try:
        type_name, _, raw_id = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidIdError(f"invalid id {value!r}: not a global id") from None
    if type_name not in known_types:
        raise InvalidIdError(f"invalid id {value!r}: no type named {type_name!r}")
    if not raw_id.isascii() or not raw_id.isdigit() or len(raw_id) > 18:
        raise InvalidIdError(f"invalid id {value!r}: {raw_id!r} is not an integer id")
    return type_name, int(raw_id)
