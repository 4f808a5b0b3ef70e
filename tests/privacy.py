"""Helpers that look for phone numbers where none may be.

A number can leak in many shapes: E.164 (`+989121234567`), digits only (`989121234567`,
also what is left of a URL-encoded `%2B989121234567`), national (`0912 123 4567`,
`(415) 555-0123`), spaced or dashed. `leaks` finds all of them: every separator-free
form contains the number's last nine digits, and separators between digits are
ignored for a second look. Redis values are read the way RQ writes them: job data is
zlib-compressed pickle, a job's result stream holds base64 of zlib of the traceback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import pickle
import re
import urllib.parse
import zlib
from typing import Any

import phonenumbers
from redis import Redis

TAIL = 9  # digits: enough to be this number, short enough to survive a national prefix
_SEPARATORS = re.compile(r"(?<=\d)[ \u00a0\-.()/]{1,2}(?=\d)")
_BASE64 = re.compile(rb"^[A-Za-z0-9+/=\s]{12,}$")


def number_forms(number: str) -> list[str]:
    """The ways a number could leak: as given, E.164, digits only, the national tail, the
    international and national formats (with spaces, dashes or dots), URL-encoded."""
    digits = re.sub(r"\D", "", number)
    forms = [number, digits, digits[-TAIL:]]
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return list(dict.fromkeys(forms))
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    forms += [e164, urllib.parse.quote(e164), str(parsed.national_number)]
    for style in (phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.NATIONAL):
        shown = phonenumbers.format_number(parsed, style)
        forms += [
            shown,
            re.sub(r"[ \-]", "-", shown),
            re.sub(r"[ \-]", ".", shown),
            re.sub(r"[ \-]", "", shown),
        ]
    return list(dict.fromkeys(forms))


def unkeyed_hashes(number: str) -> list[str]:
    """SHA-256 of the number (as given and E.164): anyone can reverse these by trying every
    number, so Kabootar's own data must never hold them (the simulator's, Twilio's, may)."""
    from gateway.phones import normalize

    return [hashlib.sha256(f.encode()).hexdigest() for f in sorted({number, normalize(number)})]


def leaks(text: str, numbers: list[str]) -> list[str]:
    """The forms of `numbers` that appear in `text`, separators between digits or URL
    encoding notwithstanding (such a find is reported as `<tail> (separated)`)."""
    found = [form for n in numbers for form in number_forms(n) if form in text]
    collapsed = _SEPARATORS.sub("", urllib.parse.unquote_plus(text)) if text else ""
    for n in numbers:
        tail = re.sub(r"\D", "", n)[-TAIL:]
        if tail not in text and tail in collapsed:
            found.append(f"{tail} (separated)")
    return found


def _unpickled(value: bytes) -> str | None:
    if not value.startswith(b"\x80"):
        return None
    try:
        return repr(pickle.loads(value))  # our own test Redis: a job's arguments as Python saw them
    except Exception:
        return None


def _unzipped(value: bytes) -> bytes | None:
    try:
        return zlib.decompress(value)
    except zlib.error:
        return None


def value_texts(value: bytes) -> list[str]:
    """A stored value as text, and whatever it holds: zlib, pickle, base64 of either (RQ's
    forms: a job's data is zlib of pickle; a result stream's traceback base64 of zlib, its
    return value base64 of pickle)."""
    texts = [value.decode(errors="replace"), repr(value)]
    inner = [_unzipped(value)]
    if _BASE64.match(value):
        try:
            decoded = base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError):
            decoded = b""
        inner += [decoded, _unzipped(decoded)] if decoded else []
    for raw in [value, *(x for x in inner if x)]:
        if raw is not value:
            texts += [raw.decode(errors="replace"), repr(raw)]
        if (unpickled := _unpickled(raw)) is not None:
            texts.append(unpickled)
    return texts


def redis_values_url(redis_url: str) -> dict[str, str]:
    """Every key in Redis -> its key and values as text, packed values unpacked (`value_texts`)."""
    raw: Any = Redis.from_url(redis_url)  # bytes in, bytes out (redis-py types both ways)
    found: dict[str, str] = {}
    try:
        for key in raw.scan_iter(count=1000):
            kind = raw.type(key).decode()
            values: list[Any] = []
            if kind == "string":
                values.append(raw.get(key) or b"")
            elif kind == "hash":
                values += [x for kv in raw.hgetall(key).items() for x in kv]
            elif kind == "list":
                values += raw.lrange(key, 0, -1)
            elif kind == "set":
                values += list(raw.smembers(key))
            elif kind == "zset":
                values += [m for m, _ in raw.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                for entry_id, fields in raw.xrange(key):
                    values += [entry_id, *(x for kv in fields.items() for x in kv)]
            texts = [key.decode(errors="replace")]
            for value in values:
                value = value if isinstance(value, bytes) else str(value).encode()
                texts += value_texts(value)
            found[key.decode(errors="replace")] = "\n".join(texts)
    finally:
        raw.close()
    return found


def redis_dump_url(redis_url: str) -> str:
    """Every key and value in Redis as text; compressed values (RQ's job data) unpacked too."""
    return "\n".join(redis_values_url(redis_url).values())


def url_of(redis: Redis) -> str:
    kwargs = redis.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def redis_dump(redis: Redis) -> str:
    """`redis_dump_url` for the database a client is connected to."""
    return redis_dump_url(url_of(redis))


def redis_leaks(
    redis_url: str, numbers: list[str], skip_prefix: str = ""
) -> tuple[int, dict[str, list[str]]]:
    """(keys scanned, key -> the forms of `numbers` found in it) over all of Redis, keys
    starting with `skip_prefix` left out (the simulator's: Twilio's own records)."""
    values = redis_values_url(redis_url)
    scanned = {k: v for k, v in values.items() if not (skip_prefix and k.startswith(skip_prefix))}
    found = {k: hit for k, v in scanned.items() if (hit := leaks(v, numbers))}
    return len(scanned), found
