"""A new post, by SMS, to the people it concerns.

The replied-to author and the texters it @mentions are told first ("direct", the
priority lane); then everyone following its author or one of its tags gets it ("fanout",
bulk). Every SMS for a post shares the intent `post:<id>`, so each person gets one SMS
per post however many reasons they have, and a plan that runs twice queues nothing new.
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
    """`@handle: text`, cut to `max_segments` with an ellipsis and the post's URL when longer.

    Media cannot travel by SMS, so a post with media always carries its URL.
    """
    name = f"@{post.handle}" if post.author_id is not None else f"{post.handle} (web)"
    url = post_url(public_url, post.id)
    sms = f"{name}: {post.body}".rstrip()
    if post.media:
        sms = f"{sms} {url}"
    return segments.truncate(sms, max_segments, suffix=f" {url}")


def enqueue(rq_queues: Mapping[str, Queue], post_ids: Sequence[int]) -> None:
    """Ask a worker to fan out new posts (one job for a batch of posts)."""
    if post_ids:
        queues.enqueue(
            rq_queues, queues.FAN_OUT, list(post_ids), description=f"fan out {len(post_ids)} posts"
        )


def _notified(redis: Redis, post: posts.Post) -> list[int]:
    """The replied-to author and, for texted posts, the mentioned texters; never the author."""
    ids: list[int] = []
    if post.reply_to is not None:
        parent = posts.get(redis, post.reply_to)
        if parent is not None and parent.author_id is not None:
            ids.append(parent.author_id)
    if post.source == "sms" and post.mentions:
        found = redis.hmget(keys.HANDLE_INDEX, [handles.key(m) for m in post.mentions])
        ids += [int(x) for x in found if x]
    return [i for i in dict.fromkeys(ids) if i != post.author_id]


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
        direct = _notified(out.redis, post) if post.reply_to is not None or post.mentions else []
        audience = [r for r in audience if r not in direct]
        if direct or audience:
            queued += _queue_post(out, post, direct, audience)
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
