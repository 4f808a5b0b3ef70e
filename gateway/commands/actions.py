"""Carrying out a texter's commands, and answering them in the language they used.

Every command gets a short answer (intent `answer:<message id>`, so a drain that runs
twice answers once), except the STOP words a provider answers itself and the YES that
confirms FORGET ME, after which there is no number left to answer. Bad input gets a usage
hint, never silence; a text that starts with a command word but is not its shape gets
"did you mean …?" and is neither carried out nor posted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from gateway import segments
from gateway.commands import answers, confirmation, grammar, limits, words
from gateway.commands.grammar import Command, bare
from gateway.microblog import account, follows, posts, subscribers, text
from gateway.outbox import fanout, outbound
from gateway.outbox.outbound import Outbox
from gateway.providers import registry
from gateway.store import keys, queues


@dataclass(frozen=True)
class Texter:
    """Who sent a command."""

    id: int
    handle: str
    language: str | None  # the language they last wrote in, when known
    lookup_key: str  # keyed hash of their number (FORGET ME removes it from the index)
    channel: str = "twilio"  # the provider they texted through (answers go back that way)


@dataclass(frozen=True)
class Request:
    out: Outbox
    sid: str
    texter: Texter
    command: Command
    language: str

    def answer(self, key: str, force: bool = False, **fields: object) -> None:
        """Queue the answer `key`, in the texter's language."""
        self.say(answers.render(key, self.language, **fields), force)

    def say(self, text: str, force: bool = False, intent: str = "") -> None:
        """Queue `text` as the answer to this command (once, however often this runs); a
        second answer to the same text needs an `intent` of its own."""
        intent = intent or f"answer:{self.sid}"
        self.out.queue([(self.texter.id, answers.fit(text))], intent, "answer", force)


def _help(r: Request) -> None:
    r.answer("help", force=True)  # HELP answers even a stopped texter (carriers require it)


def _stop(r: Request) -> None:
    outbound.mark_stopped(r.out.redis, r.texter.id, True)
    if not registry.answers_stop_itself(r.texter.channel, r.command.keyword):
        r.answer("stopped", force=True)  # Twilio confirms its own English keywords; a phone, nothing


def _start(r: Request) -> None:
    outbound.mark_stopped(r.out.redis, r.texter.id, False)
    r.answer("started")


def _off(r: Request) -> None:
    r.out.redis.hset(keys.subscriber(r.texter.id), "paused", "1")
    r.answer("paused")


def _on(r: Request) -> None:
    r.out.redis.hdel(keys.subscriber(r.texter.id), "paused")
    r.answer("resumed")


def _follow(r: Request) -> None:
    """FOLLOW / UNFOLLOW @handles and #tags: one answer saying what changed and what could not."""
    if r.command.problem:
        return r.answer(r.command.problem)
    on = r.command.name == "follow"
    found: dict[str, list[str]] = {}
    for target in r.command.targets:
        outcome, label = _follow_one(r, target, on)
        found.setdefault(outcome, []).append(label)
    parts = []
    if done := found.get("done"):
        parts.append(answers.render("followed" if on else "unfollowed", r.language, targets=", ".join(done)))
    if unknown := found.get("unknown"):
        parts.append(answers.render("no_such_handle", r.language, handle=unknown[0]))
    if too_long := found.get("too_long"):
        parts.append(answers.render("tag_too_long", r.language, tag=too_long[0][:20], most=text.TAG_MAX))
    if "full" in found:
        parts.append(answers.render("follow_limit", r.language, most=r.out.limits.max_follows))
    if "self" in found and on:
        parts.append(answers.render("follow_self", r.language))
    r.say(" ".join(parts) or answers.render(f"{r.command.name}_usage", r.language))


def _follow_one(r: Request, target: str, on: bool) -> tuple[str, str]:
    """Follow or unfollow one @handle or #tag: (done / unknown / too_long / full / self, its label)."""
    name, most = bare(target), r.out.limits.max_follows
    if target[0] in "#＃":
        if on and not text.tag_fits(name):
            return "too_long", name
        if not on:
            follows.unfollow_tag(r.out.redis, r.texter.id, name)
        elif follows.follow_tag(r.out.redis, r.texter.id, name, most) == "full":
            return "full", name
        return "done", f"#{name}"
    sub_id = subscribers.id_for_handle(r.out.redis, name)
    if sub_id is None:
        return "unknown", name
    if sub_id == r.texter.id:
        return "self", name
    if not on:
        follows.unfollow_user(r.out.redis, r.texter.id, sub_id)
    elif follows.follow_user(r.out.redis, r.texter.id, sub_id, most) == "full":
        return "full", name
    return "done", f"@{subscribers.handle_of(r.out.redis, sub_id) or name}"


def _resolve(r: Request) -> tuple[int, str] | None:
    """The subscriber a GET/WHOIS/D names, after answering if there is none."""
    name = bare(r.command.targets[0])
    sub_id = subscribers.id_for_handle(r.out.redis, name)
    if sub_id is None:
        r.answer("no_such_handle", handle=name)
        return None
    return sub_id, subscribers.handle_of(r.out.redis, sub_id) or name


def _get(r: Request) -> None:
    if r.command.problem or r.command.targets[0][0] in "#＃":
        return r.answer("get_usage")
    if (found := _resolve(r)) is None:
        return None
    post = account.latest_post(r.out.redis, found[0])
    if post is None:
        return r.answer("no_posts", handle=found[1])
    r.say(fanout.post_sms(post, r.out.public_url, answers.MAX_SEGMENTS))


def _whois(r: Request) -> None:
    if r.command.problem:
        return r.answer("whois_usage")
    if (found := _resolve(r)) is None:
        return None
    sub_id, handle = found
    bio = r.out.redis.hget(keys.subscriber(sub_id), "bio") or answers.render("no_bio", r.language)
    followers = follows.counts(r.out.redis, sub_id).followers
    posts = account.post_count(r.out.redis, sub_id)
    r.answer("whois", handle=handle, bio=bio, posts=posts, followers=followers)


def _name(r: Request) -> None:
    if r.command.problem:
        return r.answer("name_usage")
    outcome = account.rename(r.out.redis, r.texter.id, r.command.text)
    key = {
        "renamed": "renamed",
        "same": "name_same",
        "taken": "name_taken",
        "too_often": "name_too_often",
    }.get(outcome, "name_invalid")
    r.answer(key, handle=r.command.text)


def _bio(r: Request) -> None:
    if r.command.text:
        account.set_bio(r.out.redis, r.texter.id, r.command.text)
        return r.answer("bio_saved")
    bio = r.out.redis.hget(keys.subscriber(r.texter.id), "bio")
    if bio:
        return r.answer("bio_show", bio=bio)
    r.answer("bio_empty")


def _delete(r: Request) -> None:
    deleted = account.delete_latest(r.out.redis, r.texter.id, r.sid)
    if deleted is None:
        r.answer("nothing_to_delete")
    elif isinstance(deleted, posts.Post):  # else this text already deleted one, and said so
        r.answer("deleted", start=" ".join(deleted.body.split()[:6])[:40])


def _stats(r: Request) -> None:
    c = follows.counts(r.out.redis, r.texter.id)
    posts = account.post_count(r.out.redis, r.texter.id)
    r.answer("stats", followers=c.followers, users=c.following_users, tags=c.following_tags, posts=posts)


def _forget(r: Request) -> None:
    """FORGET ME: ask to confirm (even a stopped texter: it is their way out). Their next
    text answers (`confirmation.answers`), and runs as `_confirm`."""
    confirmation.ask(r.out.redis, r.texter.id)
    r.answer("forget_ask", force=True, minutes=confirmation.CONFIRM_SECONDS // 60)


def _confirm(r: Request) -> None:
    """The text after FORGET ME: YES erases the texter; anything else cancels. A command in
    it still runs; any other text was an answer, so it is not posted (and they are told). A
    YES after the question timed out erases nothing, says so, and is START's YES again."""
    redis, answer = r.out.redis, r.command.text
    asked_at = confirmation.asked(redis, [r.texter.id]).get(r.texter.id)
    yes = words.is_yes(answer)
    if yes and asked_at is not None and confirmation.is_open(asked_at):
        return _erase(r)
    confirmation.close(redis, r.texter.id)
    minutes = confirmation.CONFIRM_SECONDS // 60
    command = grammar.parse(answer)
    if command is None or not _runs(command):
        return r.answer("forget_expired" if yes else "forget_cancelled_unposted", minutes=minutes)
    if command.name != "forget":  # FORGET ME again simply asks again
        said = answers.render("forget_expired" if yes else "forget_cancelled", r.language, minutes=minutes)
        r.say(said, intent=f"cancelled:{r.sid}")
    _carry_out(dataclasses.replace(r, command=command))


def _runs(command: Command) -> bool:
    """Whether a text is a command to carry out, rather than one that would be posted (a
    reply to someone who exists) or that is not carried out ("did you mean …?")."""
    return command.problem != grammar.UNCLEAR and not (command.name == "reply" and not command.problem)


def _erase(r: Request) -> None:
    """Erase the texter now (their records here; the outbox's in a job)."""
    post_ids, handle = account.forget(r.out.redis, r.texter.id, r.texter.lookup_key)
    description = f"forget subscriber {r.texter.id}"
    queues.enqueue(
        r.out.rq_queues, queues.FORGET_OUTBOUND, r.texter.id, post_ids, handle, description=description
    )


def _unclear(r: Request) -> None:
    """A text that starts with a command word without its shape: "did you mean …?", with
    the way to post it instead (start it with a quote mark)."""
    name, word = r.command.name, r.command.keyword
    if grammar.takes_arguments(name):
        usage = answers.render(f"{name}_usage", r.language)
        return r.answer("did_you_mean_usage", word=word, usage=usage)
    r.answer("did_you_mean", force=name == "help", word=word)


def _reply(r: Request) -> None:
    """Only a reply that could not be posted comes here: it is answered with why."""
    handle = bare(r.command.targets[0])
    r.answer("reply_usage" if r.command.problem else "not_posted", handle=handle)


def _dm(r: Request) -> None:
    """D @handle text: to them alone, by SMS, never public; at most DM_PER_HOUR an hour."""
    if r.command.problem:
        return r.answer("dm_usage")
    if (found := _resolve(r)) is None:
        return None
    sub_id, handle = found
    if sub_id == r.texter.id:
        return r.answer("dm_self")
    intent = f"dm:{r.texter.id}:{r.sid}"  # starts with the sender: FORGET ME finds their messages
    already = outbound.message_status(r.out.redis, outbound.message_id(intent, sub_id)) is not None
    most = r.out.limits.dm_per_hour
    if not already and not limits.take_dm(r.out.redis, r.texter.id, r.sid, most):
        return r.answer("dm_limit", most=most)
    sms = segments.truncate(f"D @{r.texter.handle}: {r.command.text}", r.out.max_segments)
    undelivered = answers.fit(answers.render("dm_undelivered", r.language, handle=handle))
    queued = r.out.queue([(sub_id, sms)], intent, "direct", notice=(r.texter.id, undelivered))
    if queued or already:
        return r.answer("dm_sent", handle=handle)
    r.say(undelivered)  # they are OFF or stopped: not delivered, and nothing more said of why


HANDLERS: dict[str, Callable[[Request], None]] = {
    "help": _help,
    "stop": _stop,
    "start": _start,
    "off": _off,
    "on": _on,
    "follow": _follow,
    "unfollow": _follow,
    "get": _get,
    "whois": _whois,
    "name": _name,
    "bio": _bio,
    "delete": _delete,
    "stats": _stats,
    "forget": _forget,
    confirmation.ANSWER: _confirm,
    "reply": _reply,
    "dm": _dm,
}


def run(out: Outbox, sid: str, texter: Texter, command: Command) -> None:
    """Carry out one command from `texter` (text `sid`) and queue its answer."""
    whole = command.name in ("reply", "dm", "bio", confirmation.ANSWER) or command.problem == grammar.UNCLEAR
    said = command.text if whole else ""
    said = said or " ".join((command.keyword, *command.targets))  # "@sara" alone: the name's script
    language = command.language or grammar.language_of(said, texter.language)
    if language != texter.language:
        out.redis.hset(keys.subscriber(texter.id), "lang", language)
    _carry_out(Request(out, sid, texter, command, language))


def _carry_out(r: Request) -> None:
    if r.command.problem == grammar.UNCLEAR:
        return _unclear(r)
    HANDLERS[r.command.name](r)
