"""The outbound sender against the Twilio simulator: once per intent, retried, never twice."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import http.server
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import rq

from gateway.outbox import outbound, sender
from gateway.providers.records import OPTED_OUT, SendError, SendResult
from gateway.providers.simulated import handsets
from gateway.providers.twilio import api as twilio
from gateway.providers.twilio.api import TwilioSender
from gateway.providers.twilio.simulator import store as simulator
from gateway.store import keys, queues
from tests.burst import BurstWorker
from tests.privacy import leaks, redis_dump
from tests.simulated import Live, running, wait_until

ALI, SARA, REZA = "+989121234567", "+989351112233", "+14155550123"


@pytest.fixture
def live(redis_server: str, tmp_path: Path) -> Iterator[Live]:
    with running(redis_server, tmp_path) as gateway:
        yield gateway


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sender, "RETRY_BASE_SECONDS", 0.2)


def run_worker(live: Live) -> None:
    """Run the queued jobs with a real RQ worker, as a worker process does."""
    worker = BurstWorker([live.queues[q] for q in queues.ALL], connection=live.rq_redis)
    worker.work(burst=True, logging_level="WARNING")


def status(live: Live, intent: str, sub: int) -> str | None:
    return outbound.message_status(live.redis, outbound.message_id(intent, sub))


def test_an_answer_reaches_the_phone_and_is_delivered(live: Live):
    ali = live.subscriber(ALI)
    assert live.queue([(ali, "Welcome, @quiet-falcon-27! Text HELP.")], intent="welcome") == 1

    live.send_all()

    wait_until(lambda: status(live, "welcome", ali) == "delivered")
    [sms] = handsets.inbox_for(live.redis, ALI)
    assert sms["body"] == "Welcome, @quiet-falcon-27! Text HELP."
    assert sms["status"] == "delivered"
    stored = outbound.get(live.redis, outbound.message_id("welcome", ali))
    assert stored is not None and stored.provider_id == sms["sid"] and stored.attempts == 1


def test_sms_give_way_to_a_backlog_of_texts_but_still_leave(live: Live, monkeypatch: pytest.MonkeyPatch):
    """While more than INBOX_BACKLOG texts wait to become posts, a send job waits before each
    batch (the posts need the cores), for at most GIVE_WAY_SECONDS: then the batch goes."""
    monkeypatch.setattr(sender, "GIVE_WAY_SECONDS", 1.5)
    ali = live.subscriber(ALI)
    live.redis.rpush(keys.INBOX, *(f"SMwaiting{i}" for i in range(sender.INBOX_BACKLOG + 1)))
    live.queue([(ali, "Welcome, @quiet-falcon-27!")], intent="welcome")
    started = time.monotonic()
    sender.drain(live.runtime, {"twilio": live.sender}, queues.LANES, budget=5)
    waited = time.monotonic() - started
    assert handsets.received_count(live.redis, ALI) == 1  # sent all the same
    assert 1.5 <= waited < 4, waited

    live.redis.ltrim(keys.INBOX, 0, sender.INBOX_BACKLOG - 1)  # at the backlog, not over it
    live.queue([(ali, "@sara: hello")], intent="post:1")
    started = time.monotonic()
    sender.drain(live.runtime, {"twilio": live.sender}, queues.LANES, budget=5)
    assert handsets.received_count(live.redis, ALI) == 2
    assert time.monotonic() - started < 1.0


def test_queuing_the_same_intent_twice_sends_one_sms(live: Live):
    ali = live.subscriber(ALI)
    assert live.queue([(ali, "first")], intent="post:7:follow") == 1
    assert live.queue([(ali, "again")], intent="post:7:follow") == 0
    live.send_all()
    assert live.queue([(ali, "after sending")], intent="post:7:follow") == 0
    live.send_all()

    assert [m["body"] for m in handsets.inbox_for(live.redis, ALI)] == ["first"]


def test_stopped_and_paused_recipients(live: Live):
    ali, sara = live.subscriber(ALI), live.subscriber(SARA)
    outbound.mark_stopped(live.redis, ali, True)
    live.redis.hset(keys.subscriber(sara), "paused", "1")

    assert live.queue([(ali, "dm"), (sara, "dm")], intent="dm", kind="direct") == 0
    assert live.queue([(ali, "post"), (sara, "post")], intent="post", kind="fanout") == 0
    # A paused texter still gets answers to their own commands; HELP reaches even a stopped one.
    assert live.queue([(ali, "ok"), (sara, "ok")], intent="answer", kind="answer") == 1
    assert live.queue([(ali, "HELP text")], intent="help", kind="answer", even_if_stopped=True) == 1
    live.send_all()

    assert [m["body"] for m in handsets.inbox_for(live.redis, ALI)] == ["HELP text"]
    assert [m["body"] for m in handsets.inbox_for(live.redis, SARA)] == ["ok"]

    outbound.mark_stopped(live.redis, ali, False)
    assert live.queue([(ali, "back")], intent="dm2", kind="direct") == 1


def test_stop_between_queuing_and_sending_drops_the_sms(live: Live):
    ali = live.subscriber(ALI)
    live.queue([(ali, "news")], intent="post:1", kind="fanout")
    outbound.mark_stopped(live.redis, ali, True)
    live.send_all()

    assert handsets.received_count(live.redis, ALI) == 0
    assert status(live, "post:1", ali) == "cancelled"


def test_answers_go_before_bulk_fanout(live: Live):
    subs = [live.subscriber(f"+98912000{n:04d}") for n in range(20)]
    live.queue([(s, "a followed post") for s in subs], intent="post:1", kind="fanout")
    live.queue([(subs[-1], "your answer")], intent="answer:1", kind="answer")

    live.send_all()

    first = min(
        (m for n in range(20) for m in handsets.inbox_for(live.redis, f"+98912000{n:04d}")),
        key=lambda m: m["time"],
    )
    assert first["body"] == "your answer"


def test_a_large_audience_is_queued_cheaply_as_one_job(live: Live):
    pipe = live.redis.pipeline(transaction=False)
    for sub in range(1, 10_001):
        pipe.hset(keys.subscriber(sub), mapping={"handle": f"h{sub}", "phone": "ciphertext"})
    pipe.execute()

    began = time.monotonic()
    queued = live.queue([(sub, "new post") for sub in range(1, 10_001)], intent="post:9", kind="fanout")
    elapsed = time.monotonic() - began

    assert queued == 10_000
    assert elapsed < 3.0
    assert live.redis.llen(keys.outbound_lane("fanout")) == 10_000
    assert rq.Queue(queues.FANOUT, connection=live.rq_redis).count == 1


@pytest.mark.parametrize("http_status", [429, 500])
def test_throttling_and_server_errors_are_retried_until_each_sms_is_sent_once(
    live: Live, fast_retries: None, http_status: int
):
    numbers = [f"+98912555{n:04d}" for n in range(6)]
    subs = [live.subscriber(n) for n in numbers]
    live.control("fail", count=8, status=http_status)

    live.queue([(s, "hello") for s in subs], intent="burst", kind="fanout")
    live.send_all()

    assert [handsets.received_count(live.redis, n) for n in numbers] == [1] * 6
    assert simulator.requests_received(live.redis) == 14
    assert all(status(live, "burst", s) in ("sent", "delivered") for s in subs)
    assert int(live.redis.hget(keys.OUTBOUND_STATS, "retried") or 0) == 8


def test_retries_stop_once_the_retry_window_has_passed_with_the_code(
    live: Live, fast_retries: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(sender, "RETRY_WINDOW_SECONDS", 1.0)
    ali = live.subscriber(ALI)
    live.control("fail", count=1000, status=500)
    live.queue([(ali, "hello")], intent="doomed")
    live.send_all()

    stored = outbound.get(live.redis, outbound.message_id("doomed", ali))
    assert stored is not None and (stored.status, stored.error) == ("failed", "20500")
    assert simulator.requests_received(live.redis) == stored.attempts >= 3
    assert handsets.received_count(live.redis, ALI) == 0


def test_an_outage_longer_than_eight_tries_loses_nothing(live: Live, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sender, "RETRY_BASE_SECONDS", 0.02)
    monkeypatch.setattr(sender, "RETRY_CAP_SECONDS", 0.1)
    ali = live.subscriber(ALI)
    live.control("fail", count=3 * sender.MAX_ATTEMPTS, status=429)
    live.queue([(ali, "still coming")], intent="outage")
    live.send_all()

    stored = outbound.get(live.redis, outbound.message_id("outage", ali))
    assert stored is not None and stored.attempts == 3 * sender.MAX_ATTEMPTS + 1
    assert handsets.received_count(live.redis, ALI) == 1


def test_refused_tries_do_not_count_against_an_unconfirmed_sms(live: Live):
    ali = live.subscriber(ALI)
    mid = outbound.message_id("refused", ali)
    live.queue([(ali, "hi")], intent="refused")
    # Twilio refused it many times, then a worker died during the next call.
    live.redis.hset(keys.outbound_message(mid), mapping={"status": "sending", "attempts": 20, "refused": 19})
    live.redis.zadd(keys.OUTBOUND_SENDING, {mid: 0})

    assert sender.reap_unconfirmed(live.redis, grace=0) == 1
    assert outbound.message_status(live.redis, mid) == "queued"


@pytest.mark.parametrize("code", [21211, 21614, 21612, 21408])
def test_permanent_errors_are_not_retried_and_keep_their_code(live: Live, code: int):
    ali = live.subscriber(ALI)
    live.control("fail", count=1, code=code)
    live.queue([(ali, "hello")], intent="bad")
    live.send_all()

    stored = outbound.get(live.redis, outbound.message_id("bad", ali))
    assert stored is not None and (stored.status, stored.error) == ("failed", str(code))
    assert simulator.requests_received(live.redis) == 1
    assert live.redis.hget(keys.OUTBOUND_STATS, f"failed:{code}") == "1"


def test_twilio_21610_marks_the_subscriber_stopped(live: Live):
    ali = live.subscriber(ALI)
    live.control("fail", count=1, code=21610)
    live.queue([(ali, "hello")], intent="unsubscribed")
    live.send_all()

    assert live.redis.hget(keys.subscriber(ali), "stopped") == "1"
    assert status(live, "unsubscribed", ali) == "failed"
    assert live.queue([(ali, "more")], intent="next", kind="direct") == 0


def test_delivery_errors_reported_later_are_recorded(live: Live):
    ali = live.subscriber(ALI)
    live.control("fail", count=1, code=30006)
    live.queue([(ali, "to a landline")], intent="landline")
    live.send_all()

    wait_until(lambda: status(live, "landline", ali) == "undelivered")
    stored = outbound.get(live.redis, outbound.message_id("landline", ali))
    assert stored is not None and stored.error == "30006"


class WorkerKilled(BaseException):
    """A worker dying mid-job: not an error the sender could catch."""


class DiesAfterTwilioAccepts:
    def __init__(self, real: TwilioSender) -> None:
        self.real = real

    def send(self, to: str, body: str, message_id: str) -> SendResult:
        self.real.send(to, body, message_id)
        raise WorkerKilled


class DiesBeforeCallingTwilio:
    def send(self, to: str, body: str, message_id: str) -> SendResult:
        raise WorkerKilled


def test_a_job_killed_after_twilio_accepted_is_rerun_without_a_second_api_call(live: Live):
    ali = live.subscriber(ALI)
    mid = outbound.message_id("reply:5", ali)
    live.queue([(ali, "@sara replied: hi")], intent="reply:5", kind="direct")
    with pytest.raises(WorkerKilled):
        sender.drain(live.runtime, {"twilio": DiesAfterTwilioAccepts(live.sender)}, queues.LANES)
    assert simulator.requests_received(live.redis) == 1

    # The watchdog returns the dead job's batch, and the job runs again.
    sender.reclaim_stale(live.redis, older_than=0)
    live.send_all()

    assert simulator.requests_received(live.redis) == 1
    # Twilio's callback (it carries our message id) settles the message.
    wait_until(lambda: outbound.message_status(live.redis, mid) == "delivered")
    assert sender.reap_unconfirmed(live.redis, grace=0) == 0
    live.send_all()
    assert handsets.received_count(live.redis, ALI) == 1


def test_an_sms_never_confirmed_is_sent_again_only_after_the_grace_period(live: Live):
    ali = live.subscriber(ALI)
    mid = outbound.message_id("reply:6", ali)
    live.queue([(ali, "hi")], intent="reply:6", kind="direct")
    with pytest.raises(WorkerKilled):
        sender.drain(live.runtime, {"twilio": DiesBeforeCallingTwilio()}, queues.LANES)
    sender.reclaim_stale(live.redis, older_than=0)

    live.send_all()  # outcome unknown: no call yet
    assert sender.reap_unconfirmed(live.redis) == 0  # still within the grace period
    assert simulator.requests_received(live.redis) == 0
    assert outbound.message_status(live.redis, mid) == "sending"

    assert sender.reap_unconfirmed(live.redis, grace=0) == 1
    live.send_all()

    assert handsets.received_count(live.redis, ALI) == 1
    stored = outbound.get(live.redis, mid)
    assert stored is not None and stored.attempts == 2


@pytest.mark.e2e
def test_a_worker_process_killed_after_twilio_accepted_never_sends_twice(live: Live):
    ali = live.subscriber(ALI)
    mid = outbound.message_id("kill", ali)
    live.control("delay", seconds=3)  # Twilio takes the SMS, then is slow to answer and to report
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    env.update(live.config.as_env(), PYTHONUNBUFFERED="1")
    worker = subprocess.Popen(
        [sys.executable, "-m", "gateway.box.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        live.queue([(ali, "once only")], intent="kill", kind="direct")
        wait_until(lambda: simulator.requests_received(live.redis) == 1, timeout=20)
        worker.kill()
    finally:
        worker.kill()
        worker.wait(timeout=10)
    assert outbound.message_status(live.redis, mid) == "sending"

    # The worst case: the whole batch is replayed, and a fresh worker runs the send job.
    live.redis.rpush(keys.outbound_lane("replies"), mid)
    outbound.enqueue_send_job(live.queues, "replies")
    run_worker(live)
    assert simulator.requests_received(live.redis) == 1

    wait_until(lambda: outbound.message_status(live.redis, mid) == "delivered", timeout=10)
    assert sender.reap_unconfirmed(live.redis, grace=0) == 0
    assert handsets.received_count(live.redis, ALI) == 1


def test_a_real_worker_sends_the_queued_sms(live: Live):
    ali = live.subscriber(ALI)
    live.queue([(ali, "via rq")], intent="rq", kind="answer")

    run_worker(live)

    assert [m["body"] for m in handsets.inbox_for(live.redis, ALI)] == ["via rq"]
    assert not live.redis.exists(keys.outbound_drain_scheduled("replies"))


def test_no_phone_number_is_stored_or_logged(live: Live, caplog: pytest.LogCaptureFixture):
    caplog.set_level("DEBUG")
    subs = [live.subscriber(n) for n in (ALI, SARA, REZA)]
    live.control("fail", count=1, code=21211)
    live.queue([(s, "hello") for s in subs], intent="privacy")
    run_worker(live)
    # One of the three (whichever call came first: they go concurrently) was refused.
    wait_until(lambda: sum(handsets.received_count(live.redis, n) for n in (ALI, SARA, REZA)) == 2)

    assert leaks(redis_dump(live.redis), [ALI, SARA, REZA]) == []
    assert leaks(caplog.text, [ALI, SARA, REZA]) == []


@pytest.mark.parametrize(
    ("http_status", "code", "retryable", "stopped"),
    [
        (429, 20429, True, False),
        (500, 20500, True, False),
        (503, None, True, False),
        (400, 21610, False, True),
        (400, 21211, False, False),
        (400, 21614, False, False),
        (400, 30006, False, False),
        (400, 21611, True, False),
        (401, 20003, False, False),
    ],
    ids=["429", "500", "503-no-code", "21610", "21211", "21614", "30006", "21611-queue-full", "auth"],
)
def test_error_table(http_status: int, code: int | None, retryable: bool, stopped: bool):
    error = twilio.classify(http_status, code, "The 'To' number +989121234567 is not valid")
    assert (error.retryable, error.outcome == OPTED_OUT) == (retryable, stopped)
    assert error.code == str(code or http_status)
    assert "+989121234567" not in str(error)


@contextlib.contextmanager
def sender_to(live: Live, base_url: str) -> Iterator[TwilioSender]:
    """A Twilio sender whose API is at `base_url`, its connections closed after."""
    adapter = TwilioSender(dataclasses.replace(live.config, twilio_api_base_url=base_url))
    try:
        yield adapter
    finally:
        adapter.close()


@contextlib.contextmanager
def far_end(
    handler: type[http.server.BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[int]:
    """A local HTTP server answering as `handler` does (over TLS with `tls`): its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_connection_refused_is_retryable_and_certainly_not_sent(live: Live):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    closed = port.getsockname()[1]
    port.close()
    with sender_to(live, f"http://127.0.0.1:{closed}") as adapter, pytest.raises(SendError) as caught:
        adapter.send(ALI, "hi", "x")
    assert caught.value.retryable and not caught.value.outcome_unknown


def test_no_answer_means_outcome_unknown(live: Live, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(twilio, "API_TIMEOUT_SECONDS", 0.3)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    try:
        with sender_to(live, f"http://127.0.0.1:{silent.getsockname()[1]}") as adapter:
            with pytest.raises(SendError) as caught:
                adapter.send(ALI, "hi", "x")
    finally:
        for s in accepted:
            s.close()
        silent.close()
    assert caught.value.outcome_unknown


class _RecordingProxy(http.server.BaseHTTPRequestHandler):
    """A forward proxy that notes each request line and answers as Twilio would."""

    seen: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(self.requestline)
        body = json.dumps({"sid": "SM" + "0" * 32, "status": "queued", "num_segments": "1"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # nothing of a request reaches a log
        pass


def test_sms_go_through_the_proxy_the_environment_names(live: Live, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with far_end(_RecordingProxy) as proxy_port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        with sender_to(live, "http://api.twilio.invalid") as adapter:
            result = adapter.send(ALI, "hi", "x")
    assert result.provider_id == "SM" + "0" * 32
    assert _RecordingProxy.seen and _RecordingProxy.seen[0].startswith("POST http://api.twilio.invalid/")


class _ClosesWhenIdle(_RecordingProxy):
    """Answers as Twilio would, then closes the connection without saying so (an idle
    keep-alive timeout on the far end)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        super().do_POST()
        self.close_connection = True


def test_a_kept_alive_connection_the_api_closed_meanwhile_is_not_a_lost_answer(live: Live):
    """Reused as it was, the second SMS would go out on a closed connection and its outcome
    would be unknown (held 10 minutes for a callback); a fresh connection sends it."""
    with far_end(_ClosesWhenIdle) as port, sender_to(live, f"http://127.0.0.1:{port}") as adapter:
        first = adapter.send(ALI, "hi", "x")
        time.sleep(0.2)  # the server has closed its end by now
        second = adapter.send(ALI, "again", "y")
    assert first.provider_id == second.provider_id == "SM" + "0" * 32


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "api.pem", tmp_path / "api.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.mark.parametrize("trusted", [True, False], ids=["its-ca-given", "unknown-ca"])
def test_sms_go_over_tls_only_to_an_api_whose_certificate_checks_out(
    live: Live, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, trusted: bool
):
    cert_file, key_file = _self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    if trusted:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
    else:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with far_end(_RecordingProxy, tls) as port, sender_to(live, f"https://127.0.0.1:{port}") as adapter:
        if trusted:
            assert adapter.send(ALI, "hi", "x").provider_id == "SM" + "0" * 32
        else:  # a certificate nobody vouches for: nothing was sent, so it may be sent again
            with pytest.raises(SendError) as refused:
                adapter.send(ALI, "hi", "x")
            assert refused.value.retryable and not refused.value.outcome_unknown


def test_the_watchdog_schedules_a_send_job_for_stranded_sms(live: Live):
    ali = live.subscriber(ALI)
    live.queue([(ali, "stranded")], intent="w")
    live.redis.delete(keys.outbound_drain_scheduled("replies"))  # as if its job had been lost

    assert sender.needs_drain(live.redis) == ["replies"]
    assert sender.needs_drain(live.redis) == []  # the slot is taken now
