"""Fan-out and first-time texters at crisis volume (issue 14, performance): what the faster
paths must keep doing. Real `kabootar web` (serving the Twilio simulator) and `kabootar
worker` processes against the tests' Redis; texts go in as signed webhooks, SMS are
counted where Twilio would count them (the simulator's accepted messages per phone).
Speed itself is measured in `make bench`, not here.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.microblog import subscribers
from gateway.providers.simulated import handsets
from gateway.store import keys
from tests.crowd import gather, start_fleet, wait_for
from tests.live import Processes

pytestmark = [pytest.mark.e2e]

NEW_TEXTERS = 300
FOLLOWERS = 1500
DEADLINE_SECONDS = 120.0


def test_a_burst_of_first_time_texters_each_get_one_welcome_and_their_posts_appear(
    redis_server: str, processes: Processes, tmp_path: Path
):
    _, gateway, runtime = start_fleet(redis_server, processes, tmp_path / "var", 2, SMS_MPS="0")
    numbers = [f"+98935{n:07d}" for n in range(NEW_TEXTERS)]
    deadline = time.monotonic() + DEADLINE_SECONDS

    # All at once, as a crowd texting for the first time: drain batches full of new numbers.
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda n: gateway.text(n, f"first text from {n[-4:]}"), numbers))
    assert answers == [200] * NEW_TEXTERS

    def posts() -> int:
        return int(runtime.redis.zcard(keys.TIMELINE_ALL))

    wait_for("every text posted", lambda: posts() >= NEW_TEXTERS, deadline, processes)

    def welcomes() -> Counter[str]:
        return Counter(
            {n: sum("Welcome to Kabootar" in m["body"] for m in handsets.inbox_for(runtime.redis, n))
             for n in numbers}
        )  # fmt: skip

    wait_for("every texter welcomed", lambda: min(welcomes().values()) >= 1, deadline, processes)
    time.sleep(1.0)  # a second welcome, were one queued, would be on its way by now
    assert set(welcomes().values()) == {1}
    # Each has a handle of their own, named in their welcome; no post is anyone else's.
    ids = subscribers.find_ids(runtime.redis, [runtime.vault.lookup_key(n) for n in numbers])
    assert None not in ids and len(set(ids)) == NEW_TEXTERS
    handles = subscribers.handles_of(runtime.redis, [i for i in ids if i is not None])
    assert len(set(handles.values())) == NEW_TEXTERS
    for number, sub_id in zip(numbers[:20], ids[:20], strict=True):
        [welcome] = [m["body"] for m in handsets.inbox_for(runtime.redis, number)]
        assert f"@{handles[sub_id or 0]}" in welcome
    assert posts() == NEW_TEXTERS


def test_a_large_unpaced_fanout_is_sent_by_both_workers_and_reaches_each_follower_once(
    redis_server: str, processes: Processes, tmp_path: Path
):
    _, gateway, runtime = start_fleet(redis_server, processes, tmp_path / "var", 2, SMS_MPS="0")
    crowd = gather(runtime, FOLLOWERS)
    handsets.reset(runtime.redis)
    deadline = time.monotonic() + DEADLINE_SECONDS
    helper_slot = keys.outbound_drain_scheduled("fanout", 1)

    assert gateway.text(crowd.author, "the north road is open again") == 200
    helped = False
    while sum(1 for n in crowd.received(runtime).values() if n) < FOLLOWERS:
        assert time.monotonic() < deadline, "the fan-out did not finish in time"
        # The other worker is asked to help: the lane's helper slot is taken while it sends.
        helped = helped or bool(runtime.redis.exists(helper_slot))
        time.sleep(0.05)

    time.sleep(1.0)  # a duplicate, were one sent, would have arrived by now
    received = crowd.received(runtime)
    assert helped, "only one worker sent the fan-out"
    assert set(received.values()) == {1}
    assert handsets.received_count(runtime.redis, crowd.author) == 0
