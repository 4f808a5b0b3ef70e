"""Atom 1.0 feeds (RFC 4287) of the timelines: /feed.atom, /@<handle>/feed.atom,
/tags/<tag>/feed.atom (routed in views.py, beside their pages)."""

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
from gateway.web.feed.query import Timeline

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
        _add(entry, "title", render.headline(post, TITLE_CHARS), type="text")
        _add(entry, "updated", render.iso(post.created_at))
        _add(entry, "published", render.iso(post.created_at))
        author = _add(entry, "author")
        # A texter by their handle; a web reply as "Name (web)", never as a handle.
        _add(author, "name", post.handle or post.byline)
        _add(entry, "link", rel="alternate", type="text/html", href=post_url)
        for tag in post.tags:
            _add(entry, "category", term=_clean(tag))
        for media_url in render.media_urls(post):
            _add(entry, "link", rel="enclosure", href=media_url)
        _add(entry, "content", post.body, type="text")
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document


def serve(timeline: Timeline, params: dict[str, Any]) -> ResponseReturnValue:
    """The newest page of a timeline as Atom (`params` name the timeline in its links)."""
    runtime = Runtime.of(current_app)
    found = posts.read_page(runtime.redis, timeline.key, None, query.PAGE_SIZE)
    public_url = runtime.config.public_url
    page_endpoint = query.PAGE_ENDPOINTS[timeline.kind]

    def make() -> bytes:
        return build(
            timeline,
            found.posts(),
            public_url=public_url,
            self_path=url_for(f"feed.atom_{timeline.kind}", **params),
            html_path=url_for(page_endpoint, **params),
        )

    # The links depend on where the app is mounted and on the timeline's parameters.
    key = (
        "atom",
        public_url,
        runtime.config.media_allow_http,
        request.script_root,
        tuple(sorted(params.items())),
        timeline,
        found,
    )
    return cache.response(key, make, ATOM_TYPE)
