"""Bulk actions: GET /ops/bulk/jobs and /ops/bulk/sms (a dry run) and POST
/ops/api/bulk/jobs/<action> and /ops/api/bulk/sms/retry (its confirmation): failed jobs
retried or discarded, failed SMS sent again, by filter, each written to the audit log."""

from __future__ import annotations

from flask import current_app, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from gateway.ops import audit, bulk, filters
from gateway.ops.actions import answer
from gateway.ops.blueprint import bp
from gateway.runtime import Runtime


def _filter() -> bulk.JobFilter:
    return bulk.JobFilter.parse(request.values, list(Runtime.of(current_app).queues))


@bp.errorhandler(filters.BadFilter)
def _bad(e: filters.BadFilter) -> ResponseReturnValue:
    """A filter that cannot be used, raised by any console view that does not answer it
    itself (the history's pages do): 400 with the reason, as JSON or a page."""
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
        return jsonify(ok=False, message=str(e)), 400
    return render_template("ops/bulk.html", error=str(e), action=None), 400


def _previewed() -> int:
    """How many the dry run counted, as its confirm form carries it (0 when sent without one)."""
    raw = request.form.get("previewed", "")
    return int(raw) if raw.isdigit() and len(raw) < 10 else 0


@bp.get("/bulk/jobs")
def bulk_jobs_preview() -> ResponseReturnValue:
    action = request.args.get("action", "")
    if action not in bulk.ACTIONS:
        raise filters.BadFilter("choose retry or discard")
    chosen = _filter()
    selection = bulk.select(Runtime.of(current_app).queues, chosen)
    return render_template(
        "ops/bulk.html",
        error=None,
        action=action,
        what=bulk.ACTIONS[action],
        chosen=chosen,
        selection=selection,
        max_selected=bulk.MAX_SELECTED,
    )


@bp.post("/api/bulk/jobs/<any(retry, discard):action>")
def bulk_jobs(action: str) -> ResponseReturnValue:
    chosen = _filter()
    previewed = _previewed()
    queues = Runtime.of(current_app).queues
    selection = bulk.select(queues, chosen)
    done = bulk.apply(queues, action, selection)
    audit.record(
        Runtime.of(current_app).redis, g.operator, bulk.ACTIONS[action], chosen.shown(), previewed, done
    )
    verb = "Retried" if action == "retry" else "Discarded"
    message = f"{verb} {done} failed job{'s' if done != 1 else ''}"
    if done != previewed:
        message += f" ({previewed} in the preview: others changed them meanwhile)"
    return answer(True, message + ".", "audit")


def _sms_filter() -> filters.Filters:
    return bulk.sms_filter(request.values.to_dict(), Runtime.of(current_app).config.history_days)


@bp.get("/bulk/sms")
def bulk_sms_preview() -> ResponseReturnValue:
    chosen = _sms_filter()
    selection = bulk.select_sms(Runtime.of(current_app).redis, chosen)
    return render_template(
        "ops/bulk_sms.html",
        chosen=chosen,
        shown=bulk.sms_shown(chosen),
        selection=selection,
        max_selected=bulk.MAX_SELECTED,
    )


@bp.post("/api/bulk/sms/retry")
def bulk_sms() -> ResponseReturnValue:
    chosen = _sms_filter()
    previewed = _previewed()
    redis = Runtime.of(current_app).redis
    selection = bulk.select_sms(redis, chosen)
    done, skipped = bulk.apply_sms(redis, selection)
    audit.record(redis, g.operator, bulk.SMS_ACTION, bulk.sms_shown(chosen), previewed, done)
    message = f"Queued {done} failed SMS again"
    if skipped:
        message += f"; skipped {skipped} whose recipients do not receive SMS now"
    return answer(True, message + ".", "audit")
