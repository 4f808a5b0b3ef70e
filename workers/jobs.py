"""RQ jobs, enqueued by dotted name (`gateway.store.queues`). Each takes ids only and calls
a domain function with the worker process's Runtime."""

from __future__ import annotations

from gateway.outbox import fanout, forget, sender
from gateway.outbox.outbound import Outbox
from gateway.pipeline import inbox
from gateway.providers import registry
from workers import context


def drain_inbox() -> int:
    """Turn every waiting text into a post or a command; returns how many were handled."""
    runtime = context.current()
    inbox.reclaim_stale(runtime.redis)
    return inbox.drain(runtime)


def send_sms(lane: str, helper: int = 0) -> None:
    """Send the SMS waiting in a lane ("replies" or "fanout"; fanout jobs also take replies);
    `helper` n > 0: as the lane's n-th helper through a large backlog."""
    runtime = context.current()
    sender.run_job(runtime, registry.senders(runtime.config), lane, helper)


def fan_out(post_ids: list[int]) -> int:
    """Tell the people new posts concern, by SMS; returns how many SMS were queued."""
    return fanout.plan(Outbox.of(context.current()), [int(post_id) for post_id in post_ids])


def fan_out_batch(post_id: int, recipients: list[int]) -> int:
    """Queue one batch of a large audience's SMS for a post; returns how many were queued."""
    return fanout.send_batch(Outbox.of(context.current()), post_id, recipients)


def forget_outbound(sub_id: int, post_ids: list[int], handle: str = "") -> int:
    """Erase the stored SMS of a texter who asked to be forgotten; returns how many."""
    return forget.forget_outbound(context.current().redis, sub_id, post_ids, handle)
