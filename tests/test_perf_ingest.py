"""Webhooks that arrive together are stored together, and still only acknowledged once durable.

A durable Redis (append-only file fsynced on every write, as `make run` starts it) and
`kabootar web`, no worker, so every acknowledged text must still be in the inbox. Many
threads send signed webhooks at once, the way Twilio does in a crisis.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from gateway.store import keys
from tests.crashes import Answer, Stack, Texter, ready, running_stack, send_all, texts, wait_until
from tests.live import Processes

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

SENDERS = 32  # concurrent webhooks, as the bench's wrk -c32


@pytest.fixture
def stack(processes: Processes, tmp_path: Path) -> Iterator[Stack]:
    # No worker, so /readyz never says ready: Redis first, then wait for /healthz.
    with running_stack(processes, tmp_path, workers=0, redis_first=False) as s:
        s.start_redis()
        wait_until(lambda: ready(s, "/healthz"), 60, "the web process did not start", processes)
        yield s


def _stored(redis: Redis) -> set[str]:
    """MessageSids of the texts in the inbox, stored with their text."""
    sids = set(redis.lrange(keys.INBOX, 0, -1))
    pipe = redis.pipeline(transaction=False)
    for sid in sids:
        pipe.exists(keys.inbound_message(sid))
    return {sid for sid, present in zip(sids, pipe.execute(), strict=True) if present}


def test_texts_acknowledged_together_survive_redis_sigkilled_right_after_the_200(stack: Stack, report):
    """Redis is SIGKILLed the moment the 100th text is answered 200, while 31 others are in
    flight: after a restart from its files, every text answered 200 is in the inbox."""
    to_send = texts(3_000, senders=SENDERS, tag="G")
    acknowledged: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def send(first: int, answers: list[Answer]) -> None:
        texter = Texter(stack.config)
        for i in range(first, len(to_send), SENDERS):
            answer = texter.send(to_send[i])
            answers.append(answer)
            if answer.status != 200:
                break  # Redis is gone: this texter's provider would retry later
            with lock:
                acknowledged.append(answer.sid)
                if len(acknowledged) == 100 and not killed.is_set():
                    stack.kill_redis()  # at once, from the thread that just got the 200
                    killed.set()
        texter.close()

    answers: list[list[Answer]] = [[] for _ in range(SENDERS)]
    threads = [threading.Thread(target=send, args=(k, answers[k])) for k in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert killed.is_set() and not any(t.is_alive() for t in threads)

    stack.start_redis()  # same port, same append-only file
    stored = _stored(stack.client())
    statuses = [a.status for mine in answers for a in mine]
    lost = set(acknowledged) - stored
    report(
        "counted",
        f"{len(statuses)} webhooks from {SENDERS} senders at once, Redis SIGKILLed at the 100th 200: "
        f"{len(acknowledged)} answered 200, {statuses.count(503)} 503, {len(stored)} in the inbox "
        f"after restart, {len(lost)} acknowledged but lost",
    )
    assert not lost
    assert set(statuses) <= {200, 503}


def test_webhooks_arriving_together_share_redis_round_trips(stack: Stack, report):
    """32 senders at once: Redis answers them in fewer writes than texts (a batch's answers
    go back in one), so they share its fsyncs; every text is stored once, answered 200."""
    redis = stack.client()
    before = int(redis.info("stats")["total_writes_processed"])
    to_send = texts(2_000, senders=SENDERS * 4, tag="B")
    answers = send_all(stack.config, to_send, SENDERS)
    writes = int(redis.info("stats")["total_writes_processed"]) - before
    wait_until(lambda: len(_stored(redis)) == len(to_send), 10, "texts missing from the inbox")
    per_text = writes / len(to_send)
    report("counted", f"{len(to_send)} webhooks from {SENDERS} senders: {per_text:.2f} Redis writes per text")
    assert all(a.status == 200 for a in answers)
    assert per_text < 0.8  # one write per text when each webhook had its own round trip
