"""The worklist under the inbox and the outbound lanes: claimed batches come back, in order."""

from __future__ import annotations

import pytest
from redis import Redis

from gateway.outbox import sender
from gateway.pipeline import intake
from gateway.store import keys, worklist
from gateway.store.worklist import Worklist

WORKLISTS = {
    "inbox": intake.INBOX,
    "replies lane": sender.lane_of("replies"),
    "fanout lane": sender.lane_of("fanout"),
}


@pytest.fixture(params=list(WORKLISTS), ids=list(WORKLISTS))
def work(request: pytest.FixtureRequest) -> Worklist:
    return WORKLISTS[request.param]


def test_a_dead_jobs_batch_returns_to_the_head_in_its_original_order(redis: Redis, work: Worklist):
    redis.rpush(work.key, "a", "b", "c", "d", "e")
    claim = work.claim(redis, 3)
    assert claim.ids == ["a", "b", "c"]
    assert redis.lrange(work.key, 0, -1) == ["d", "e"]

    returned, claims = work.reclaim_stale(redis, older_than=0)  # its job died

    assert (returned, claims) == (3, 1)
    assert redis.lrange(work.key, 0, -1) == ["a", "b", "c", "d", "e"]
    assert redis.zcard(work.claims_key) == 0 and not redis.exists(work.claim_key_of(claim.token))


def test_two_dead_batches_return_each_in_order(redis: Redis, work: Worklist):
    redis.rpush(work.key, *"abcdef")
    first, second = work.claim(redis, 2), work.claim(redis, 2)
    assert (first.ids, second.ids) == (["a", "b"], ["c", "d"])

    work.give_back(redis, second.token)
    work.give_back(redis, first.token)

    assert redis.lrange(work.key, 0, -1) == list("abcdef")


def test_a_live_claim_is_not_taken_back_and_an_acked_one_is_gone(redis: Redis, work: Worklist):
    redis.rpush(work.key, "a", "b")
    done, live = work.claim(redis, 1), work.claim(redis, 1)
    work.ack(redis, done.token)

    assert work.reclaim_stale(redis, older_than=60) == (0, 0)
    assert work.claimed(redis) == ["b"]
    assert redis.llen(work.key) == 0
    assert not redis.exists(work.claim_key_of(done.token)) and redis.exists(work.claim_key_of(live.token))


def test_what_a_claim_still_holds_goes_back_without_what_it_finished(redis: Redis, work: Worklist):
    redis.rpush(work.key, "a", "b", "c", "x")
    claim = work.claim(redis, 3)
    redis.lrem(work.claim_key_of(claim.token), 1, "b")  # "b" was handled (an SMS begun, say)

    assert work.give_back(redis, claim.token) == 2
    assert redis.lrange(work.key, 0, -1) == ["a", "c", "x"]


def test_an_empty_list_gives_an_empty_claim(redis: Redis, work: Worklist):
    assert work.claim(redis, 10).ids == []
    assert redis.zcard(work.claims_key) == 0


def test_items_due_later_join_the_tail_when_their_time_comes(redis: Redis):
    redis.rpush(keys.INBOX, "waiting")
    redis.zadd(keys.INBOX_DEFERRED, {"soon": 100.0, "sooner": 50.0, "later": 500.0})

    assert worklist.promote_due(redis, keys.INBOX_DEFERRED, keys.INBOX, now=200.0) == 2

    assert redis.lrange(keys.INBOX, 0, -1) == ["waiting", "sooner", "soon"]
    assert redis.zrange(keys.INBOX_DEFERRED, 0, -1) == ["later"]
