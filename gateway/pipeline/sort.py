"""A batch of received texts, sorted into posts and commands (for `batch.process`).

One lookup answers every `@handle` the batch's replies name, so sorting costs a round
trip per batch, not per text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis import Redis

from gateway.commands import grammar
from gateway.commands.grammar import Command, bare
from gateway.microblog import account, handles
from gateway.store import keys


@dataclass(frozen=True)
class Sorted:
    """`posts`: message id -> the post it replies to (None: not a reply); `commands`: the rest."""

    posts: dict[str, int | None]
    commands: dict[str, Command]


def sort(redis: Redis, texts: Sequence[tuple[str, str]]) -> Sorted:
    """Decide, for each (message id, body), whether it makes a post or runs a command.

    `@handle text` makes a reply post when the handle exists, replying to their latest
    post (or to nothing, if they have none: it still mentions them); otherwise it is a
    command, answered with why nothing was posted.
    """
    parsed = {sid: grammar.parse(body) for sid, body in texts}
    replies = {sid: handles.key(bare(c.targets[0])) for sid, c in parsed.items() if c and _replies(c)}
    wanted = set(replies.values())
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
        elif replies.get(sid) in targets:
            sorted_posts[sid] = targets[replies[sid]]
        else:
            sorted_commands[sid] = command
    return Sorted(sorted_posts, sorted_commands)


def answering(found: Sorted, answers: Mapping[str, Command]) -> Sorted:
    """`found` with the texts that answer a question (`confirmation.answers`) run as those
    answers instead: neither posted nor run as what they would otherwise be."""
    if not answers:
        return found
    remaining = {sid: reply_to for sid, reply_to in found.posts.items() if sid not in answers}
    return Sorted(remaining, {**found.commands, **answers})


def _replies(command: Command) -> bool:
    """Whether a command is a well-formed `@handle text` (a reply, if the handle exists)."""
    return command.name == "reply" and not command.problem
