"""Helpers for the crash tests: a durable Redis of their own, Twilio-like senders, counts.

The senders keep one HTTP connection per thread (as Twilio's do) and time every answer;
the counts read the posts straight from Redis, by the MessageSid each one records.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from rq import Queue

from gateway.box import embedded_redis
from gateway.config import Config
from gateway.providers.twilio.webhooks import SignatureChecker
from gateway.store import connect, keys, queues
from tests.ha import Cluster
from tests.live import CLI, Processes, clean_env, processes_in_session, web_settings

TWILIO_PATIENCE = 15.0  # Twilio waits this long for the webhook, then calls the fallback URL


@dataclass(frozen=True)
class Text:
    sid: str
    sender: str
    body: str


@dataclass(frozen=True)
class Answer:
    sid: str
    status: int  # 0: no answer at all (connection refused or reset, or a timeout)
    sent_at: float  # time.monotonic()
    seconds: float


def texts(count: int, senders: int, tag: str) -> list[Text]:
    """`count` texts, each body unique, from `senders` different numbers in turn."""
    return [
        Text(f"SM{tag}{i:030d}", f"+1202555{i % senders:04d}", f"field report {tag} {i:05d} from the gate")
        for i in range(count)
    ]


class Texter:
    """Sends signed webhooks over one kept-alive connection, the way Twilio does."""

    def __init__(self, config: Config) -> None:
        self.host, self.port = config.host, config.port
        self.signer = SignatureChecker(config.twilio_auth_token, config.public_url)
        self.conn: http.client.HTTPConnection | None = None

    def send(self, text: Text) -> Answer:
        form = {
            "MessageSid": text.sid,
            "AccountSid": "AC" + "0" * 32,
            "From": text.sender,
            "To": "+15005550006",
            "Body": text.body,
            "NumMedia": "0",
        }
        body = urllib.parse.urlencode(form)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": self.signer.sign("/twilio/sms", form),
        }
        start = time.monotonic()
        status = 0
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TWILIO_PATIENCE)
            self.conn.request("POST", "/twilio/sms", body=body, headers=headers)
            response = self.conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            self.close()
        return Answer(text.sid, status, start, time.monotonic() - start)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def send_all(
    config: Config,
    to_send: Sequence[Text],
    threads: int,
    rate: float | None = None,
    until: threading.Event | None = None,
) -> list[Answer]:
    """Send every text from `threads` threads, at `rate` texts a second overall if given
    (or, with `until`, the texts due before it is set: a stream as long as something lasts).

    Text i is due `i / rate` seconds after the start, so a slow answer delays only the
    texts of its own thread, as with Twilio's many independent requests.
    """
    answers: list[Answer] = []
    lock = threading.Lock()
    start = time.monotonic()

    def run(first: int) -> None:
        texter = Texter(config)
        mine = []
        for i in range(first, len(to_send), threads):
            if rate:
                time.sleep(max(0.0, start + i / rate - time.monotonic()))
            if until is not None and until.is_set():
                break
            mine.append(texter.send(to_send[i]))
        texter.close()
        with lock:
            answers.extend(mine)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return answers


@dataclass
class Stack:
    """A durable Redis, `kabootar web` and `kabootar worker`s, each restartable by the test."""

    config: Config
    env: dict[str, str]
    redis_dir: Path
    procs: Processes
    redis_proc: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def redis_port(self) -> int:
        return int((self.config.redis_url or "").rsplit(":", 1)[1].split("/")[0])

    def client(self, decode: bool = True) -> Redis:
        """A client of the stack's Redis: with Sentinels, of whichever node is the primary now."""
        if self.config.redis_sentinels:
            return connect.client(self.config, decode=decode)
        return Redis.from_url(self.config.redis_url or "", decode_responses=decode, socket_timeout=10)

    def start_redis(self) -> None:
        self.redis_proc = embedded_redis.start(self.redis_dir, self.redis_port, durable=True)

    def kill_redis(self) -> None:
        assert self.redis_proc is not None
        self.redis_proc.send_signal(signal.SIGKILL)
        self.redis_proc.wait()

    def start_worker(self, slot: int) -> subprocess.Popen[bytes]:
        proc = self.procs.start(f"worker-{slot}", [*CLI, "worker"], self.env)
        if slot < len(self.workers):
            self.workers[slot] = proc
        else:
            self.workers.append(proc)
        return proc

    def kill_worker(self, slot: int) -> str:
        """SIGKILL a worker, then what it left in its session (as `kabootar run` does); its RQ name."""
        proc = self.workers[slot]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for pid in processes_in_session(proc.pid):  # RQ's scheduler process, if it had one
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return f"{socket.gethostname()}.{proc.pid}"

    def stop(self) -> None:
        self.procs.stop()
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.terminate()
            self.redis_proc.wait(timeout=15)


# Limits high enough that nothing is held back: the fault tests are about crashes, not pacing.
UNHELD = {"SENDER_POSTS_PER_MINUTE": "100000", "SMS_MPS": "100"}


@contextlib.contextmanager
def running_stack(
    procs: Processes, tmp_path: Path, workers: int, redis_first: bool = True, **extra: str
) -> Iterator[Stack]:
    """A durable Redis in `tmp_path`, `kabootar web` and `workers` workers on it, ready; then
    stopped. Without `redis_first`, Redis is left for the test to start."""
    redis_url = f"redis://127.0.0.1:{embedded_redis.free_port()}/0"
    settings = web_settings(redis_url, tmp_path / "var", "crash-test-secret-key", **extra)
    stack = Stack(Config.from_env(settings), clean_env(**settings), tmp_path / "redis", procs)
    try:
        if redis_first:
            stack.start_redis()
        procs.start("web", [*CLI, "web"], stack.env)
        for slot in range(workers):
            stack.start_worker(slot)
        if redis_first:
            wait_until(lambda: ready(stack), 60, "the gateway did not get ready", procs)
        yield stack
    finally:
        stack.stop()


@contextlib.contextmanager
def sentinel_stack(
    procs: Processes, tmp_path: Path, cluster: Cluster, workers: int, **extra: str
) -> Iterator[Stack]:
    """`kabootar web` and `workers` workers finding their Redis through `cluster`'s Sentinels
    (no REDIS_URL), ready; then stopped. The cluster is the test's to kill and stop."""
    settings = web_settings("", tmp_path / "var", "crash-test-secret-key", **cluster.env(), **extra)
    stack = Stack(Config.from_env(settings), clean_env(**settings), tmp_path / "redis", procs)
    try:
        procs.start("web", [*CLI, "web"], stack.env)
        for slot in range(workers):
            stack.start_worker(slot)
        wait_until(lambda: ready(stack), 60, "the gateway did not get ready", procs)
        yield stack
    finally:
        stack.stop()


def ready(stack: Stack, path: str = "/readyz") -> bool:
    """Whether /readyz says yes (Redis answers and a worker beats), or `path` answers 200."""
    conn = http.client.HTTPConnection(stack.config.host, stack.config.port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, procs: Processes | None = None
) -> float:
    """Poll `predicate` until true; fail with `what` (and the logs' tail) after `timeout` s."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            logs = procs.output()[-3000:] if procs else ""
            raise AssertionError(f"{what} within {timeout:.0f}s\n{logs}")
        time.sleep(0.2)
    return time.monotonic() - start


def posts_by_sid(redis: Redis) -> Counter[str]:
    """How many posts each MessageSid made (every post in Redis, hidden or not)."""
    ids = redis.zrange(keys.TIMELINE_ALL, 0, -1)
    pipe = redis.pipeline(transaction=False)
    for post_id in ids:
        pipe.hget(keys.post(post_id), "sid")
    return Counter(sid for sid in pipe.execute() if sid)


def in_flight(redis: Redis) -> dict[str, int]:
    """Work our own structures still hold: waiting, claimed or being sent (none once done).

    Not counted: SMS left "sending" by a worker killed around its API call. Twilio may
    have taken those, so they wait for its status callback, or are sent again after
    `sender.UNCONFIRMED_GRACE_SECONDS` (see `unconfirmed_sms`).
    """
    found = {
        "inbox": redis.llen(keys.INBOX),
        "inbox claims": redis.zcard(keys.INBOX_CLAIMS),
        "claim lists": len(list(redis.scan_iter(keys.inbox_claim("*"), count=1000))),
        "stored texts": len(list(redis.scan_iter(keys.inbound_message("*"), count=1000))),
        "deferred": redis.zcard(keys.INBOX_DEFERRED),
    }
    for lane in queues.LANES:
        found[f"lane {lane}"] = redis.llen(keys.outbound_lane(lane))
        found[f"send claims {lane}"] = redis.zcard(keys.outbound_claims(lane))
    return {k: v for k, v in found.items() if v}


def unconfirmed_sms(redis: Redis) -> int:
    """SMS marked "sending" that Twilio has not confirmed (yet)."""
    return int(redis.zcard(keys.OUTBOUND_SENDING))


def rq_work(rq_redis: Redis) -> dict[str, int]:
    """RQ jobs queued, taken off a queue, or marked started (nothing once every worker is idle)."""
    found = {}
    for name in queues.ALL:
        queue = Queue(name, connection=rq_redis)
        found[f"{name} queued"] = queue.count
        found[f"{name} started"] = len(queue.started_job_registry.get_job_ids(cleanup=False))
    found["popped"] = sum(rq_redis.llen(k) for k in rq_redis.scan_iter(keys.worker_popped("*")))
    return {k: v for k, v in found.items() if v}


def job_statuses(rq_redis: Redis) -> Counter[str]:
    """RQ job hashes left in Redis, by status (ours keep no results, so few should be left)."""
    ids = [k.decode() for k in rq_redis.scan_iter("rq:job:*", count=1000) if k.count(b":") == 2]
    pipe = rq_redis.pipeline(transaction=False)
    for key in ids:
        pipe.hget(key, "status")
    return Counter((status or b"?").decode() for status in pipe.execute())
