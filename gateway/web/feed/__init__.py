"""The public feed: HTML pages, Atom feeds and the JSON API over the post timelines."""

from gateway.web.feed import api, views  # noqa: F401  (importing them registers their routes)
from gateway.web.feed.blueprint import bp

__all__ = ["bp"]
