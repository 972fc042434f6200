"""The planned mutations' writes: the same statements as strawberry's mutation fields, in one
transaction each (`transactions.run_write`), answering a row for the planned reader, a value
(`Deleted`, `BulkUpdated`) or a refusal.

A refusal is one of the API's error types as plain values (`Refusal`); the row is keyed by model
attribute, as the planned reader's rows are. Rows the write already holds (the viewer as author,
the post commented on, the new post's tags) come back beside it, so the payload does not read
them again. `WRITES` names every planned mutation field, its payload type and its write.
"""

import dataclasses
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, true
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from gql_blog import audit, auth, engines, events, metrics, models, throttle, transactions, writes
from gql_blog.config import Settings
from gql_blog.errors import InvalidIdError, InvalidInputError, NotPlannedError
from gql_blog.ids import decode_global_id
from gql_blog.plan.statements import DriverFetch, Statement
from gql_blog.read_model import Filter, ViewerParameter
from gql_blog.serial_session import SerialSession
from gql_blog.visibility import Viewer


@dataclass(frozen=True, slots=True)
class Refusal:
    """An expected failure: its GraphQL type name and its fields (`message`, `field`, `id`)."""

    type_name: str
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Written:
    """The written row, and rows it already knows: by (entity, id), and each post's tags."""

    row: dict[str, Any]
    known: dict[tuple[str, int], Mapping[str, Any]] = field(default_factory=dict)
    tags: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Deleted:
    """deletePost's and deleteComment's payload: the global id the row had."""

    id: str


@dataclass(frozen=True, slots=True)
class BulkUpdated:
    """A bulk operation's payload: how many rows it changed."""

    affected: int


@dataclass(frozen=True, slots=True)
class SignedIn:
    """register's and login's payload: the token issued, and its user's row (`IDENTITY_COLUMNS`),
    the viewer for the rest of the request."""

    token: str
    user: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Writer:
    """What a planned write needs of its request: the session, the event bus, the token it was
    sent with (logout revokes it), the settings and the client's address (sign-ins).

    `driver` is set (PostgreSQL) when every write of the operation is one of `AT_ONCE`: each
    then runs as one statement on the session's own driver connection, with no transaction of
    the session's around it (none begins, so none commits).
    """

    db: SerialSession
    bus: events.EventBus
    token: str | None = None
    settings: Settings | None = None
    client_address: str | None = None
    driver: DriverFetch | None = None
    dialect: Dialect | None = None

    async def run(self, actor: Viewer | None, body: Callable[[], Awaitable[Any]]) -> Any:
        """`body` in one transaction as `actor`; a model rule's refusal is a ValidationError."""
        session = self.db.session
        audit.act_as(session, None if actor is None else actor.id)
        await engines.begin_writing(session)
        try:
            return await transactions.run_write(
                session, body, bus=self.bus, is_refusal=lambda result: isinstance(result, Refusal)
            )
        except models.InvalidValueError as error:
            return _invalid(error)


def _invalid(error: models.InvalidValueError) -> Refusal:
    return Refusal("ValidationError", {"message": error.message, "field": error.input_field})


def sign_in() -> Refusal:
    return Refusal("AuthenticationError", {"message": writes.SIGN_IN_MESSAGE})


def _post_not_found(global_id: str) -> Refusal:
    return Refusal("NotFoundError", {"message": writes.NO_SUCH_POST_MESSAGE, "id": global_id})


def _comment_not_found(global_id: str) -> Refusal:
    return Refusal("NotFoundError", {"message": writes.NO_SUCH_COMMENT_MESSAGE, "id": global_id})


def _columns(row: models.Base) -> dict[str, Any]:
    table: Any = row.__table__
    return {column.key: getattr(row, column.key) for column in table.columns}


@dataclass(frozen=True, slots=True)
class NewComment:
    """addComment's input: the post's global id and row id (None: not a post's), the content,
    and for a reply the parent's (`parent_id` None: not a comment's)."""

    post_global_id: str
    post_id: int | None
    content: str
    parent_global_id: str | None = None
    parent_id: int | None = None


async def add_comment(
    writer: Writer, viewer: Viewer, viewer_row: Mapping[str, Any], new: NewComment
) -> Refusal | Written:
    """addComment: on a post the viewer may see (share-locked), a reply to one of its comments
    when `parent_global_id` is given, with its audit entry."""
    session = writer.db.session
    post_global_id, post_id, parent_global_id, parent_id = (
        new.post_global_id,
        new.post_id,
        new.parent_global_id,
        new.parent_id,
    )

    async def body() -> Refusal | Written:
        post = None
        if post_id is not None:
            post = await writes.find_post(session, post_id, viewer=viewer)
        if post is None:
            return _post_not_found(post_global_id)
        parent = None
        if parent_global_id is not None:
            if parent_id is not None:
                parent = await writes.find_parent(session, parent_id, post=post)
            if parent is None:
                return _comment_not_found(parent_global_id)
        row = await writes.add_comment(
            session, post=post, author=viewer, content=new.content, parent=parent
        )
        known = {("User", viewer.id): viewer_row, ("Post", post.id): _columns(post)}
        if parent is not None:
            known[("Comment", parent.id)] = _columns(parent)
        return Written(_columns(row), known)

    result: Refusal | Written = await writer.run(viewer, body)
    return result


# The writes that run as one statement on PostgreSQL (see `Writer`).
AT_ONCE = frozenset({"addComment"})
# Their statements, compiled once: by (write, viewer is an admin, variants).
_AT_ONCE_STATEMENTS: dict[tuple[str, bool, bool, bool], Statement] = {}


async def _at_once(
    writer: Writer,
    key: tuple[str, bool, bool, bool],
    build: Callable[[], Select[Any]],
    values: Mapping[str, Any],
) -> Sequence[Any]:
    """The rows of the statement `build` gives (compiled once per key), on the driver."""
    statement = _AT_ONCE_STATEMENTS.get(key)
    if statement is None:
        statement = Statement(build(), compiled_for=writer.dialect)
        _AT_ONCE_STATEMENTS[key] = statement
    call = statement.driver_call(values)
    assert writer.driver is not None
    assert call is not None  # no expanding parameter
    return await writer.driver(*call)


async def _add_comment_at_once(
    writer: Writer, viewer: Viewer, viewer_row: Mapping[str, Any], new: NewComment
) -> Refusal | Written:
    """addComment as one statement (`writes.comment_statement`), refused as the transaction
    of `add_comment` refuses: a missing post first, then a missing parent, then the content."""
    post_global_id, post_id, parent_global_id, parent_id = (
        new.post_global_id,
        new.post_id,
        new.parent_global_id,
        new.parent_id,
    )
    if post_id is None:
        return _post_not_found(post_global_id)
    admin = viewer.is_admin
    reply = parent_global_id is not None
    who = {"viewer_id": viewer.id, "post_id": post_id, "parent_id": parent_id}

    def missing() -> Awaitable[Refusal | None]:
        return _missing_target(writer, admin, who, post_global_id, parent_global_id)

    if reply and parent_id is None:
        return await missing() or _comment_not_found(parent_global_id or "")
    try:
        comment = writes.new_comment(
            post_id=post_id, author=viewer, content=new.content, parent_id=parent_id
        )
    except models.InvalidValueError as error:
        return await missing() or Refusal(
            "ValidationError", {"message": error.message, "field": error.input_field}
        )
    event = events.Event(events.Kind.COMMENT_ADDED, post_id, 0)
    outbox = writer.bus.outbox
    viewer_parameter = ViewerParameter(admin, _VIEWER_ID)
    build = lambda: writes.comment_statement(viewer_parameter, reply=reply, outbox=outbox)  # noqa: E731
    values = who | _comment_values(comment, event, actor=viewer.id)
    rows = await _at_once(writer, ("addComment", admin, reply, outbox), build, values)
    if not rows:
        return await missing() or _post_not_found(post_global_id)
    row, held = _held_apart(rows[0])
    writer.bus.committed([dataclasses.replace(event, comment_id=row["id"])])
    known = {("User", viewer.id): viewer_row, ("Post", post_id): held["post"]}
    if parent_id is not None:
        known[("Comment", parent_id)] = held["parent"]
    return Written(row, known)


async def _missing_target(
    writer: Writer,
    admin: bool,
    who: Mapping[str, Any],
    post_global_id: str,
    parent_global_id: str | None,
) -> Refusal | None:
    """What of addComment's targets is not there for the viewer: the post, or else the parent
    (None: both are)."""
    build = lambda: writes.comment_targets(ViewerParameter(admin, _VIEWER_ID))  # noqa: E731
    found = (await _at_once(writer, ("comment_targets", admin, False, False), build, who))[0]
    if found["post_id"] is None:
        return _post_not_found(post_global_id)
    if parent_global_id is not None and found["parent_id"] is None:
        return _comment_not_found(parent_global_id)
    return None


def _comment_values(comment: models.Comment, event: events.Event, *, actor: int) -> dict[str, Any]:
    """`writes.comment_statement`'s values for the new comment: its row's, its audit entry's
    and its outbox row's, as the statements of `writes.add_comment` would write them."""
    audit_row = audit.created_rows(models.Comment, 0, comment, actor=actor)[0]
    outbox_row = events.outbox_row(event, models.utc_now())
    return {
        "content": comment.content,
        "user_id": comment.user_id,
        "created_at": comment.created_at,
        "entity_type": audit_row["entity_type"],
        "action": audit_row["action"],
        "actor_id": audit_row["actor_id"],
        "changes": audit_row["changes"],
        "audited_at": audit_row["created_at"],
        "kind": outbox_row["kind"],
        "outbox_at": outbox_row["created_at"],
    }


_VIEWER_ID = bindparam("viewer_id", type_=Integer)


def _held_apart(record: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A written row's own columns, and those of the rows beside it (`<table>.<column>`)."""
    row: dict[str, Any] = {}
    held: dict[str, dict[str, Any]] = defaultdict(dict)
    for name, value in record.items():
        table, dot, column = name.partition(".")
        if dot:
            held[table][column] = value
        else:
            row[name] = value
    return row, held


async def create_post(
    writer: Writer,
    viewer: Viewer,
    viewer_row: Mapping[str, Any],
    *,
    title: str,
    content: str,
    published: bool,
    tag_names: list[str],
) -> Refusal | Written:
    """createPost: the post, its audit entry, its tags (created on first use) and links."""
    session = writer.db.session

    async def body() -> Written:
        new = await writes.create_post(
            session,
            author=viewer,
            title=title,
            content=content,
            published=published,
            tag_names=tag_names,
        )
        return _new_post(viewer, viewer_row, new)

    result: Refusal | Written = await writer.run(viewer, body)
    return result


def _new_post(viewer: Viewer, viewer_row: Mapping[str, Any], new: writes.NewPost) -> Written:
    """A post `writes.create_post` wrote, with its author (the viewer) and its tags."""
    tags = [{"id": tag.id, "name": tag.name, "parent_key": new.row.id} for tag in new.tags]
    known = {("User", viewer.id): viewer_row}
    return Written(_columns(new.row), known, {new.row.id: tags})


@dataclass(frozen=True, slots=True)
class Imported:
    """importPosts' payload: one result per input, in order, and how many posts were created."""

    results: list[Refusal | Written]
    created: int

    def held(self) -> Written:
        """The rows the created posts' writes hold (their author, their tags), as one."""
        known: dict[tuple[str, int], Mapping[str, Any]] = {}
        tags: dict[int, list[dict[str, Any]]] = {}
        for result in self.results:
            if isinstance(result, Written):
                known |= result.known
                tags |= result.tags
        return Written({}, known, tags)


# What a planned write answers (a bool: logout's payload).
Result = Refusal | Written | Deleted | BulkUpdated | Imported | SignedIn | bool


@dataclass(frozen=True, slots=True)
class Call:
    """A planned mutation field as asked: by a signed-in viewer (the run answers anonymous ones
    itself), with its coerced arguments; `where` compiles a filter for the viewer."""

    writer: Writer
    viewer: Viewer
    viewer_row: Mapping[str, Any]
    args: Mapping[str, Any]
    where: Callable[[str, Any], Filter | None]


def _sign_in_to(args: Mapping[str, Any], token: str | None) -> Result:
    return sign_in()


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    """A planned mutation field: its payload's success type (None: a scalar), its write, and
    its answer to an anonymous viewer (by its arguments and token), given before any write."""

    payload: str | None
    write: Callable[[Call], Awaitable[Result]]
    anonymous: Callable[[Mapping[str, Any], str | None], Result] = _sign_in_to


def _row_id(value: Any, type_name: str) -> int | None:
    """The row id a mutation's global id names; None for another type or past the id range
    (not found); a malformed id declines, for the executor to refuse."""
    try:
        found, decoded = decode_global_id(value)
    except InvalidIdError as error:
        raise NotPlannedError(str(error)) from None
    return decoded if found == type_name and decoded < models.ID_LIMIT else None


def _refusal(refused: writes.Refused, global_id: str) -> Refusal:
    values = {"message": refused.message, "field": refused.field, "id": global_id}
    return Refusal(refused.kind.value, values)


def _payload(call: Call, row: models.Base) -> Written:
    """The written row; the viewer's own row is known (the author of what it writes)."""
    return Written(_columns(row), {("User", call.viewer.id): call.viewer_row})


async def _add_comment(call: Call) -> Result:
    given = call.args["input"]
    parent_id = None if given.parent_id is None else _row_id(given.parent_id, "Comment")
    write = _add_comment_at_once if call.writer.driver is not None else add_comment
    new = NewComment(
        given.post_id, _row_id(given.post_id, "Post"), given.content, given.parent_id, parent_id
    )
    return await write(call.writer, call.viewer, call.viewer_row, new)


async def _create_post(call: Call) -> Result:
    given = call.args["input"]
    return await create_post(
        call.writer,
        call.viewer,
        call.viewer_row,
        title=given.title,
        content=given.content,
        published=bool(given.published),
        tag_names=given.tags or [],
    )


async def _on_post(call: Call, act: Callable[[models.Post], Awaitable[Result]]) -> Result:
    """`act` on the post the `id` argument names, locked, if the viewer may change it."""
    global_id = call.args["id"]
    post_id = _row_id(global_id, "Post")

    async def body() -> Result:
        post = await writes.editable_post(call.writer.db.session, post_id, viewer=call.viewer)
        return _refusal(post, global_id) if isinstance(post, writes.Refused) else await act(post)

    result: Result = await call.writer.run(call.viewer, body)
    return result


async def _on_comment(
    call: Call, action: str, act: Callable[[models.Comment], Awaitable[Result]]
) -> Result:
    """`act` on the comment the `id` argument names, locked, if the viewer may `action` it."""
    global_id = call.args["id"]
    comment_id = _row_id(global_id, "Comment")

    async def body() -> Result:
        comment = await writes.editable_comment(
            call.writer.db.session, comment_id, viewer=call.viewer, action=action
        )
        if isinstance(comment, writes.Refused):
            return _refusal(comment, global_id)
        return await act(comment)

    result: Result = await call.writer.run(call.viewer, body)
    return result


def _edit_post(
    call: Call, changes: writes.PostChanges
) -> Callable[[models.Post], Awaitable[Result]]:
    async def edit(post: models.Post) -> Result:
        edited = await writes.edit_post(call.writer.db.session, post, changes)
        if isinstance(edited, writes.Refused):
            return _refusal(edited, call.args["id"])
        return _payload(call, edited)

    return edit


async def _update_post(call: Call) -> Result:
    return await _on_post(call, _edit_post(call, call.args["input"].changes()))


async def _publish_post(call: Call) -> Result:
    return await _on_post(call, _edit_post(call, writes.PostChanges(published=True)))


async def _delete_post(call: Call) -> Result:
    async def delete(post: models.Post) -> Result:
        await writes.delete_post(call.writer.db.session, post)
        return Deleted(call.args["id"])

    return await _on_post(call, delete)


async def _update_comment(call: Call) -> Result:
    content = call.args["input"].content

    async def edit(comment: models.Comment) -> Result:
        await writes.update_comment(call.writer.db.session, comment, content=content)
        return _payload(call, comment)

    return await _on_comment(call, "change", edit)


async def _delete_comment(call: Call) -> Result:
    async def delete(comment: models.Comment) -> Result:
        await writes.delete_comment(call.writer.db.session, comment)
        return Deleted(call.args["id"])

    return await _on_comment(call, "delete", delete)


BulkOperation = Callable[[AsyncSession, ColumnElement[bool]], Awaitable[int]]


async def _bulk(call: Call, entity: str, operation: BulkOperation) -> Result:
    """An admin's one-statement bulk operation on the rows `where` matches."""
    if not call.viewer.is_admin:
        return Refusal("ForbiddenError", {"message": writes.FORBIDDEN_BULK_MESSAGE})
    try:
        found = call.where(entity, call.args["where"])
    except InvalidInputError as error:  # the executor answers it, where it belongs
        raise NotPlannedError(str(error)) from None
    condition = true() if found is None else found.predicate
    session = call.writer.db.session

    async def body() -> Result:
        return BulkUpdated(await operation(session, condition))

    result: Result = await call.writer.run(call.viewer, body)
    return result


async def _deactivate_users(call: Call) -> Result:
    return await _bulk(call, "User", writes.deactivate_users)


async def _delete_posts(call: Call) -> Result:
    return await _bulk(call, "Post", writes.delete_posts)


async def _import_posts(call: Call) -> Result:
    """Each input in its own savepoint: a bad item is reported, the others are kept."""
    session = call.writer.db.session

    async def import_one(item: Any) -> Refusal | Written:
        try:
            async with session.begin_nested():
                new = await writes.create_post(
                    session,
                    author=call.viewer,
                    title=item.title,
                    content=item.content,
                    published=bool(item.published),
                    tag_names=item.tags or [],
                )
        except models.InvalidValueError as error:
            return _invalid(error)
        return _new_post(call.viewer, call.viewer_row, new)

    async def body() -> Imported:
        results = [await import_one(item) for item in call.args["inputs"]]
        return Imported(results, sum(isinstance(result, Written) for result in results))

    result: Result = await call.writer.run(call.viewer, body)
    return result


def _sign_in_each(args: Mapping[str, Any], token: str | None) -> Result:
    return Imported([sign_in() for _ in args["inputs"]], 0)


async def _logout(call: Call) -> Result:
    async def body() -> bool:
        return await auth.revoke_token(call.writer.db.session, call.writer.token)

    result: Result = await call.writer.run(call.viewer, body)
    return result


async def _update_viewer(call: Call) -> Result:
    """updateViewer: the new password hashed first, outside any transaction (argon2 takes a
    while), then the values checked and the changed columns written with their audit entry."""
    changes = call.args["input"].changes()
    password = changes.pop("password", None)
    password_hash = None
    if password is not None:
        session = call.writer.db.session
        if session.in_transaction():  # the viewer's lookup: hold no connection while hashing
            await session.commit()
        try:
            password_hash = await auth.new_password_hash(password)
        except models.InvalidValueError as error:
            return _invalid(error)
    try:
        values = writes.profile_values(changes)
    except models.InvalidValueError as error:
        return _invalid(error)
    if password_hash is not None:
        values["password_hash"] = password_hash

    async def body() -> Result:
        new = await writes.update_user(call.writer.db.session, call.viewer_row, values)
        if isinstance(new, writes.Refused):
            return Refusal(new.kind.value, {"message": new.message, "field": new.field})
        return Written(new, {("User", call.viewer.id): new})

    result: Result = await call.writer.run(call.viewer, body)
    return result


def _logout_signed_out(args: Mapping[str, Any], token: str | None) -> Result:
    """No token: nothing to revoke. A token that signs no one in may still be live (its user
    deactivated): the executor revokes it, as it always has."""
    if token is not None:
        raise NotPlannedError("logout with a token that signs no one in")
    return False


async def _release_connection(writer: Writer) -> None:
    """End the request's read-only transaction (the viewer's lookup), so that waiting for an
    argon2 slot holds no database connection."""
    session = writer.db.session
    if session.in_transaction():
        await session.commit()


def _token_lifetime(writer: Writer) -> timedelta:
    assert writer.settings is not None  # the planner gives every writer its settings
    return timedelta(seconds=writer.settings.token_lifetime_seconds)


async def _register(writer: Writer, args: Mapping[str, Any]) -> Refusal | SignedIn:
    """register: the values checked and the password hashed outside any transaction, then the
    account, its audit entry (the new user signs itself up) and its token: three INSERTs."""
    given = args["input"]
    await _release_connection(writer)
    try:
        user = await writes.new_account(dataclasses.asdict(given))
    except models.InvalidValueError as error:
        return _invalid(error)
    session = writer.db.session

    async def body() -> Refusal | SignedIn:
        created = await writes.create_user(session, user)
        if isinstance(created, writes.Refused):
            return Refusal(created.kind.value, {"message": created.message, "field": created.field})
        token = await auth.insert_token(session, created["id"], lifetime=_token_lifetime(writer))
        return SignedIn(token, created)

    result: Refusal | SignedIn = await writer.run(None, body)
    return result


def _throttled(refusal: throttle.Throttled) -> Refusal:
    metrics.count_sign_in_throttle(refusal.scope)
    values = {"message": refusal.message(), "retryAfterSeconds": refusal.retry_after_seconds}
    return Refusal("InvalidCredentialsError", values)


async def _login(writer: Writer, args: Mapping[str, Any]) -> Refusal | SignedIn:
    """login as the executor runs it: throttle, record the attempt and find the user in one
    short transaction; verify the password outside any; then record the success and issue the
    token in a second one."""
    given = args["input"]
    session = writer.db.session
    assert writer.settings is not None
    settings = writer.settings

    async def start() -> tuple[throttle.Attempt, models.User | None] | throttle.Throttled:
        attempt = await throttle.begin_attempt(
            session, settings, username=given.username, address=writer.client_address
        )
        if isinstance(attempt, throttle.Throttled):
            return attempt
        return attempt, await auth.find_user(session, given.username)

    started = await writer.run(None, start)
    if isinstance(started, throttle.Throttled):
        return _throttled(started)
    attempt, found = started
    user = await auth.check_credentials(found, given.password)
    if user is None:
        values = {"message": auth.WRONG_CREDENTIALS_MESSAGE, "retryAfterSeconds": None}
        return Refusal("InvalidCredentialsError", values)
    row = {name: getattr(user, name) for name in auth.IDENTITY_COLUMNS}

    async def welcome() -> SignedIn:
        await throttle.record_success(session, settings, attempt)
        return SignedIn(
            await auth.insert_token(session, user.id, lifetime=_token_lifetime(writer)), row
        )

    result: SignedIn = await writer.run(None, welcome)
    return result


@dataclass(frozen=True, slots=True)
class PlannedSignIn:
    """A planned mutation field that signs in (register, login): anyone may ask, and its
    payload (`payload`) holds the token and the new viewer's row."""

    payload: str
    write: Callable[[Writer, Mapping[str, Any]], Awaitable[Refusal | SignedIn]]


# The mutation fields the planner runs.
WRITES: dict[str, PlannedWrite | PlannedSignIn] = {
    "addComment": PlannedWrite("Comment", _add_comment),
    "createPost": PlannedWrite("Post", _create_post),
    "updatePost": PlannedWrite("Post", _update_post),
    "publishPost": PlannedWrite("Post", _publish_post),
    "deletePost": PlannedWrite("Deleted", _delete_post),
    "updateComment": PlannedWrite("Comment", _update_comment),
    "deleteComment": PlannedWrite("Deleted", _delete_comment),
    "deactivateUsers": PlannedWrite("BulkUpdated", _deactivate_users),
    "deletePosts": PlannedWrite("BulkUpdated", _delete_posts),
    "importPosts": PlannedWrite("Post", _import_posts, _sign_in_each),
    "logout": PlannedWrite(None, _logout, _logout_signed_out),
    "updateViewer": PlannedWrite("User", _update_viewer),
    "register": PlannedSignIn("AuthPayload", _register),
    "login": PlannedSignIn("AuthPayload", _login),
}
