"""A batch of stored texts becomes posts and commands (a drain job's work, see `inbox.py`).

Everything here is idempotent per message id: a post records the text it came from, and
every SMS it queues is keyed by an intent (`answer:<sid>`, `welcome:<id>`, `post:<id>`),
so a batch that runs again (its worker died mid-way) makes nothing twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from redis import Redis

from gateway.commands import confirmation, conversation
from gateway.microblog import posts, subscribers
from gateway.outbox import fanout
from gateway.outbox.outbound import Outbox
from gateway.pipeline import blocks, forget, sort, throttle
from gateway.runtime import Runtime
from gateway.store import history, keys, stats


@dataclass(frozen=True)
class StoredText:
    """A text read back from Redis: the sender only as keyed hash and ciphertext."""

    sid: str
    from_key: str
    from_encrypted: str
    body: str
    media: tuple[str, ...]
    received_at: float
    channel: str  # the provider it came through
    prefix: str  # the provider's channel prefix the sender wrote (Twilio's "whatsapp"), if any
    country: str = ""  # the sender's country code ("+98"), all the history shows of the number


def _read(redis: Redis, sids: list[str]) -> list[StoredText]:
    pipe = redis.pipeline(transaction=False)
    for sid in sids:
        pipe.hgetall(keys.inbound_message(sid))
    texts = []
    for sid, h in zip(sids, pipe.execute(), strict=True):
        if not h:  # already posted and cleaned up by an earlier run of this batch
            continue
        texts.append(
            StoredText(
                sid=sid,
                from_key=h["from_key"],
                from_encrypted=h["from"],
                body=h.get("body", ""),
                media=tuple(json.loads(h["media"])) if h.get("media") else (),
                received_at=float(h.get("at", "0")),
                channel=h.get("ch", ""),
                prefix=h.get("pre", ""),
                country=h.get("cc", ""),
            )
        )
    return texts


def _authors(redis: Redis, texts: list[StoredText]) -> dict[str, subscribers.Subscriber]:
    """The subscriber behind each sender, registering first-time texters."""
    lookup_keys = list(dict.fromkeys(t.from_key for t in texts))
    found = dict(zip(lookup_keys, subscribers.find_ids(redis, lookup_keys), strict=True))
    authors: dict[str, subscribers.Subscriber] = {}
    encrypted = {t.from_key: t.from_encrypted for t in texts}
    new = [key for key, sub_id in found.items() if sub_id is None]
    # First-time texters, all registered in one round trip: most of a crisis's texts.
    registered = dict(
        zip(new, subscribers.register_many(redis, [(k, encrypted[k]) for k in new]), strict=True)
    )
    for key, sub_id in found.items():
        authors[key] = registered[key] if sub_id is None else subscribers.Subscriber(sub_id, "")
    # What comes back to a texter goes through the channel they texted last.
    channels = {authors[t.from_key].id: (t.channel, t.prefix) for t in texts if t.channel}
    subscribers.set_channels(redis, channels)
    return authors


def _outcome(
    t: StoredText,
    sub_id: int,
    made: dict[str, int],
    found: sort.Sorted,
    held: set[str],
    deferred: set[str],
) -> history.Processed:
    """What became of one text, for the history (a command by its name only: a direct
    message's text stays out of it)."""

    def noted(result: str, post_id: int | None = None, command: str = "") -> history.Processed:
        return history.Processed(t.sid, t.received_at, sub_id, result, t.channel, t.country, post_id, command)

    if t.sid in held:
        return noted("held")
    if t.sid in deferred:
        return noted("deferred")
    if t.sid in made:
        return noted("post", post_id=made[t.sid])
    command = found.commands.get(t.sid)
    return noted("command", command=command.name if command else "")


def process(runtime: Runtime, sids: list[str]) -> list[int]:
    """Turn stored texts into posts and commands (each once per message id, however often this runs).

    Posts are made in one round trip and fanned out by one job per batch; commands are
    carried out and answered; a first-time texter is welcomed. Every SMS this queues is
    keyed by an intent (`answer:<sid>`, `welcome:<id>`, `post:<id>`), so running a batch
    again queues nothing twice. Returns the ids of the posts made.
    """
    redis, config = runtime.redis, runtime.config
    texts = _read(redis, sids)
    if not texts:
        return []
    out = Outbox.of(runtime)
    authors = _authors(redis, texts)
    sorted_ = sort.sort(redis, [(t.sid, t.body) for t in texts])
    # A texter asked to confirm FORGET ME: their next text is the answer, post or not.
    sorted_ = sort.answering(
        sorted_,
        confirmation.answers(
            redis,
            [(t.sid, authors[t.from_key].id, t.body, sorted_.commands.get(t.sid)) for t in texts],
        ),
    )
    # A blocked number's posts, replies, DMs, renames and follows are held (counted, and
    # told once); its other commands still run, so it can still opt out or be forgotten.
    held = blocks.held(out, texts, {key: author.id for key, author in authors.items()}, sorted_)
    # Over SENDER_POSTS_PER_MINUTE: kept, and posted once the minute has passed.
    deferred = set(
        throttle.over_limit(
            redis,
            [(t.sid, authors[t.from_key].id) for t in texts if t.sid in sorted_.posts and t.sid not in held],
            config.sender_posts_per_minute,
            time.time(),
        )
    )
    new_posts = [
        posts.NewPost(
            body=t.body,
            source="sms",
            author_id=authors[t.from_key].id,
            reply_to=sorted_.posts[t.sid],
            media=t.media,
            message_sid=t.sid,
            created_at=t.received_at,
        )
        for t in texts
        if t.sid in sorted_.posts and t.sid not in held and t.sid not in deferred
    ]
    post_ids = (
        posts.create_many(redis, new_posts, config.media_allow_http, runtime.replication) if new_posts else []
    )
    # Welcomes once the posts are in the timeline (a first-time texter's post waits for
    # none of them), all in one round trip, before any answer to the same texter.
    first_texts: dict[str, StoredText] = {}
    for t in texts:
        first_texts.setdefault(t.from_key, t)
    conversation.welcome(
        out,
        [(authors[k].id, authors[k].handle, t.body) for k, t in first_texts.items() if authors[k].is_new],
    )
    commands = [
        (t.sid, authors[t.from_key].id, t.from_key, sorted_.commands[t.sid])
        for t in texts
        if t.sid in sorted_.commands and t.sid not in held
    ]
    conversation.run(out, commands)
    forgotten: set[int] = set()
    for sid, sub_id, lookup_key, command in commands:
        # Erased by their YES (now, or in an earlier run of this batch): what the pipeline
        # itself still holds of them goes too.
        if command.name == confirmation.ANSWER and not redis.exists(keys.subscriber(sub_id)):
            theirs = [t.sid for t in texts if t.from_key == lookup_key]
            forget.texter(redis, sub_id, lookup_key, sid, theirs)
            forgotten.add(sub_id)
    fanout.enqueue(out.rq_queues, post_ids)  # before the texts go: a rerun must still fan out
    pipe = redis.pipeline(transaction=False)
    done = [t for t in texts if t.sid not in deferred]
    if done:
        pipe.delete(*(keys.inbound_message(t.sid) for t in done))
    made = dict(zip((p.message_sid for p in new_posts), post_ids, strict=True))
    outcomes = [_outcome(t, authors[t.from_key].id, made, sorted_, held, deferred) for t in texts]
    history.note_processed(pipe, [o for o in outcomes if o.sub_id not in forgotten], config.history_days)
    now = time.time()
    stats.observe_latencies(pipe, "webhook_to_post", (now - t.received_at for t in done))
    pipe.execute()
    return post_ids
