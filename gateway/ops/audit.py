"""The console's audit log: who did what to how many, for every bulk action.

An entry is written after the action, with what it did (not what the preview said:
jobs may have failed or been retried by someone else in between). The log keeps the
newest KEPT entries in one Redis list, so it never grows without bound and every web
process shows the same. Entries hold the operator's name, the action, the filter as
typed (numbers masked, as everywhere) and counts: never a phone number.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis import Redis

from gateway.phones import redact
from gateway.store import keys

KEPT = 1000
SHOWN = 20


@dataclass(frozen=True)
class Entry:
    at: float
    operator: str
    action: str  # e.g. "retry failed jobs"
    filter: dict[str, str]  # the selection, as the operator set it ("" for "any")
    previewed: int  # how many the dry run counted
    done: int  # how many the action changed

    def to_json(self) -> dict[str, object]:
        return {
            "at": self.at,
            "operator": self.operator,
            "action": self.action,
            "filter": self.filter,
            "previewed": self.previewed,
            "done": self.done,
        }


def record(
    redis: Redis, operator: str, action: str, chosen: Mapping[str, str], previewed: int, done: int
) -> Entry:
    entry = Entry(
        at=round(time.time(), 3),
        operator=operator,
        action=action,
        filter={k: redact(v) for k, v in chosen.items()},
        previewed=previewed,
        done=done,
    )
    pipe = redis.pipeline(transaction=True)
    pipe.lpush(keys.OPS_AUDIT, json.dumps(entry.to_json(), ensure_ascii=False))
    pipe.ltrim(keys.OPS_AUDIT, 0, KEPT - 1)
    pipe.execute()
    return entry


def recent(redis: Redis, limit: int = SHOWN) -> list[Entry]:
    """The newest entries first."""
    found = []
    for raw in redis.lrange(keys.OPS_AUDIT, 0, limit - 1):
        data = json.loads(raw)
        found.append(
            Entry(
                at=float(data["at"]),
                operator=str(data["operator"]),
                action=str(data["action"]),
                filter={str(k): str(v) for k, v in dict(data["filter"]).items()},
                previewed=int(data["previewed"]),
                done=int(data["done"]),
            )
        )
    return found
