"""Turning a post into safe HTML: escaped text with #tags and @mentions made links.

Each body is shown in its own bidi isolate (`dir="auto"` in the templates) with its
direction controls balanced (`text.balance_bidi`, done when posts are read), so no post
can reorder the text around it; a web reply is named "Name (web)", never as a handle.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app, url_for
from markupsafe import Markup, escape

from gateway.microblog import media, posts, text
from gateway.runtime import Runtime

# The same patterns that index a post (gateway/microblog/text.py), so a link goes exactly where
# the post was filed.
_TAG = text.TAG_PATTERN
_MENTION = text.MENTION_PATTERN


def _spans(body: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, word) for each tag and mention, in order, never overlapping."""
    found = [(m.start(), m.end(), "tag", m.group(1)) for m in _TAG.finditer(body)]
    found += [(m.start(), m.end(), "mention", m.group(1)) for m in _MENTION.finditer(body)]
    spans: list[tuple[int, int, str, str]] = []
    for span in sorted(found):
        if not spans or span[0] >= spans[-1][1]:
            spans.append(span)
    return spans


def body_html(body: str) -> Markup:
    """The post body as HTML: everything escaped, tags and mentions linked."""
    out: list[str] = []
    pos = 0
    for start, end, kind, word in _spans(body):
        out.append(escape(body[pos:start]))
        if kind == "tag" and text.fold(word):
            href = url_for("feed.tag_page", tag=word)
        elif kind == "mention":
            href = url_for("feed.handle_page", handle=word)
        else:
            href = ""
        chunk = escape(body[start:end])
        out.append(Markup('<a href="{}">{}</a>').format(href, chunk) if href else chunk)
        pos = end
    out.append(escape(body[pos:]))
    return Markup("").join(out)


def media_urls(post: posts.Post) -> list[str]:
    """The post's media URLs fit for links: https, or http too with MEDIA_ALLOW_HTTP."""
    return media.kept(post.media, Runtime.of(current_app).config.media_allow_http)


def headline(post: posts.Post, chars: int) -> str:
    """A one-line title for a post: its byline and the start of its body, at most about
    `chars` characters of body, balanced again where the cut fell."""
    first_line = " ".join(post.body.split())
    if len(first_line) > chars:
        first_line = first_line[: chars - 1] + "…"
    return f"{post.byline}: {text.balance_bidi(first_line)}"


def when(moment: datetime) -> str:
    """A short, unambiguous time for a reader anywhere: always UTC."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
