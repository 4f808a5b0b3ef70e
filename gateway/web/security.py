"""Security headers on every response the web app serves: pages, feeds, JSON, errors.

A reader of Kabootar may be watched, and an operator's console holds the power to hide
posts: neither page may be framed, fed a script from elsewhere, or give away where the
reader came from. So every response gets:

- Content-Security-Policy: scripts only from our own files (no inline code, no eval);
  styles from our files plus, by hash, the feed's one inline <style> (inline, so a
  reader on a poor connection loads a page in one request); no plugins, no <base>,
  forms post only to us, and no one may frame us (`frame-ancestors 'none'`).
- X-Frame-Options: DENY, for browsers older than frame-ancestors.
- X-Content-Type-Options: nosniff, so a post's text is never run as a script or style.
- Referrer-Policy: no-referrer. A click from a post to a link in it must not tell that
  site which texter's page, tag or post the reader was on (the browser's default sends
  at least our origin: "this person reads Kabootar"), and we read no Referer ourselves.
- Strict-Transport-Security when PUBLIC_URL is https: no downgrade to plain http.

A blueprint may set a stricter policy of its own (the console's has default-src 'none');
its headers are kept. `create_app` registers `add_headers` with `after_request`, which
Flask also runs for error pages (404, 405, 413, 429, 500).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from flask import Flask, Response, current_app

# Inlined by feed/base.html; its hash is what lets the browser apply it.
FEED_STYLE_TEMPLATE = "feed/style.css"
HSTS_SECONDS = 365 * 24 * 3600
_CACHE_KEY = "kabootar.security_headers"


def style_hash(css: str) -> str:
    """The CSP source that allows exactly this inline style block: 'sha256-<base64>'."""
    digest = hashlib.sha256(css.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def policy(style_sources: Iterable[str] = ()) -> str:
    """The Content-Security-Policy for our pages, allowing the given extra style sources."""
    styles = " ".join(["'self'", *style_sources])
    return (
        "default-src 'self'; script-src 'self'; "
        f"style-src {styles}; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def header_list(app: Flask) -> list[tuple[str, str]]:
    """Every security header for this app's responses (made once, then reused).

    Also for code that answers without Flask (the webhook's WSGI fast path)."""
    found: list[tuple[str, str]] | None = app.extensions.get(_CACHE_KEY)
    if found is None:
        css = app.jinja_env.get_template(FEED_STYLE_TEMPLATE).render()
        found = [
            ("Content-Security-Policy", policy([style_hash(css)])),
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ]
        if app.config["KABOOTAR"].public_url.startswith("https://"):
            # No includeSubDomains: the operator's other hosts are theirs to decide.
            found.append(("Strict-Transport-Security", f"max-age={HSTS_SECONDS}"))
        app.extensions[_CACHE_KEY] = found
    return found


def add_headers(response: Response) -> Response:
    """after_request: add each header the response does not already carry."""
    headers = response.headers
    for name, value in header_list(current_app):
        if name not in headers:
            headers[name] = value
    return response
