"""A texter's conversation with Kabootar: the welcome a new texter gets, and a batch's
commands carried out in order (for `pipeline.batch`), one read of every commanding texter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redis.exceptions import RedisError

from gateway.commands import actions, answers, confirmation, grammar
from gateway.commands.grammar import Command
from gateway.outbox.outbound import Outbox
from gateway.store import keys

log = logging.getLogger(__name__)


def welcome(out: Outbox, texters: Sequence[tuple[int, str, str]]) -> None:
    """The first SMS each new texter (id, handle, first text) gets: their handle and HELP, in
    the language they wrote in. A batch's new texters in one round trip."""
    out.queue_each(
        [
            (sub_id, answers.fit(answers.render("welcome", grammar.language_of(first), handle=handle)),
             f"welcome:{sub_id}")
            for sub_id, handle, first in texters
        ],
        "answer",
    )  # fmt: skip


def run(out: Outbox, items: Sequence[tuple[str, int, str, Command]]) -> None:
    """Carry out commands: (message id, texter id, keyed hash of their number, command), in order."""
    if not items:
        return
    ids = list(dict.fromkeys(sub_id for _, sub_id, _, _ in items))
    pipe = out.redis.pipeline(transaction=False)
    for sub_id in ids:
        pipe.hmget(keys.subscriber(sub_id), "handle", "lang", "ch")
    known = dict(zip(ids, pipe.execute(), strict=True))
    for sid, sub_id, lookup_key, command in items:
        handle, language, channel = known[sub_id]
        if handle is None:
            continue  # forgotten by an earlier text in this batch (FORGET ME, then more)
        texter = actions.Texter(sub_id, handle, language, lookup_key, channel or out.default_channel)
        try:
            actions.run(out, sid, texter, command)
        except RedisError:
            raise  # the drain job is retried, and intents keep the rerun from repeating itself
        except Exception:
            # A bug in one command must not hold up every text behind it. Ids only in the log.
            log.exception("command %s in %s failed", command.name, sid)
        if command.name in ("name", confirmation.ANSWER):  # later texts in the batch see the change
            known[sub_id] = out.redis.hmget(keys.subscriber(sub_id), "handle", "lang", "ch")
