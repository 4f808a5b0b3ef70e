"""The media URLs a post may carry: https only, or http too when MEDIA_ALLOW_HTTP is on.

A media URL comes from the provider (Twilio's `MediaUrl<n>` of an MMS) and every reader
gets it as a link, so a `javascript:`, `data:` or `file:` URL, or one that hides its
host behind credentials, must never be one. URLs are filtered where texts come in
(`pipeline/intake.py`), where posts are stored, and again wherever a post goes out, for
posts stored before this rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048  # Twilio's are about 150; browsers and proxies balk past a few thousand


def allowed(url: str, allow_http: bool = False) -> bool:
    """Whether `url` may be stored and shown as a media link."""
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        return False
    # Printable ASCII without spaces: what a provider sends; nothing a browser would reinterpret.
    if not (url.isascii() and url.isprintable()) or " " in url or "\\" in url:
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a port that is no port)
    except ValueError:
        return False
    schemes = ("https", "http") if allow_http else ("https",)
    return parts.scheme.lower() in schemes and bool(parts.hostname) and "@" not in parts.netloc


def kept(urls: Iterable[str], allow_http: bool = False) -> list[str]:
    """The allowed URLs among `urls`, in order."""
    return [url for url in urls if allowed(url, allow_http)]
