"""GET /ops/charts (the charts, with a table behind each) and GET /ops/api/charts (their
figures as JSON, for the page's refresh and for scripts). `range` is hour, day or week;
anything else is a 400 (the blueprint already requires an operator)."""

from __future__ import annotations

from flask import Response, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from gateway.ops import charts
from gateway.ops.blueprint import bp
from gateway.runtime import Runtime

BAD_RANGE = "range must be one of: " + ", ".join(charts.SPANS)


def _span() -> charts.Span | None:
    return charts.SPANS.get(request.args.get("range", "hour"))


@bp.get("/charts")
def charts_page() -> ResponseReturnValue:
    span = _span()
    if span is None:
        return Response(BAD_RANGE + "\n", 400, content_type="text/plain; charset=utf-8")
    figures = charts.read(Runtime.of(current_app), span)
    return render_template("ops/charts.html", c=figures, spans=charts.SPANS.values(), cell=charts.cell)


@bp.get("/api/charts")
def charts_json() -> ResponseReturnValue:
    span = _span()
    if span is None:
        return jsonify(error=BAD_RANGE), 400
    return jsonify(charts.read(Runtime.of(current_app), span))
