"""Twilio in trouble: a minute of 429s and 500s, then recovery. Every SMS goes out once,
and the retries never push the request rate past SMS_MPS.

The rate is counted the way Twilio would count it at its edge: every API request that
arrives, refused ones included (`simstore.requests_log`), in every one-second window.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue

from gateway.config import SIMULATOR_ACCOUNT_SID, SIMULATOR_FROM, Config
from gateway.providers.simulated import handsets
from gateway.providers.twilio.simulator import store as simstore
from gateway.store import keys, queues
from tests.crowd import gather, start_fleet, wait_for
from tests.live import Processes
from tests.simulated import dev_session

FOLLOWERS = 120
SMS_MPS = 10
STORM_SECONDS = 60.0
# After the storm: the longest retry wait (sender.RETRY_CAP_SECONDS, 30 s) plus sending
# them all at the paced rate (120 / 9 per s ≈ 13 s), with room for a loaded machine.
RECOVERY_BOUND_SECONDS = 75.0
URL = f"/dev/twilio/2010-04-01/Accounts/{SIMULATOR_ACCOUNT_SID}/Messages.json"


def busiest_second(times: list[float]) -> tuple[int, float]:
    """The most requests that arrived within any one-second window [t, t + 1), and its t."""
    times = sorted(times)
    best, at, j = 0, 0.0, 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + 1.0:
            j += 1
        if j - i > best:
            best, at = j - i, t
    return best, at


def tightest_span(times: list[float], n: int) -> float:
    """The shortest time in which `n` consecutive requests arrived (over 1 s: never n in a second)."""
    times = sorted(times)
    return min(times[i + n - 1] - times[i] for i in range(len(times) - n + 1))


def test_an_outage_fails_every_request_with_its_statuses_in_turn_until_it_ends(
    client: FlaskClient, redis: Redis, config: Config
):
    form = {"To": "+989121234567", "From": SIMULATOR_FROM, "Body": "salaam"}
    auth = (config.twilio_account_sid, config.twilio_auth_token)
    dev = dev_session(client)
    outage = {"seconds": "0.5", "statuses": "429,500,503", **dev}
    answered = client.post("/dev/twilio/control/outage", data=outage)
    assert answered.status_code == 200

    statuses = [client.post(URL, data=form, auth=auth) for _ in range(4)]
    assert [(r.status_code, r.get_json()["code"]) for r in statuses] == [
        (429, 20429), (500, 20500), (503, 20500), (429, 20429),
    ]  # fmt: skip
    assert client.post(URL, data=form).status_code == 401  # not ours: refused, but not by the outage
    time.sleep(0.6)
    assert client.post(URL, data=form, auth=auth).status_code == 201

    log = simstore.requests_log(redis)
    assert [status for _, _, status in log] == [429, 500, 503, 429, 401, 0]
    assert simstore.requests_received(redis) == 6
    assert handsets.received_count(redis, "+989121234567") == 1
    assert client.post("/dev/twilio/control/outage", data={"statuses": "200", **dev}).status_code == 400


@pytest.mark.fault
@pytest.mark.e2e
def test_a_minute_of_429s_and_500s_delays_sms_but_each_is_sent_once_within_the_rate(
    redis_server: str, redis, processes: Processes, tmp_path: Path, report
):
    fleet, gateway, runtime = start_fleet(redis_server, processes, tmp_path / "var", 2, SMS_MPS=str(SMS_MPS))
    crowd = gather(runtime, FOLLOWERS)
    handsets.reset(runtime.redis)

    storm_end = simstore.set_outage(runtime.redis, STORM_SECONDS, (429, 500))
    started = time.time()
    assert gateway.text(crowd.author, "the bakery on Enghelab street is open, bread for all") == 200
    [post] = gateway.wait_for_posts(1)
    intent = f"post:{post['id']}"
    deadline = time.monotonic() + (storm_end - time.time()) + RECOVERY_BOUND_SECONDS

    def all_reached() -> bool:
        return all(crowd.received(runtime).values())

    wait_for("every follower reached after the storm", all_reached, deadline, processes, every=1.0)
    time.sleep(2.0)  # anything sent twice would arrive now
    wait_for(
        "every SMS delivered",
        lambda: crowd.statuses(runtime, intent) == Counter(delivered=FOLLOWERS),
        deadline,
        processes,
    )

    received = crowd.received(runtime)
    log = simstore.requests_log(runtime.redis)
    refused = Counter(status for _, _, status in log if status)
    accepted = sorted(t for t, _, status in log if not status)
    busiest, busiest_at = busiest_second([t for t, _, _ in log])
    span = tightest_span([t for t, _, _ in log], SMS_MPS + 1)
    segments = {n for _, n, _ in log}
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    first_try = min(t for t, _, _ in log)
    report("injected", f"every API request answered 429 or 500 in turn for {STORM_SECONDS:.0f} s, then none")
    report(
        "counted",
        f"{FOLLOWERS} SMS intended, {len(log)} API requests ({refused[429]} × 429, {refused[500]} × 500), "
        f"{sum(received.values())} SMS delivered, {duplicates} duplicates; busiest second {busiest} "
        f"requests (SMS_MPS {SMS_MPS}, all requests counted, refused ones included; {SMS_MPS + 1} "
        f"requests never within less than {span:.3f} s); first SMS "
        f"accepted {accepted[0] - storm_end:.1f} s and the last {accepted[-1] - storm_end:.1f} s after "
        f"the storm ({first_try - started:.1f} s from the text to the first request)",
    )
    assert min(received.values()) == max(received.values()) == 1
    assert len(accepted) == FOLLOWERS
    assert refused[429] > 0 and refused[500] > 0 and set(refused) == {429, 500}
    assert accepted[0] >= storm_end
    assert segments == {1}  # so requests and segments count alike
    assert busiest <= SMS_MPS, f"{busiest} requests in the second from {busiest_at - first_try:.2f} s"
    # The storm cost no RQ job its retries: nothing failed for an operator to retry.
    rq_redis = Redis.from_url(redis_server)
    try:
        assert [Queue(q, connection=rq_redis).failed_job_registry.count for q in queues.ALL] == [0, 0, 0]
    finally:
        rq_redis.close()
    assert int(runtime.redis.hget(keys.OUTBOUND_STATS, "retried") or 0) == sum(refused.values())
