"""GET /ops/messages (the history, a page that needs no JavaScript), /ops/api/messages (the
same as JSON), /ops/messages/<id> (one message's timeline) and the exports,
/ops/messages.csv and /ops/messages.json (see `export.py`).

Every route takes the same filters (`filters.py`); a filter that cannot be used is a 400
that says why, never a 500. The blueprint's guard requires a logged-in operator.
"""

from __future__ import annotations

import re
import time

from flask import abort, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from gateway.config import PROVIDERS
from gateway.ops import export, filters, history, timeline
from gateway.ops.blueprint import bp
from gateway.ops.filters import BadFilter, Filters
from gateway.runtime import Runtime

_HISTORY_ID = re.compile(r"(?:in|out)-[A-Za-z0-9._:-]{1,128}")


@bp.app_template_filter("utc")
def utc(t: float, ms: bool = False) -> str:
    """A time as the history shows it: UTC, to the second (a timeline's steps: to the ms)."""
    shown = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
    return f"{shown}.{int(t * 1000) % 1000:03d}" if ms else shown


def _filters() -> Filters:
    runtime = Runtime.of(current_app)
    return filters.parse(request.args.to_dict(), runtime.config.history_days)


@bp.get("/messages")
def messages() -> ResponseReturnValue:
    runtime = Runtime.of(current_app)
    try:
        f = _filters()
    except BadFilter as e:
        return _page(None, None, str(e)), 400
    return _page(f, history.page(runtime.redis, f), "")


def _page(f: Filters | None, found: history.Page | None, error: str) -> str:
    runtime = Runtime.of(current_app)
    at_most = history.count_at_most(runtime.redis, f) if f else 0
    return render_template(
        "ops/messages.html",
        f=f,
        page=found,
        error=error,
        args=request.args,
        at_most=at_most,
        export_cap=export.MAX_ROWS,
        days=runtime.config.history_days,
        providers=PROVIDERS,
        outcomes=filters.OUTCOMES,
        budget=history.SCAN_BUDGET,
    )


@bp.get("/api/messages")
def messages_json() -> ResponseReturnValue:
    try:
        f = _filters()
    except BadFilter as e:
        return jsonify(error=str(e)), 400
    found = history.page(Runtime.of(current_app).redis, f)
    return jsonify(
        rows=[r.to_json() for r in found.rows],
        next=found.next,
        partial=found.partial,
        note=found.note or None,
    )


@bp.get("/messages/<history_id>")
def message(history_id: str) -> ResponseReturnValue:
    if not _HISTORY_ID.fullmatch(history_id):
        abort(404)
    found = timeline.of(Runtime.of(current_app).redis, history_id)
    if found is None:
        abort(404, "No such message in the history: it may be older than the retention, or forgotten.")
    return render_template("ops/message.html", t=found)


@bp.get("/messages.csv")
def messages_csv() -> ResponseReturnValue:
    return _export("csv")


@bp.get("/messages.json")
def messages_export_json() -> ResponseReturnValue:
    return _export("json")


def _export(kind: str) -> ResponseReturnValue:
    try:
        f = _filters()
    except BadFilter as e:
        return jsonify(error=str(e)), 400
    return export.stream(Runtime.of(current_app).redis, f, kind)
