"""The history's exports, /ops/messages.csv and /ops/messages.json: the filtered rows,
streamed page by page as they are read (memory stays flat however many there are).

With `direction=out` (or an SMS outcome) an export is the delivery report: each SMS's
provider, status, neutral outcome, the provider's code and the times of its steps. No
export holds a number: handles and masked country codes only, as the pages.

Progress: before a byte is sent, the response says how many rows it can hold at most
(`X-Rows-At-Most`, the count the page's export links show). An export stops after MAX_ROWS
rows (`X-Export-Cap`); the JSON then ends with the `next` cursor to resume from (pass it as
`cursor=`), a CSV resumes with `until=` set to its last row's time. Spreadsheet programs
run cells that start with = + - @ as formulas: such cells are quoted with a leading '.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import replace

from flask import Response, stream_with_context
from redis import Redis

from gateway.ops import history
from gateway.ops.filters import MAX_LIMIT, Filters

MAX_ROWS = 100_000
COLUMNS = (
    *("id", "direction", "at", "handle", "country", "provider", "kind", "outcome", "text", "detail"),
    *("queued_at", "sending_at", "sent_at", "done_at", "attempts", "retries"),  # SMS only
)


def rows(redis: Redis, f: Filters, cap: int = MAX_ROWS) -> Iterator[tuple[history.Row | None, str | None]]:
    """Every row `f` selects, newest first, up to `cap`; then (None, the cursor to resume
    from, or None when nothing is left)."""
    sent = 0
    while True:
        found = history.page(redis, replace(f, limit=min(MAX_LIMIT, cap - sent)))
        for row in found.rows:
            yield row, None
        sent += len(found.rows)
        if found.next is None or sent >= cap:
            yield None, found.next
            return
        at_ms, _, member = found.next.partition("~")
        f = replace(f, cursor=(int(at_ms), member))


def _times(row: history.Row) -> list[str]:
    r = row.record or {}
    if row.direction != "out":
        return ["", "", "", "", "", ""]
    stamps = [history.iso(float(r[k])) if r.get(k) else "" for k in ("created", "t_go", "t_sent", "t_done")]
    return [*stamps, r.get("attempts", ""), r.get("refused", "0")]


def _fields(row: history.Row) -> list[str]:
    j = row.to_json()
    return [str(j[c]) for c in COLUMNS[:10]] + _times(row)


def _cell(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv(redis: Redis, f: Filters) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row, _ in rows(redis, f):
        if row is not None:
            writer.writerow([_cell(v) for v in _fields(row)])
        if out.tell() > 32_000 or row is None:
            yield out.getvalue()
            out.seek(0)
            out.truncate()


def _json(redis: Redis, f: Filters, at_most: int) -> Iterator[str]:
    yield '{"count_at_most": ' + str(at_most) + ', "rows": ['
    first = True
    for row, cursor in rows(redis, f):
        if row is None:
            yield "], " + json.dumps({"next": cursor})[1:]
            return
        exported = {**row.to_json(), **dict(zip(COLUMNS[10:], _times(row), strict=True))}
        yield ("" if first else ",") + "\n" + json.dumps(exported, ensure_ascii=False)
        first = False


def stream(redis: Redis, f: Filters, kind: str) -> Response:
    """The export of the rows `f` selects, as "csv" or "json", streamed."""
    at_most = history.count_at_most(redis, f)
    body = _csv(redis, f) if kind == "csv" else _json(redis, f, at_most)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    mimetype = "text/csv" if kind == "csv" else "application/json"
    return Response(
        stream_with_context(body),
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="kabootar-messages-{stamp}.{kind}"',
            "X-Rows-At-Most": str(at_most),
            "X-Export-Cap": str(MAX_ROWS),
        },
    )
