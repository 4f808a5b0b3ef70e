"""RQ jobs, enqueued by dotted name. Each takes ids only and calls a domain function."""

from __future__ import annotations

from redis import Redis

from gateway.pipeline import inbox
from workers import context


def drain_inbox() -> int:
    """Turn every waiting text into a post or a command; returns how many were handled."""
    runtime = context.current()
    redis = runtime.redis
    inbox.reclaim_stale(redis)
    rq_queues = context.rq_queues()

    def process(redis: Redis, sids: list[str]) -> list[int]:
        return inbox.process(redis, sids, rq_queues=rq_queues, config=runtime.config)

    return inbox.drain(redis, process_batch=process)


def send_sms(lane: str) -> None:
    """Send the SMS waiting in a lane ("replies" or "fanout"; fanout jobs also take replies)."""
    from redis import Redis
    from rq import get_current_job

    from gateway.outbox import sender
    from gateway.providers import twilio
    from gateway.store import queues

    runtime = context.current()
    job = get_current_job()
    rq_redis = job.connection if job else Redis.from_url(runtime.config.redis_url or "")
    sender.run_job(runtime, twilio.sender_for(runtime.config), queues.make_queues(rq_redis), lane)


def fan_out(post_ids: list[int]) -> int:
    """Tell the people new posts concern, by SMS; returns how many SMS were queued."""
    from gateway.outbox import fanout

    runtime, rq_queues = context.current(), context.rq_queues()
    config = runtime.config
    ids = [int(post_id) for post_id in post_ids]
    return fanout.plan_many(runtime.redis, rq_queues, config.public_url, config.sms_max_segments, ids)


def fan_out_batch(post_id: int, recipients: list[int]) -> int:
    """Queue one batch of a large audience's SMS for a post; returns how many were queued."""
    from gateway.outbox import fanout

    runtime, config = context.current(), context.current().config
    return fanout.send_batch(
        runtime.redis, context.rq_queues(), config.public_url, config.sms_max_segments, post_id, recipients
    )


def forget_outbound(sub_id: int, post_ids: list[int], handle: str = "") -> int:
    """Erase the stored SMS of a texter who asked to be forgotten; returns how many."""
    from gateway.microblog import account

    return account.forget_outbound(context.current().redis, sub_id, post_ids, handle)
