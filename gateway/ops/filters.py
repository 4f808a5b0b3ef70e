"""The history's filters, read from a query string and checked: every value capped, every
mistake a `BadFilter` whose message says what is wanted (the views answer 400 with it).

The same parameters serve the page (/ops/messages), its JSON (/ops/api/messages) and the
exports: `handle`, `direction`, `provider`, `outcome`, `q`, `since`, `until`, `cursor`,
`limit`. Times are ISO 8601 (`2026-12-07T10:30`, UTC unless an offset says otherwise) or
unix seconds; a range reaches back HISTORY_DAYS at most.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.config import PROVIDERS
from gateway.store import history

if TYPE_CHECKING:
    from gateway.ops.history import Row

INBOUND_OUTCOMES = ("post", "command", "held", "deferred", "waiting")
OUTBOUND_OUTCOMES = (
    *("queued", "sending", "sent", "delivered", "undelivered", "failed", "cancelled"),  # statuses
    *("retry", "opted_out"),  # what the provider said on the way: retried, or opted out
)
OUTCOMES = INBOUND_OUTCOMES + OUTBOUND_OUTCOMES
DIRECTIONS = ("in", "out")
MAX_Q = 100  # characters a text search may have
MAX_HANDLE = 40
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_CURSOR = re.compile(r"(\d{1,15})~((?:in|out)-[A-Za-z0-9._:-]{1,128})")


class BadFilter(ValueError):
    """A filter that cannot be used; the message says what it must be."""


@dataclass(frozen=True)
class Filters:
    since: float
    until: float
    handle: str = ""
    direction: str = ""
    provider: str = ""
    outcome: str = ""
    q: str = ""
    cursor: tuple[int, str] | None = None  # (time in ms, history id) of the last row shown
    limit: int = DEFAULT_LIMIT

    def matches(self, row: Row, sub_id: str | None) -> bool:
        """Whether a row passes every filter (the index that found it answers for one)."""
        record = row.record or {}
        if self.direction and row.direction != self.direction:
            return False
        if self.provider and row.provider != self.provider:
            return False
        if sub_id is not None and record.get("sub" if row.direction == "in" else "r") != sub_id:
            return False
        if self.outcome and not _has_outcome(row, record, self.outcome):
            return False
        return not self.q or self.q.casefold() in row.text.casefold()

    def query(self, **changes: str) -> dict[str, str]:
        """These filters as query parameters (for links: the next page, the exports)."""
        found = {
            "handle": self.handle,
            "direction": self.direction,
            "provider": self.provider,
            "outcome": self.outcome,
            "q": self.q,
            "since": _shown(self.since),
            "until": _shown(self.until),
        }
        return {k: v for k, v in {**found, **changes}.items() if v}


def _has_outcome(row: Row, record: Mapping[str, str], outcome: str) -> bool:
    if outcome == "retry":
        return row.direction == "out" and int(record.get("refused") or 0) > 0
    if outcome == "opted_out":
        return row.direction == "out" and record.get("oc") == "opted_out"
    return row.outcome == outcome


def _shown(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(name: str, raw: str) -> float:
    """An ISO 8601 time (UTC unless it says otherwise) or unix seconds."""
    raw = raw.strip()
    if re.fullmatch(r"\d{9,11}(\.\d{1,6})?", raw):
        return float(raw)
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        wanted = "a time such as 2026-12-07T10:30 (UTC), or unix seconds"
        raise BadFilter(f"{name}={raw[:40]!r}: {wanted}") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _one_of(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value and value not in allowed:
        raise BadFilter(f"{name}={raw[:40]!r}: one of {', '.join(allowed)}")
    return value


def parse(args: Mapping[str, str], days: int, now: float | None = None) -> Filters:
    """The filters of a query string, checked. Without `since`/`until`: the whole retention."""
    now = time.time() if now is None else now
    oldest = now - days * history.DAY_SECONDS
    until = parse_time("until", args["until"]) if args.get("until") else now
    since = parse_time("since", args["since"]) if args.get("since") else oldest
    if since > until:
        raise BadFilter("since is later than until: swap them")
    since, until = max(since, oldest), min(until, now + 60)  # nothing older is kept
    q = args.get("q", "")
    if len(q) > MAX_Q:
        raise BadFilter(f"q: at most {MAX_Q} characters")
    handle = args.get("handle", "").strip()
    if len(handle) > MAX_HANDLE:
        raise BadFilter(f"handle: at most {MAX_HANDLE} characters")
    cursor = None
    if args.get("cursor"):
        found = _CURSOR.fullmatch(args["cursor"])
        if not found:
            raise BadFilter("cursor: not one this console gave (start again from the first page)")
        cursor = (int(found.group(1)), found.group(2))
    limit_raw = args.get("limit", "") or str(DEFAULT_LIMIT)
    if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= MAX_LIMIT:
        raise BadFilter(f"limit: a whole number from 1 to {MAX_LIMIT}")
    return Filters(
        since=since,
        until=until,
        handle=handle.lstrip("@"),
        direction=_one_of("direction", args.get("direction", ""), DIRECTIONS),
        provider=_one_of("provider", args.get("provider", ""), PROVIDERS),
        outcome=_one_of("outcome", args.get("outcome", ""), OUTCOMES),
        q=q.strip(),
        cursor=cursor,
        limit=int(limit_raw),
    )
