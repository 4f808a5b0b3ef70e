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
from rq import Queue, Retry

from gateway import segments
from gateway.microblog import follows, posts
from gateway.microblog.text import fold
from gateway.outbox import outbound
from gateway.store import keys

FANOUT_BATCH = 500
FAN_OUT_JOB = "workers.jobs.fan_out"
FAN_OUT_BATCH_JOB = "workers.jobs.fan_out_batch"
JOB_TIMEOUT = 600
_RETRY = Retry(max=5, interval=[1, 5, 15, 60, 300])
FAILURE_TTL = 7 * 24 * 3600


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
        rq_queues[keys.QUEUE_REPLIES].enqueue(
            FAN_OUT_JOB,
            list(post_ids),
            description=f"fan out {len(post_ids)} posts",
            job_timeout=JOB_TIMEOUT,
            result_ttl=0,
            failure_ttl=FAILURE_TTL,
            retry=_RETRY,
        )


def _notified(redis: Redis, post: posts.Post) -> list[int]:
    """The replied-to author and, for texted posts, the mentioned texters; never the author."""
    ids: list[int] = []
    if post.reply_to is not None:
        parent = posts.get(redis, post.reply_to)
        if parent is not None and parent.author_id is not None:
            ids.append(parent.author_id)
    if post.source == "sms" and post.mentions:
        found = redis.hmget(keys.HANDLE_INDEX, [fold(m) for m in post.mentions])
        ids += [int(x) for x in found if x]
    return [i for i in dict.fromkeys(ids) if i != post.author_id]


def plan(
    redis: Redis, rq_queues: Mapping[str, Queue], public_url: str, max_segments: int, post_id: int
) -> int:
    """Queue a post's SMS: direct ones now, followers now or in batch jobs. Returns how many queued."""
    return plan_many(redis, rq_queues, public_url, max_segments, [post_id])


def plan_many(
    redis: Redis, rq_queues: Mapping[str, Queue], public_url: str, max_segments: int, post_ids: Sequence[int]
) -> int:
    """`plan` for a drain batch's posts, reading them and their audiences in two round
    trips (most posts in a busy hour have no one to tell, and cost nothing more)."""
    found = posts.get_many(redis, post_ids)  # deleted or hidden before their turn: left out
    audiences = follows.audiences(
        redis, [(p.author_id, p.tags) if p.source == "sms" else None for p in found]
    )
    queued = 0
    for post, audience in zip(found, audiences, strict=True):
        direct = _notified(redis, post) if post.reply_to is not None or post.mentions else []
        audience = [r for r in audience if r not in direct]
        if direct or audience:
            queued += _queue_post(redis, rq_queues, public_url, max_segments, post, direct, audience)
    return queued


def _queue_post(
    redis: Redis,
    rq_queues: Mapping[str, Queue],
    public_url: str,
    max_segments: int,
    post: posts.Post,
    direct: list[int],
    audience: list[int],
) -> int:
    sms = post_sms(post, public_url, max_segments)
    intent = f"post:{post.id}"
    queued = outbound.queue(redis, dict(rq_queues), [(r, sms) for r in direct], intent=intent, kind="direct")
    if len(audience) <= FANOUT_BATCH:
        return queued + outbound.queue(
            redis, dict(rq_queues), [(r, sms) for r in audience], intent=intent, kind="fanout"
        )
    rq_queues[keys.QUEUE_FANOUT].enqueue_many(
        [
            Queue.prepare_data(
                FAN_OUT_BATCH_JOB,
                (post.id, audience[start : start + FANOUT_BATCH]),
                description=f"fan out post {post.id} ({start}+)",
                timeout=JOB_TIMEOUT,
                result_ttl=0,
                failure_ttl=FAILURE_TTL,
                retry=_RETRY,
            )
            for start in range(0, len(audience), FANOUT_BATCH)
        ]
    )
    return queued


def send_batch(
    redis: Redis,
    rq_queues: Mapping[str, Queue],
    public_url: str,
    max_segments: int,
    post_id: int,
    recipients: Sequence[int],
) -> int:
    """Queue one batch of a large audience's SMS. Returns how many were queued."""
    post = posts.get(redis, post_id)
    if post is None:
        return 0
    sms = post_sms(post, public_url, max_segments)
    messages = [(int(r), sms) for r in recipients]
    return outbound.queue(redis, dict(rq_queues), messages, intent=f"post:{post.id}", kind="fanout")
