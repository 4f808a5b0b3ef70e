"""The message history, read: pages of matching texts and SMS, newest first.

What is written, and when, is `gateway/store/history.py`'s. A page is driven by one index,
the most selective a filter names: the texter's (`handle`), the outcome's (when it has
one), the provider's, the direction's, else every message's. Its per-day keys are read
newest first from `until` back to `since`, and every candidate's record is checked against
all the filters, so the others, stale entries and `q` (text contains) only cost candidates.
A page looks at SCAN_BUDGET candidates at most: when they are spent before the page is
full, it ends with a cursor and says so (`partial`): the search continues from there on the
next page, and no request scans without bound.

What a row shows: the texter's current handle and masked country code (never a number),
the provider, the outcome, and a text: a post's own text (read from the post, so a post
deleted or forgotten shows none), a command's name, an SMS's body; never a direct
message's text. Filters and their checks are in `filters.py`; the timeline of one message
in `timeline.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

from redis import Redis

from gateway.microblog import handles
from gateway.ops.filters import Filters
from gateway.store import history, keys

SCAN_BUDGET = 500  # candidates one page may look at (~20 ms of redis-py at the most)
CHUNK = 400  # the most candidates read in one round trip
DM_HIDDEN = "(direct message: not shown)"


@dataclass(frozen=True)
class Row:
    """One text received or SMS sent, as the console shows it."""

    id: str  # "in-<provider's id>" or "out-<our SMS id>"
    direction: str  # "in" or "out"
    at: float  # received, or queued
    handle: str  # the texter's current handle; "" once forgotten
    country: str  # "+98": the texter's country code, all a row shows of their number
    provider: str
    kind: str  # in: "post", "command"…; out: what it was for ("post", "answer", "dm", "welcome"…)
    outcome: str  # in: post / command / held / deferred / waiting; out: the SMS's status
    text: str
    detail: str = ""  # out: the neutral outcome and the provider's code, retries
    record: dict[str, str] | None = None  # the raw record, for the timeline

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction,
            "at": iso(self.at),
            "handle": self.handle,
            "country": self.country,
            "provider": self.provider,
            "kind": self.kind,
            "outcome": self.outcome,
            "text": self.text,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next: str | None  # the cursor of the next page; None: nothing older matches
    partial: bool = False  # the scan budget ran out before the page was full
    note: str = ""  # why there can be no rows (an unknown handle)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def record_key(history_id: str) -> str:
    if history_id.startswith("in-"):
        return keys.history_inbound(history_id[3:])
    return keys.outbound_message(history_id[4:])


def texter_id(redis: Redis, handle: str) -> str | None:
    """The subscriber id behind a handle (as typed, with or without "@"), or None."""
    found = redis.hget(keys.HANDLE_INDEX, handles.key(handle.lstrip("@")))
    return str(found) if found else None


def _driver(f: Filters, sub_id: str | None) -> str:
    """The index that drives a page: the most selective one the filters name."""
    if sub_id is not None:
        return history.by_texter(sub_id)
    if f.outcome in history.INDEXED_OUTCOMES:
        return history.by_outcome(f.outcome)
    if f.provider:
        return history.by_provider(f.provider)
    return history.ALL  # a direction, or an outcome no index holds: checked on every message


def page(redis: Redis, f: Filters, budget: int = SCAN_BUDGET) -> Page:
    """The page of rows `f` selects, newest first, with the cursor of the next."""
    sub_id = texter_id(redis, f.handle) if f.handle else None
    if f.handle and sub_id is None:
        return Page([], None, note=f"No texter has the handle @{f.handle.lstrip('@')} now.")
    name = _driver(f, sub_id)
    top = f.cursor[0] if f.cursor else history.score(f.until)
    bottom = history.score(f.since)
    day, offset = history.day_of(top / 1000), 0
    rows: list[Row] = []
    last: tuple[int, str] | None = None
    # A page's worth first (most pages need no more), twice as many at each further read.
    size = f.limit + 10
    while len(rows) < f.limit and budget > 0 and day >= history.day_of(f.since):
        wanted, size = min(budget, size), min(CHUNK, size * 2)
        found = cast(
            list[tuple[str, float]],
            redis.zrevrangebyscore(
                keys.history_index(day, name), top, bottom, start=offset, num=wanted, withscores=True
            ),
        )
        offset, budget = offset + len(found), budget - len(found)
        if len(found) < wanted:
            day, offset = day - 1, 0
        entries = [(int(s), str(m)) for m, s in found if not _before_cursor(f.cursor, int(s), str(m))]
        for (at_ms, member), row in zip(entries, _unnamed_rows(redis, [m for _, m in entries]), strict=True):
            last = (at_ms, member)
            if row is not None and f.matches(row, sub_id):
                rows.append(row)
                if len(rows) == f.limit:
                    break
    rows = _named(redis, rows)
    if last is not None and (len(rows) == f.limit or budget <= 0):
        return Page(rows, f"{last[0]}~{last[1]}", partial=len(rows) < f.limit)
    return Page(rows, None)


def count_at_most(redis: Redis, f: Filters) -> int:
    """How many messages the page's index holds in the filters' time range (one ZCOUNT a
    day): exact when it is the only filter, else an upper bound, as the console says."""
    sub_id = texter_id(redis, f.handle) if f.handle else None
    if f.handle and sub_id is None:
        return 0
    name, top = _driver(f, sub_id), f.cursor[0] if f.cursor else history.score(f.until)
    pipe = redis.pipeline(transaction=False)
    for day in range(history.day_of(f.since), history.day_of(top / 1000) + 1):
        pipe.zcount(keys.history_index(day, name), history.score(f.since), top)
    return sum(int(n) for n in pipe.execute())


def _before_cursor(cursor: tuple[int, str] | None, at_ms: int, member: str) -> bool:
    """Whether an entry was already on an earlier page: ties in time are ordered by id, as
    Redis orders them (descending, in a reversed range)."""
    return cursor is not None and at_ms == cursor[0] and member >= cursor[1]


def rows_of(redis: Redis, history_ids: Sequence[str]) -> list[Row | None]:
    """The rows of these messages (None for one whose record is gone), with their texters'
    handles, in three round trips at most."""
    found = _unnamed_rows(redis, history_ids)
    named = iter(_named(redis, [r for r in found if r is not None]))
    return [next(named) if r is not None else None for r in found]


def _unnamed_rows(redis: Redis, history_ids: Sequence[str]) -> list[Row | None]:
    """The rows of these messages without their handles (read only for the rows shown, see
    `_named`): the records, then the texts of the posts they show, in two round trips."""
    if not history_ids:
        return []
    records = history.read_records(redis, [record_key(h) for h in history_ids])
    post_ids = sorted({p for h, r in zip(history_ids, records, strict=True) if (p := _post_of(h, r))})
    bodies = dict(
        zip(post_ids, history.read_field(redis, [keys.post(p) for p in post_ids], "body"), strict=True)
    )
    return [
        (_inbound if h.startswith("in-") else _outbound)(h, r, bodies) if r else None
        for h, r in zip(history_ids, records, strict=True)
    ]


def _named(redis: Redis, rows: Sequence[Row]) -> list[Row]:
    """`rows` with their texters' current handles, in one round trip."""
    sub_ids = sorted({s for r in rows if (s := (r.record or {}).get(_texter_field(r.id)))})
    found = history.read_field(redis, [keys.subscriber(s) for s in sub_ids], "handle")
    names = dict(zip(sub_ids, found, strict=True))
    return [replace(r, handle=names.get((r.record or {}).get(_texter_field(r.id), "")) or "") for r in rows]


def _texter_field(history_id: str) -> str:
    """Where a record names its texter: a text's sender, an SMS's recipient."""
    return "sub" if history_id.startswith("in-") else "r"


def _post_of(history_id: str, record: dict[str, str]) -> str:
    """The post whose text a row shows: the one a text made, or the one an SMS carried."""
    if history_id.startswith("in-"):
        return record.get("post", "")
    intent = record.get("intent", "")
    return intent[5:] if intent.startswith("post:") else ""


def _inbound(h: str, r: dict[str, str], bodies: dict[str, str | None]) -> Row:
    result = r.get("res", "waiting")
    if result == "post":
        text = bodies.get(r.get("post", "")) or "(post deleted)"
    elif result == "command":
        text = DM_HIDDEN if r.get("cmd") == "dm" else (r.get("cmd") or "command").upper()
    elif result == "held":
        text = "(held: its sender is blocked)"
    elif result == "deferred":
        text = "(waiting: over the posting rate)"
    else:
        text = "(not yet processed)"
    return Row(
        id=h,
        direction="in",
        at=float(r.get("at") or 0),
        handle="",
        country=r.get("cc", ""),
        provider=r.get("ch", ""),
        kind=result if result in ("post", "command") else "text",
        outcome=result,
        text=text,
        record=r,
    )


def _outbound(h: str, r: dict[str, str], bodies: dict[str, str | None]) -> Row:
    intent = r.get("intent", "")
    kind = intent.split(":", 1)[0]
    if kind == "dm":
        text = DM_HIDDEN
    elif kind == "post":
        text = bodies.get(intent[5:]) or "(post deleted)"
    else:
        text = r.get("body", "")
    detail = " ".join(x for x in (r.get("oc", ""), f"code {r['error']}" if r.get("error") else "") if x)
    if int(r.get("refused") or 0):
        detail = f"{detail}, retried {r['refused']}×" if detail else f"retried {r['refused']}×"
    return Row(
        id=h,
        direction="out",
        at=float(r.get("created") or 0),
        handle="",
        country=r.get("cc", ""),
        provider=r.get("via") or r.get("ch", ""),
        kind=kind,
        outcome=r.get("status", ""),
        text=text,
        detail=detail,
        record=r,
    )
