"""Atom 1.0 feeds (RFC 4287): /feed.atom, /@<handle>/feed.atom, /tags/<tag>/feed.atom."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import current_app, request, url_for
from flask.typing import ResponseReturnValue

from gateway.microblog import posts
from gateway.runtime import Runtime
from gateway.web.feed import cache, query, render
from gateway.web.feed.blueprint import bp
from gateway.web.feed.query import Timeline
from gateway.web.feed.views import error_page

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
TITLE_CHARS = 80
# Characters XML 1.0 cannot carry at all; an SMS can hold them, a feed must drop them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# An empty feed still needs an <updated>; a fixed one keeps its ETag stable.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _clean(value: str) -> str:
    return _NOT_XML.sub("", value)


def _add(parent: ET.Element, tag: str, content: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if content is not None:
        element.text = _clean(content)
    return element


def _title(post: posts.Post) -> str:
    first_line = " ".join(post.body.split())
    if len(first_line) > TITLE_CHARS:
        first_line = first_line[: TITLE_CHARS - 1] + "…"
    return f"@{post.handle}: {first_line}" if post.handle else first_line


def build(
    timeline: Timeline, entries: Sequence[posts.Post], public_url: str, self_path: str, html_path: str
) -> bytes:
    """The Atom document for `entries` (newest first) of `timeline`, absolute links under public_url."""
    feed = ET.Element("feed", {"xmlns": ATOM_NS})
    _add(feed, "id", public_url + html_path)
    _add(feed, "title", f"{timeline.title} · Kabootar")
    _add(feed, "updated", render.iso(entries[0].created_at if entries else _EPOCH))
    _add(feed, "link", rel="self", type="application/atom+xml", href=public_url + self_path)
    _add(feed, "link", rel="alternate", type="text/html", href=public_url + html_path)
    _add(feed, "generator", "Kabootar")
    for post in entries:
        post_url = public_url + url_for("feed.post_page", post_id=post.id)
        entry = _add(feed, "entry")
        _add(entry, "id", post_url)
        _add(entry, "title", _title(post), type="text")
        _add(entry, "updated", render.iso(post.created_at))
        _add(entry, "published", render.iso(post.created_at))
        author = _add(entry, "author")
        _add(author, "name", post.handle or "anonymous")
        _add(entry, "link", rel="alternate", type="text/html", href=post_url)
        for tag in post.tags:
            _add(entry, "category", term=_clean(tag))
        for media_url in post.media:
            if render.safe_url(media_url):
                _add(entry, "link", rel="enclosure", href=_clean(media_url))
        _add(entry, "content", post.body, type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _serve(timeline: Timeline | None, page_endpoint: str, **params: Any) -> ResponseReturnValue:
    """The newest page of a timeline as Atom; the same 404 page as the HTML when unknown."""
    if timeline is None:
        return error_page(404, "Nothing here: no such handle or tag.")
    found = posts.read_page(Runtime.of(current_app).redis, timeline.key, None, query.PAGE_SIZE)
    public_url = Runtime.of(current_app).config.public_url

    def make() -> bytes:
        return build(
            timeline,
            found.posts(),
            public_url=public_url,
            self_path=url_for(f"feed.atom_{timeline.kind}", **params),
            html_path=url_for(page_endpoint, **params),
        )

    key = (
        "atom",
        public_url,
        request.script_root,
        page_endpoint,
        tuple(sorted(params.items())),
        timeline,
        found,
    )
    return cache.response(key, make, ATOM_TYPE)


@bp.get("/feed.atom")
def atom_all() -> ResponseReturnValue:
    return _serve(query.everything(), "feed.index")


@bp.get("/@<handle>/feed.atom")
def atom_handle(handle: str) -> ResponseReturnValue:
    timeline = query.by_handle(Runtime.of(current_app).redis, handle)
    return _serve(timeline, "feed.handle_page", handle=timeline.name if timeline else handle)


@bp.get("/tags/<tag>/feed.atom")
def atom_tag(tag: str) -> ResponseReturnValue:
    return _serve(query.by_tag(Runtime.of(current_app).redis, tag), "feed.tag_page", tag=tag)
