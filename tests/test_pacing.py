"""The shared send rate: SMS_MPS segments per second across all workers, counted at "Twilio"."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from gateway.outbox import pacing, sender
from gateway.providers.records import SendResult
from gateway.providers.twilio.api import TwilioSender
from gateway.providers.twilio.simulator import store as simulator
from gateway.store import keys, queues
from tests.burst import BurstWorker
from tests.simulated import Live, running


def _busiest_second(arrivals: list[tuple[float, int]]) -> int:
    """The most segments that arrived within any one-second window [t, t + 1)."""
    return max(sum(n for u, n in arrivals if t <= u < t + 1) for t, _ in arrivals)


def _drain_in_threads(live: Live, workers: int) -> None:
    """Send everything with several concurrent senders, as several worker processes would."""
    errors: list[BaseException] = []

    def work() -> None:
        own = TwilioSender(live.config)
        try:
            while True:
                out = sender.drain(live.runtime, {"twilio": own}, queues.LANES, budget=5.0)
                if not out.more and out.next_due is None:
                    return
        except BaseException as e:  # re-raised in the test thread below
            errors.append(e)
        finally:
            own.close()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def test_fifty_sms_at_five_per_second_never_exceed_five_in_any_second(redis_server: str, tmp_path: Path):
    with running(redis_server, tmp_path, SMS_MPS="5") as live:
        subs = [live.subscriber(f"+98912{n:07d}") for n in range(50)]
        assert live.queue([(s, "one segment") for s in subs], intent="post:1", kind="fanout") == 50

        _drain_in_threads(live, workers=2)

        arrivals = sorted(simulator.arrivals(live.redis))
        assert len(arrivals) == 50
        assert arrivals[-1][0] - arrivals[0][0] >= 9.0
        assert _busiest_second(arrivals) <= 5


def test_long_sms_spend_their_segments_from_the_budget(redis_server: str, tmp_path: Path):
    with running(redis_server, tmp_path, SMS_MPS="4") as live:
        subs = [live.subscriber(f"+98912{n:07d}") for n in range(4)]
        live.queue([(s, "x" * 300) for s in subs], intent="long", kind="fanout")  # 2 segments each

        live.send_all()

        arrivals = sorted(simulator.arrivals(live.redis))
        assert [n for _, n in arrivals] == [2, 2, 2, 2]
        assert arrivals[-1][0] - arrivals[0][0] >= 1.4  # 8 segments at 4/s: 3 gaps of 0.5 s
        assert _busiest_second(arrivals) <= 4


def test_a_slot_is_granted_then_the_next_asks_to_wait(redis: Redis):
    assert pacing.reserve(redis, [1], rate=2, horizon=0, provider="twilio").granted == 1
    refused = pacing.reserve(redis, [1], rate=2, horizon=0, provider="twilio")
    assert refused.granted == 0 and 0.4 < refused.wait <= 1 / 2
    assert (
        pacing.reserve(redis, [1], rate=2, horizon=0, provider="twilio").granted == 0
    )  # a refusal takes nothing


@pytest.mark.parametrize("rate", [0, -1])
def test_zero_or_negative_rate_means_unpaced(redis: Redis, rate: float):
    assert all(
        pacing.reserve(redis, [10], rate, horizon=0, provider="twilio").granted == 1 for _ in range(100)
    )


def test_a_send_job_hands_over_to_a_successor_and_frees_its_slot(
    redis_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(sender, "JOB_BUDGET_SECONDS", 1.0)
    jobs: list[str] = []
    run_job = sender.run_job

    def counted(*args: Any) -> None:
        jobs.append(args[-1])
        run_job(*args)

    monkeypatch.setattr(sender, "run_job", counted)
    with running(redis_server, tmp_path, SMS_MPS="2") as live:
        subs = [live.subscriber(f"+98912{n:07d}") for n in range(5)]
        live.queue([(s, "hi") for s in subs], intent="post:2", kind="fanout")
        worker = BurstWorker([live.queues[q] for q in queues.ALL], connection=live.rq_redis)

        worker.work(burst=True, logging_level="WARNING")

        assert len(simulator.arrivals(live.redis)) == 5
        assert len(jobs) >= 3  # each job gave the worker back after its budget
        assert not live.redis.exists(keys.outbound_drain_scheduled("fanout"))


def test_a_reserved_batch_is_spaced_at_the_rate_and_the_next_one_queues_behind_it(redis: Redis):
    spacing = 1 / 10
    first = pacing.reserve(redis, [1, 2, 1], rate=10, provider="twilio")
    assert first.granted == 3 and first.wait == 0
    gaps = [b - a for a, b in zip(first.at, first.at[1:], strict=False)]
    assert gaps == pytest.approx([spacing, 2 * spacing], abs=1e-6)  # a long SMS costs two slots

    second = pacing.reserve(redis, [1], rate=10, provider="twilio")
    # The next slot comes after the first batch's four segments, never among them.
    assert second.at[0] - first.at[0] == pytest.approx(4 * spacing, abs=0.01)


def test_only_slots_within_the_horizon_are_granted_and_a_refusal_takes_nothing(redis: Redis):
    spacing = 1 / 4  # 0.25 s
    got = pacing.reserve(redis, [1] * 10, rate=4, horizon=0.9, provider="twilio")
    assert got.granted == 4  # slots at 0, 0.25, 0.5 and 0.75 s; the fifth would start after 0.9 s

    refused = pacing.reserve(redis, [1], rate=4, horizon=0.5, provider="twilio")
    assert refused.granted == 0 and refused.wait == pytest.approx(4 * spacing, abs=0.02)
    again = pacing.reserve(redis, [1], rate=4, horizon=5.0, provider="twilio")
    assert again.wait == pytest.approx(4 * spacing, abs=0.02)  # the refusal moved nothing on


def test_the_guard_counts_a_call_from_its_start_until_a_second_after_its_answer(redis: Redis):
    assert [pacing.admit(redis, f"call-{n}", 1, rate=3, provider="twilio") for n in range(3)] == [0, 0, 0]
    assert (
        pacing.admit(redis, "call-3", 1, rate=3, provider="twilio") > 0
    )  # three in flight: the window is full
    pacing.release(
        redis, "call-0", 1, rate=3, made=False, provider="twilio"
    )  # never went out: it leaves at once
    assert pacing.admit(redis, "call-3", 1, rate=3, provider="twilio") == 0
    for n in (1, 2, 3):
        pacing.release(redis, f"call-{n}", 1, rate=3, provider="twilio")

    wait = pacing.admit(redis, "call-4", 1, rate=3, provider="twilio")
    assert 0.9 < wait <= 1.0  # answered calls count for one more second
    time.sleep(wait)
    assert pacing.admit(redis, "call-4", 1, rate=3, provider="twilio") == 0
    assert pacing.admit(redis, "long", 5, rate=3, provider="twilio") > 0
    pacing.release(redis, "call-4", 1, rate=3, made=False, provider="twilio")
    assert (
        pacing.admit(redis, "long", 5, rate=3, provider="twilio") == 0
    )  # alone, a message longer than the rate goes


class LateOnTheWay:
    """A sender whose requests are held up on their way to Twilio now and then (a busy
    CPU, the network): the slot was kept, the arrival is late."""

    def __init__(self, real: TwilioSender, seed: int) -> None:
        self.real, self.rng = real, random.Random(seed)

    def send(self, to: str, body: str, message_id: str) -> SendResult:
        if self.rng.random() < 0.3:
            time.sleep(self.rng.uniform(0.1, 0.4))
        return self.real.send(to, body, message_id)


def test_calls_held_up_on_their_way_never_bunch_past_the_rate_where_twilio_counts(
    redis_server: str, tmp_path: Path
):
    with running(redis_server, tmp_path, SMS_MPS="5") as live:
        subs = [live.subscriber(f"+98912{n:07d}") for n in range(40)]
        live.queue([(s, "one segment") for s in subs], intent="post:3", kind="fanout")

        late = LateOnTheWay(live.sender, seed=6)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = sender.drain(live.runtime, {"twilio": late}, queues.LANES, budget=5.0)
            if not out.more and out.next_due is None:
                break

        arrivals = sorted(simulator.arrivals(live.redis))
        assert len(arrivals) == 40
        assert _busiest_second(arrivals) <= 5
