"""Questions Kabootar asks before doing what cannot be undone (FORGET ME), and which texts
answer them.

FORGET ME asks "reply YES within 10 minutes" and notes when it asked (`ask`). The next
text the texter sends within those minutes is their answer, whatever it is (`answers`):
a yes-word (`words.YES`, in any language) erases them; anything else cancels. A command
in that answer still runs (STOP must always work); any other text is not posted, since
it was an answer ("no!", "wait") rather than a post. A yes-word that comes within an hour
after the question timed out is told so (and an English YES is then START's, as always).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from redis import Redis

from gateway.commands import words
from gateway.commands.grammar import Command
from gateway.store import keys

CONFIRM_SECONDS = 600  # "reply YES within 10 minutes"
LATE_SECONDS = 3600  # how long after that a YES is still recognised as a late answer
ANSWER = "confirm"  # the command an answer runs as (its text: the whole answer)


def ask(redis: Redis, sub_id: int) -> None:
    """Note that FORGET ME asked `sub_id` to confirm, now."""
    redis.set(keys.confirmation(sub_id), f"{time.time():.3f}", ex=CONFIRM_SECONDS + LATE_SECONDS)


def asked(redis: Redis, sub_ids: Sequence[int]) -> dict[int, float]:
    """When each of these texters was last asked to confirm, for those who were (one round trip)."""
    unique = list(dict.fromkeys(sub_ids))
    found = redis.mget([keys.confirmation(sub_id) for sub_id in unique]) if unique else []
    return {sub_id: float(at) for sub_id, at in zip(unique, found, strict=True) if at}


def is_open(asked_at: float, now: float | None = None) -> bool:
    """Whether a question asked at `asked_at` still waits for its answer."""
    return (time.time() if now is None else now) - asked_at <= CONFIRM_SECONDS


def close(redis: Redis, sub_id: int) -> None:
    """The question was answered, cancelled or erased with its texter."""
    redis.delete(keys.confirmation(sub_id))


def answers(redis: Redis, texts: Sequence[tuple[str, int, str, Command | None]]) -> dict[str, Command]:
    """Which texts of a batch answer a question: (message id, texter, body, the command it
    is or None for a post), in the order they came, to message id -> the command to run
    instead. A FORGET ME earlier in the same batch asks too."""
    now = time.time()
    waiting = {sub_id: is_open(at, now) for sub_id, at in asked(redis, [t[1] for t in texts]).items()}
    found: dict[str, Command] = {}
    for sid, sub_id, body, command in texts:
        state = waiting.get(sub_id)
        if state or (state is False and words.is_yes(body)):
            found[sid] = Command(ANSWER, None, text=body)
            del waiting[sub_id]
        if command is not None and command.name == "forget" and not command.problem:
            waiting[sub_id] = True
    return found
