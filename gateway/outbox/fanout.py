"""A new post, by SMS, to the people it concerns.

The replied-to author is told first ("direct", the priority lane, beside answers and
direct messages); the texters it @mentions (the first MAX_MENTION_SMS of them: the rest
are only links on the web) and everyone following its author or one of its tags get it in
bulk ("fanout"), so a text full of mentions cannot crowd out answers to commands. Every
SMS for a post shares the intent `post:<id>`, so each person gets one SMS per post
however many reasons they have, and a plan that runs twice queues nothing new.
Audiences larger than FANOUT_BATCH are split into batch jobs that any worker can take.
Who is stopped or paused is decided when queuing (`outbound.queue`) and again when sending.

A web reply (source "web") reaches only the author it replies to: the web form must not
be a way to text strangers, or every follower of a tag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redis import Redis
from rq import Queue

from gateway import segments
from gateway.microblog import follows, handles, posts
from gateway.outbox.outbound import Outbox
from gateway.store import keys, queues

FANOUT_BATCH = 500


def post_url(public_url: str, post_id: int) -> str:
    """A post's short URL."""
    return f"{public_url}/posts/{post_id}"


def post_sms(post: posts.Post, public_url: str, max_segments: int) -> str:
    """`@handle: text` (`Name (web): text` for a web reply), cut to `max_segments` with an
    ellipsis and the post's URL when longer.

    Media cannot travel by SMS, so a post with media always carries its URL.
    """
    url = post_url(public_url, post.id)
    sms = f"{post.byline}: {post.body}".rstrip()
    if post.media:
        sms = f"{sms} {url}"
    return segments.truncate(sms, max_segments, suffix=f" {url}")


def enqueue(rq_queues: Mapping[str, Queue], post_ids: Sequence[int]) -> None:
    """Ask a worker to fan out new posts (one job for a batch of posts)."""
    if post_ids:
        queues.enqueue(
            rq_queues, queues.FAN_OUT, list(post_ids), description=f"fan out {len(post_ids)} posts"
        )


def _replied_to(redis: Redis, post: posts.Post) -> list[int]:
    """The texter a post replies to (never its own author): told in the priority lane."""
    if post.reply_to is None:
        return []
    parent = posts.get(redis, post.reply_to)
    if parent is None or parent.author_id is None or parent.author_id == post.author_id:
        return []
    return [parent.author_id]


def _mentioned(redis: Redis, post: posts.Post, skip: list[int], cap: int) -> list[int]:
    """The first `cap` texters a texted post @mentions, in the order it names them, leaving
    out its author and `skip` (told already). Web posts text no one they mention."""
    if post.source != "sms" or not post.mentions or cap <= 0:
        return []
    found = redis.hmget(keys.HANDLE_INDEX, [handles.key(m) for m in post.mentions])
    ids = [int(x) for x in found if x]
    return [i for i in dict.fromkeys(ids) if i != post.author_id and i not in skip][:cap]


def plan(out: Outbox, post_ids: Sequence[int]) -> int:
    """Queue posts' SMS: direct ones now, followers now or in batch jobs. Returns how many
    were queued. A drain batch's posts and their audiences are read in two round trips
    (most posts in a busy hour have no one to tell, and cost nothing more)."""
    found = posts.get_many(out.redis, post_ids)  # deleted or hidden before their turn: left out
    audiences = follows.audiences(
        out.redis, [(p.author_id, p.tags) if p.source == "sms" else None for p in found]
    )
    queued = 0
    for post, audience in zip(found, audiences, strict=True):
        direct = _replied_to(out.redis, post)
        mentioned = _mentioned(out.redis, post, direct, out.limits.max_mention_sms)
        bulk = [r for r in dict.fromkeys([*mentioned, *audience]) if r not in direct]
        if direct or bulk:
            queued += _queue_post(out, post, direct, bulk)
    return queued


def _queue_post(out: Outbox, post: posts.Post, direct: list[int], audience: list[int]) -> int:
    sms = post_sms(post, out.public_url, out.max_segments)
    intent = f"post:{post.id}"
    queued = out.queue([(r, sms) for r in direct], intent, "direct")
    if len(audience) <= FANOUT_BATCH:
        return queued + out.queue([(r, sms) for r in audience], intent, "fanout")
    batches = range(0, len(audience), FANOUT_BATCH)
    calls = [((post.id, audience[b : b + FANOUT_BATCH]), f"fan out post {post.id} ({b}+)") for b in batches]
    queues.enqueue_many(out.rq_queues, queues.FAN_OUT_BATCH, calls)
    return queued


def send_batch(out: Outbox, post_id: int, recipients: Sequence[int]) -> int:
    """Queue one batch of a large audience's SMS. Returns how many were queued."""
    post = posts.get(out.redis, post_id)
    if post is None:
        return 0
    sms = post_sms(post, out.public_url, out.max_segments)
    return out.queue([(int(r), sms) for r in recipients], f"post:{post.id}", "fanout")
