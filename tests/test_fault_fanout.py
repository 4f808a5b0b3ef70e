"""Fan-out under fire: workers SIGKILLed again and again while a post goes to 2,000 followers.

Real `kabootar web` (serving the Twilio simulator) and `kabootar worker` processes; a
worker is killed every KILL_EVERY seconds while the fan-out runs (the one running a job if
there is one: most likely the one sending) and replaced at once, as a supervisor would.
Each follower must get the post exactly once, counted where Twilio would count it: the
simulator's accepted messages per recipient.

A kill can land between marking an SMS "sending" and its request reaching Twilio. Such
an SMS is sent again only once Twilio has stayed silent about it for
`sender.UNCONFIRMED_GRACE_SECONDS` (10 minutes: it may have been accepted). The test
waits for everything else, checks that nothing else is left, and then fast-forwards that
grace by running the reaper with grace 0, as the watchdog would 10 minutes later.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from gateway.outbox import sender
from gateway.providers.simulated import handsets
from gateway.store import keys, queues
from tests.crowd import gather, simulator_settled, start_fleet, wait_for
from tests.live import Processes

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

FOLLOWERS = 2000
SMS_MPS = 100
WORKERS = 2
KILL_EVERY = 2.0
MAX_KILLS = 12
DEADLINE_SECONDS = 200.0  # the fan-out alone takes 2000 / (0.9 × 100) ≈ 22 s


def test_each_follower_gets_the_post_once_while_workers_are_killed(
    redis_server: str, redis, processes: Processes, tmp_path: Path, report
):
    fleet, gateway, runtime = start_fleet(
        redis_server, processes, tmp_path / "var", WORKERS, SMS_MPS=str(SMS_MPS)
    )
    crowd = gather(runtime, FOLLOWERS)
    handsets.reset(runtime.redis)
    rng = random.Random(6)

    start = time.monotonic()
    deadline = start + DEADLINE_SECONDS
    assert gateway.text(crowd.author, "checkpoint on the airport road, take the old road") == 200
    [post] = gateway.wait_for_posts(1)
    intent = f"post:{post['id']}"

    def reached() -> int:
        return sum(1 for n in crowd.received(runtime).values() if n)

    # While the fan-out runs: a worker SIGKILLed every KILL_EVERY s, replaced at once.
    kills = mid_job = 0
    while reached() < FOLLOWERS and kills < MAX_KILLS:
        assert time.monotonic() < deadline, f"fan-out stuck at {reached()} of {FOLLOWERS}"
        time.sleep(KILL_EVERY)
        mid_job += fleet.kill(runtime, rng, busy_first=True)
        kills += 1
    last_kill = time.monotonic()

    # The gateway recovers on its own: dead jobs' RQ jobs are taken over, their claims go
    # back to the lanes. It is done when every SMS is delivered, or all that is left is
    # "sending" with Twilio settled (kills mid-call: the slow path above).
    def settled() -> bool:
        status = crowd.statuses(runtime, intent)
        return set(status) <= {"delivered", "sending"} and simulator_settled(runtime)

    wait_for("the fan-out settled", settled, deadline, processes, every=1.0)
    time.sleep(2.0)  # a callback posted just as the simulator marked its message
    unconfirmed = crowd.statuses(runtime, intent)["sending"]
    if unconfirmed:
        assert sender.reap_unconfirmed(runtime.redis, grace=0) == unconfirmed
        wait_for("the unconfirmed SMS sent", lambda: reached() >= FOLLOWERS, deadline, processes)
    done = wait_for(
        "every SMS delivered",
        lambda: crowd.statuses(runtime, intent) == Counter(delivered=FOLLOWERS),
        deadline,
        processes,
    )

    received = crowd.received(runtime)
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    missing = sum(1 for n in received.values() if n == 0)
    report("injected", f"{kills} worker SIGKILLs every {KILL_EVERY:.0f} s ({mid_job} mid-job), each replaced")
    report(
        "counted",
        f"{FOLLOWERS} recipients, {sum(received.values())} SMS received, {duplicates} duplicates, "
        f"{missing} missing; {unconfirmed} SMS left 'sending' by a kill mid-call, sent after the "
        f"reaper's grace (fast-forwarded); all delivered {done - start:.1f} s after the post, "
        f"{done - last_kill:.1f} s after the last kill",
    )
    assert (missing, duplicates) == (0, 0)
    assert handsets.received_count(runtime.redis, crowd.author) == 0
    # Nothing is left claimed, queued or waiting for a retry.
    for lane in queues.LANES:
        assert runtime.redis.llen(keys.outbound_lane(lane)) == 0
        assert runtime.redis.zcard(keys.outbound_claims(lane)) == 0
        assert runtime.redis.zcard(keys.outbound_delayed(lane)) == 0
