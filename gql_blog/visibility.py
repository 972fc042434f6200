"""Who may see which rows: the SQL predicates every loader, count, search, stat and write applies.

Drafts are visible only to their author and admins, and so are their comments and the tags that
only drafts carry; e-mail addresses only to their owner and admins; the audit log to admins.
"""

from typing import Any, Protocol

from sqlalchemy import ColumnElement, exists, false, true
from sqlalchemy.orm import aliased

from gql_blog import models


class Viewer(Protocol):
    """Who is asking: a signed-in user row, or the planned path's identity of one."""

    @property
    def id(self) -> int: ...

    @property
    def is_admin(self) -> bool: ...


def visible_posts(viewer: Viewer | None) -> ColumnElement[bool]:
    """Drafts are visible to their author and to admins only."""
    if viewer is None:
        return models.Post.published.is_(True)
    if viewer.is_admin:
        return true()
    return models.Post.published.is_(True) | (models.Post.user_id == viewer.id)


def visible_comments(viewer: Viewer | None) -> ColumnElement[bool]:
    """A comment is visible when its post is."""
    if viewer is not None and viewer.is_admin:
        return true()
    # Its own alias of posts, so the EXISTS never correlates with a posts table around it.
    post = aliased(models.Post)
    return exists().where(post.id == models.Comment.post_id, _shown(post, viewer))


def visible_tags(viewer: Viewer | None) -> ColumnElement[bool]:
    """A tag is hidden when it is carried only by posts the viewer may not see (drafts' tags
    stay private); a tag no post carries reveals nothing and stays visible."""
    if viewer is not None and viewer.is_admin:
        return true()
    post, links, any_links = (
        aliased(models.Post),
        models.post_tags.alias(),
        models.post_tags.alias(),
    )
    carried = exists().where(any_links.c.tag_id == models.Tag.id)
    shown = exists().where(
        links.c.tag_id == models.Tag.id, links.c.post_id == post.id, _shown(post, viewer)
    )
    return ~carried | shown


def _shown(post: Any, viewer: Viewer | None) -> ColumnElement[bool]:
    shown: ColumnElement[bool] = post.published.is_(True)
    if viewer is not None:
        shown = shown | (post.user_id == viewer.id)
    return shown


def can_see_email(viewer: Viewer | None, user_id: int) -> bool:
    """Whether the viewer may see this user's e-mail address: their own, or an admin."""
    return viewer is not None and (viewer.is_admin or viewer.id == user_id)


def can_see_emails(viewer: Viewer | None) -> ColumnElement[bool]:
    """`can_see_email` in SQL: which users' addresses the viewer may see (and so filter on)."""
    if viewer is None:
        return false()
    if viewer.is_admin:
        return true()
    return models.User.id == viewer.id


def visible(model: type[models.Base], viewer: Viewer | None) -> ColumnElement[bool]:
    if model is models.AuditLog:
        # The audit log is for admins only.
        return true() if viewer is not None and viewer.is_admin else false()
    if model is models.Post:
        return visible_posts(viewer)
    if model is models.Comment:
        return visible_comments(viewer)
    if model is models.Tag:
        return visible_tags(viewer)
    return true()
