"""Reading an ordinary urlencoded form straight from a WSGI request, for the fast paths that
answer before Flask (`web/fast_webhooks.py`, the Twilio simulator's `fast.py`)."""

from __future__ import annotations

import io
import urllib.parse
from typing import Any

URLENCODED = "application/x-www-form-urlencoded"


def read_urlencoded(environ: dict[str, Any], max_bytes: int) -> dict[str, str] | None:
    """The request's form if it is a urlencoded one of at most `max_bytes`, all ASCII (as
    percent-encoding makes it), each field given once; else None, and Flask decides. The
    body stays readable for Flask either way."""
    if environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower() != URLENCODED:
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return None
    if not 0 <= length <= max_bytes:
        return None
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        pairs = urllib.parse.parse_qsl(body.decode("ascii"), keep_blank_values=True, errors="strict")
    except UnicodeError:
        return None
    form = dict(pairs)
    if len(form) != len(pairs):
        return None  # a repeated field: let werkzeug's MultiDict (and a validator) decide
    return form
