"""RQ jobs, enqueued by dotted name. Each takes ids only and calls a domain function."""

from __future__ import annotations

from gateway import inbox
from workers import context


def drain_inbox() -> int:
    """Turn every waiting text into a post; returns how many were handled."""
    redis = context.current().redis
    inbox.reclaim_stale(redis)
    return inbox.drain(redis)
