"""A batch of received texts, sorted into posts and commands (called by `inbox.process`).

Posts are made in one round trip by the caller; what this module adds is batched too:
one lookup for every `@handle` a reply names, one read of every commanding texter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from gateway.commands import actions, answers
from gateway.commands import grammar as commands
from gateway.commands.grammar import Command, bare
from gateway.microblog import account
from gateway.microblog.text import fold
from gateway.store import keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sorted:
    """`posts`: MessageSid -> the post it replies to (None: not a reply); `commands`: the rest."""

    posts: dict[str, int | None]
    commands: dict[str, Command]


def sort(redis: Redis, texts: Sequence[tuple[str, str]]) -> Sorted:
    """Decide, for each (MessageSid, body), whether it makes a post or runs a command.

    `@handle text` makes a reply post when the handle exists, replying to their latest
    post (or to nothing, if they have none: it still mentions them); otherwise it is a
    command, answered with why nothing was posted.
    """
    parsed = {sid: commands.parse(body) for sid, body in texts}
    wanted = {fold(bare(c.targets[0])) for c in parsed.values() if c and c.name == "reply" and not c.problem}
    targets: dict[str, int | None] = {}
    if wanted:
        names = sorted(wanted)
        for name, sub_id in zip(names, redis.hmget(keys.HANDLE_INDEX, names), strict=True):
            if sub_id:
                latest = account.latest_post(redis, int(sub_id))
                targets[name] = latest.id if latest else None
    sorted_posts: dict[str, int | None] = {}
    sorted_commands: dict[str, Command] = {}
    for sid, command in parsed.items():
        if command is None:
            sorted_posts[sid] = None
        elif command.name == "reply" and not command.problem and fold(bare(command.targets[0])) in targets:
            sorted_posts[sid] = targets[fold(bare(command.targets[0]))]
        else:
            sorted_commands[sid] = command
    return Sorted(sorted_posts, sorted_commands)


def welcome(out: actions.Outbox, sub_id: int, handle: str, first_text: str) -> None:
    """The first SMS a new texter gets: their handle and HELP, in the language they wrote in."""
    text = answers.fit(answers.render("welcome", commands.language_of(first_text), handle=handle))
    out.queue([(sub_id, text)], f"welcome:{sub_id}", "answer")


def run(out: actions.Outbox, items: Sequence[tuple[str, int, str, Command]]) -> None:
    """Carry out commands: (MessageSid, texter id, keyed hash of their number, command), in order."""
    if not items:
        return
    ids = list(dict.fromkeys(sub_id for _, sub_id, _, _ in items))
    pipe = out.redis.pipeline(transaction=False)
    for sub_id in ids:
        pipe.hmget(keys.subscriber(sub_id), "handle", "lang")
    known = dict(zip(ids, pipe.execute(), strict=True))
    for sid, sub_id, lookup_key, command in items:
        handle, language = known[sub_id]
        if handle is None:
            continue  # forgotten by an earlier text in this batch (FORGET ME, then more)
        texter = actions.Texter(sub_id, handle, language, lookup_key)
        try:
            actions.run(out, sid, texter, command)
        except RedisError:
            raise  # the drain job is retried, and intents keep the rerun from repeating itself
        except Exception:
            # A bug in one command must not hold up every text behind it. Ids only in the log.
            log.exception("command %s in %s failed", command.name, sid)
        if command.name in ("name", "forget"):  # later texts in the batch see the change
            known[sub_id] = out.redis.hmget(keys.subscriber(sub_id), "handle", "lang")
