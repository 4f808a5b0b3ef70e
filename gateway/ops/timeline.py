"""One message's timeline: received → stored → processed → post / command → each SMS it
caused, queued → sending → sent → delivered / failed, with times and neutral outcomes.

A text finds the SMS it caused by their intents (`answer:<sid>`, `dm:<sender>:<sid>`,
`post:<id>`…: `keys.history_sms_of`); an SMS finds the text that caused it the same way
back. A post's fan-out may be thousands of SMS: the timeline shows MAX_SMS of them and
says how many there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis import Redis

from gateway.ops.history import Row, rows_of
from gateway.store import history, keys

MAX_SMS = 20
_CAUSED_BY_TEXT = ("answer", "held", "cancelled")  # intents "<kind>:<the text's id>"


@dataclass(frozen=True)
class Step:
    at: float | None
    what: str
    detail: str = ""


@dataclass(frozen=True)
class Timeline:
    row: Row
    steps: list[Step]
    sms: list[tuple[Row, list[Step]]] = field(default_factory=list)  # what a text caused
    sms_total: int = 0
    cause: str | None = None  # the history id of the text an SMS answers or carries


def _at(record: dict[str, str], name: str) -> float | None:
    value = record.get(name)
    return float(value) if value else None


def text_steps(row: Row) -> list[Step]:
    r = row.record or {}
    origin = f"via {row.provider}" + (f", from {row.country}" if row.country else "")
    steps = [
        Step(_at(r, "at"), "received", origin),
        Step(_at(r, "st"), "stored", "in the inbox, acknowledged to the provider"),
    ]
    result = r.get("res")
    if result == "post":
        steps.append(Step(_at(r, "pr"), "processed", f"became post #{r.get('post', '?')}"))
    elif result == "command":
        steps.append(Step(_at(r, "pr"), "processed", f"ran command {row.text}"))
    elif result:
        steps.append(Step(_at(r, "pr"), "processed", row.text))
    return steps


def sms_steps(row: Row) -> list[Step]:
    r = row.record or {}
    steps = [Step(_at(r, "created"), "queued", f"{r.get('kind', '')} lane, for {row.kind}")]
    if r.get("t_go"):
        steps.append(Step(_at(r, "t_go"), "sending", f"{r.get('attempts', '1')} call(s) to the provider"))
    if r.get("t_sent"):
        steps.append(Step(_at(r, "t_sent"), "sent", f"taken by {row.provider}"))
    if int(r.get("refused") or 0):
        steps.append(Step(None, "retried", f"{r['refused']} time(s) after a retryable refusal or report"))
    if r.get("t_done"):
        steps.append(Step(_at(r, "t_done"), row.outcome, row.detail))
    elif row.outcome not in ("sent", "queued", "sending"):
        steps.append(Step(_at(r, "updated"), row.outcome, row.detail))
    return steps


def _intents_of_text(sid: str, record: dict[str, str]) -> list[str]:
    found = [f"{kind}:{sid}" for kind in _CAUSED_BY_TEXT]
    if record.get("sub"):
        found.append(f"dm:{record['sub']}:{sid}")
    if record.get("post"):
        found.append(f"post:{record['post']}")
    return found


def _cause(redis: Redis, intent: str) -> str | None:
    kind, _, rest = intent.partition(":")
    if kind in _CAUSED_BY_TEXT:
        return history.inbound_id(rest)
    if kind == "dm":
        return history.inbound_id(rest.partition(":")[2])
    if kind == "post":
        sid = redis.hget(keys.post(rest), "sid")
        return history.inbound_id(str(sid)) if sid else None
    return None


def of(redis: Redis, history_id: str) -> Timeline | None:
    """The timeline of one message; None if the history has no such message."""
    found = rows_of(redis, [history_id])[0]
    if found is None:
        return None
    record = found.record or {}
    if found.direction == "out":
        return Timeline(found, sms_steps(found), cause=_cause(redis, record.get("intent", "")))
    pipe = redis.pipeline(transaction=False)
    intents = _intents_of_text(history_id[3:], record)
    for intent in intents:
        pipe.scard(keys.history_sms_of(intent))
        pipe.srandmember(keys.history_sms_of(intent), MAX_SMS)
    replies = pipe.execute()
    total = sum(int(n) for n in replies[0::2])
    ids = [history.outbound_id(str(m)) for members in replies[1::2] for m in members][:MAX_SMS]
    sms = sorted((r for r in rows_of(redis, ids) if r is not None), key=lambda r: r.at)
    return Timeline(found, text_steps(found), [(r, sms_steps(r)) for r in sms], total)
