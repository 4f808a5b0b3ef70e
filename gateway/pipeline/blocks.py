"""Blocked texters in a batch (for `batch.process`): which of their texts are held, and the
one neutral SMS they get.

A block is on the number (`microblog.moderation`), so it holds through FORGET ME and a
fresh registration. What a blocked texter may not do is speak to or as anyone: post, reply,
DM, rename, set a bio, follow. Those texts are held (counted "blocked", never answered);
everything else (HELP, STOP, OFF, GET, DELETE, FORGET ME …) works as for anyone, so a
blocked texter can still leave and be forgotten. The first held text gets one neutral
answer ("held"), and no later one does: the texter learns nothing of the block from us.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from gateway.commands import answers, confirmation, grammar
from gateway.commands.grammar import Command
from gateway.microblog import moderation
from gateway.outbox.outbound import Outbox
from gateway.pipeline.sort import Sorted

SILENCED = frozenset({"reply", "dm", "name", "bio", "follow"})


def _silenced(command: Command) -> bool:
    """Whether a blocked texter may not run `command`; the answer to FORGET ME's question
    runs what it says, so it is judged as that ("FORGET ME", then "D @someone …")."""
    if command.name == confirmation.ANSWER:
        said = grammar.parse(command.text)
        return said is not None and said.name in SILENCED
    return command.name in SILENCED


class Text(Protocol):
    @property
    def sid(self) -> str: ...
    @property
    def from_key(self) -> str: ...
    @property
    def body(self) -> str: ...


def held(out: Outbox, texts: Sequence[Text], sender_ids: Mapping[str, int], sorted_: Sorted) -> set[str]:
    """The message ids of the batch's texts to hold because their sender is blocked (a
    round trip when none is); `sender_ids` maps each sender's keyed hash to their id."""
    blocked = moderation.blocked_among(out.redis, (t.from_key for t in texts))
    if not blocked:
        return set()
    silenced = {sid for sid, command in sorted_.commands.items() if _silenced(command)}
    holding = [t for t in texts if t.from_key in blocked and (t.sid in sorted_.posts or t.sid in silenced)]
    moderation.count_blocked(out.redis, len(holding))
    first = {t.from_key: t for t in reversed(holding)}
    for key, t in first.items():
        if moderation.tell_once(out.redis, key):
            text = answers.fit(answers.render("held", grammar.language_of(t.body)))
            out.queue([(sender_ids[key], text)], f"held:{t.sid}", "answer")
    return {t.sid for t in holding}
