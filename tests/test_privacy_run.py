"""No phone number anywhere, after a run of every command through real processes.

`kabootar web` (Granian, with the Twilio simulator in it) and `kabootar worker` run
against the test Redis. Texters from Iran, the US, the UK and Germany, one texting in
two formats (E.164 and spaced, E.164 and `whatsapp:`), use every command in DESIGN.md's
table and every word in every language of `words.py`, post, reply, message,
follow, stop, pause, delete and forget; a reader replies from the web; an operator hides
a post and blocks a handle. Twilio refuses two SMS with its real error texts, which
quote the number; a worker started with the wrong SECRET_KEY fails a job until RQ puts
it in the FailedJobRegistry. Then every key and value of Redis (RQ's compressed job data,
tracebacks and result streams unpacked), every process log, every page, feed and API
answer, /metrics and the console are searched for each number in every format.

The simulator's own keys (`sim:`) and /dev/phone are left out of the search: they are
Twilio's side (a phone's inbox, by SHA-256 of its number) and a developer's page that
shows the number the developer typed. What is checked of them instead: Kabootar's keys
hold no such unkeyed hash, and /dev/phone shows no number but the one asked for.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job

from gateway import phones
from gateway.commands import grammar
from gateway.commands import words as command_words
from gateway.config import Config
from gateway.ops import accounts
from gateway.runtime import Runtime
from gateway.store import keys, queues
from tests.burst import BurstWorker
from tests.conftest import run_workers
from tests.live import Gateway, Processes, start_gateway
from tests.privacy import leaks, redis_leaks, redis_values_url, unkeyed_hashes, url_of
from tests.report import Report
from workers import context

ALI, SARA, SAM, LUCY, JONAS, POLY = (
    "+989121234567",
    "+989357654321",
    "+14155550123",
    "+447700900123",
    "+4915112345678",
    "+989171112233",
)
OTHER_FORMS = {ALI: "+98 912 123 4567", JONAS: "whatsapp:+4915112345678"}  # the same texters
LEAVERS = [f"+98912000{n:04d}" for n in range(1, 6)]  # one per word of FORGET ME
NUMBERS = [ALI, SARA, SAM, LUCY, JONAS, POLY, *LEAVERS]
FINAL = ("delivered", "undelivered", "failed", "cancelled")
OPERATOR, PASSWORD = "privacy-op", "a long operator password"

# A well-formed use of each command word (the POLY texter says every word in every language).
SHAPES = {
    "help": "{w}",
    "off": "{w}",
    "on": "{w}",
    "delete": "{w}",
    "stats": "{w}",
    "follow": "{w} @sara",
    "unfollow": "{w} @sara",
    "get": "{w} @ali",
    "whois": "{w} @ali",
    "name": "{w} poly-{n}",
    "bio": "{w} عکاس و شاعر {n}",
    "dm": "{w} @ali سلام {n}",
}
MALFORMED = [
    "FOLLOW",
    "UNFOLLOW",
    "GET #tehran",
    "WHOIS",
    "NAME a",
    "NAME admin",
    "D",
    "D @ali",
    "D @nobody-here are you there",
    "@nobody-here hello",
    "دنبال",
]


class Browser:
    """A reader or operator over HTTP, with cookies (a session) kept between requests."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def open(self, path: str, form: dict[str, str] | None = None, auth: str | None = None) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data)
        if auth:
            request.add_header("Authorization", auth)
        try:
            with self.opener.open(request, timeout=10) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def token(self, path: str) -> str:
        status, page = self.open(path)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert status == 200 and found, (path, status)
        return found.group(1)


class Scans:
    """Searches of all of Redis for the numbers, taken at moments of the run."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.times = self.keys = self.sim_keys = 0
        self.found: dict[str, list[str]] = {}  # Kabootar's and RQ's keys: key -> forms found
        self.sim_found: dict[str, list[str]] = {}  # the simulator's (Twilio's): none either
        self.hashed: set[str] = set()  # keys of ours holding a SHA-256 of a number
        self.hashes = [h for n in NUMBERS for h in unkeyed_hashes(n)]

    def __call__(self) -> None:
        self.times += 1
        for key, text in redis_values_url(self.redis_url).items():
            if key.startswith(keys.SIMULATOR_PREFIX):
                self.sim_keys += 1
                if hit := leaks(text, NUMBERS):
                    self.sim_found[key] = hit
                continue
            self.keys += 1
            if hit := leaks(text, NUMBERS):
                self.found[key] = hit
            if any(h in text for h in self.hashes):
                self.hashed.add(key)


class Run:
    """The texters' side of the run: texts in, and waiting until the gateway is done with them.

    Redis is searched after each round of texts is in and before it is handled, while
    stored texts and RQ's jobs for them wait (and again at the end)."""

    def __init__(self, gateway: Gateway, redis: Redis, rq_redis: Redis, scan: Scans) -> None:
        self.gateway, self.redis, self.rq_redis, self.scan = gateway, redis, rq_redis, scan
        self.said: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()

    def text(self, number: str, body: str) -> None:
        assert self.gateway.text(number, body) == 200
        parsed = grammar.parse(body)
        self.said[parsed.name if parsed else "post"] += 1
        self.languages[(parsed.language or "fa/ar") if parsed else "post"] += 1

    def texts(self, *items: tuple[str, str]) -> None:
        for number, body in items:
            self.text(number, body)
        self.scan()
        self.wait()

    def quiet(self) -> bool:
        r = self.redis
        if r.llen(keys.INBOX) or r.zcard(keys.INBOX_CLAIMS):
            return False
        if any(
            r.llen(keys.outbound_lane(lane)) or r.zcard(keys.outbound_delayed(lane)) for lane in queues.LANES
        ):
            return False
        for name in queues.ALL:
            queue = Queue(name, connection=self.rq_redis)
            if queue.count or queue.started_job_registry.count or queue.scheduled_job_registry.count:
                return False
        statuses = [r.hget(k, "status") for k in r.scan_iter(keys.outbound_message("*"), count=1000)]
        return all(s in FINAL for s in statuses)

    def wait(self, timeout: float = 30) -> None:
        """Until every text is handled, every SMS sent and every status callback in."""
        deadline = time.monotonic() + timeout
        while not self.quiet():
            output = self.gateway.procs.output()
            assert time.monotonic() < deadline, f"still busy after {timeout}s:\n{output[-3000:]}"
            time.sleep(0.1)


def every_word(run: Run) -> None:
    """POLY says every command word of every language once (FORGET ME's are the leavers')."""
    n = 0
    for command, by_language in command_words.WORDS.items():
        if command in ("forget", "stop", "start"):
            continue
        for words in by_language.values():
            for word in words:
                n += 1
                run.text(POLY, SHAPES[command].format(w=word, n=n))
        run.scan()
        run.wait()
    stops = [w for words in command_words.WORDS["stop"].values() for w in words]
    starts = [w for words in command_words.WORDS["start"].values() for w in words]
    for i, stop in enumerate(stops):  # every opt-out word, each undone by an opt-in word
        run.text(POLY, stop)
        run.text(POLY, starts[i % len(starts)])
    run.wait()
    leaving = [w for words in command_words.WORDS["forget"].values() for w in words]
    yes = [w for words in command_words.YES.values() for w in words]
    assert len(leaving) == len(LEAVERS)
    for n, (number, word) in enumerate(zip(LEAVERS, leaving, strict=True)):
        run.text(number, "a post from someone about to leave #tehran")
        run.text(number, word)  # asks to confirm (issue 13 item 11) ...
        run.text(number, yes[n % len(yes)])  # ... and a yes-word of any language erases
    run.wait()


def stop_the_worker_and_text_help(run: Run, processes: Processes) -> None:
    """No worker: the text is stored and its drain job waits in RQ."""
    worker = next(p for p in processes.procs if p.args[-1] == "worker")
    worker.terminate()
    worker.wait(timeout=30)
    run.text(ALI, "HELP")


def fail_a_send_job_with_a_number_in_flight(run: Run, browser: Browser, settings: dict[str, str]) -> Job:
    """Twilio hangs and the send job's timeout passes while it waits for Twilio's answer
    to an SMS to Ali: RQ kills the job, with the number in its threads, and (its retries
    spent) puts it in the FailedJobRegistry. This process is the worker for that job,
    as another box would be: only here can the timeout (300 s) be brought down to 1 s
    before the job starts."""
    runtime = Runtime.from_config(Config.from_env(settings))
    context.use(runtime)
    dev = {"csrf_token": browser.token("/dev/phone")}  # the hooks obey only the dev phone's browser
    assert browser.open("/dev/twilio/control/delay", {"seconds": "2.5", **dev})[0] == 200
    run_workers(runtime, [queues.INBOUND])  # the HELP: answered, and a send job queued
    replies = Queue(queues.REPLIES, connection=run.rq_redis)
    [job] = replies.get_jobs()
    job.timeout, job.retries_left = 1, 0  # 300 s and five retries in production
    job.save()
    run_workers(runtime, [queues.REPLIES])
    assert job.id in replies.failed_job_registry
    assert browser.open("/dev/twilio/control/delay", {"seconds": "0", **dev})[0] == 200
    return job


@pytest.mark.e2e
def test_no_number_anywhere_after_every_command_through_real_processes(
    redis_server: str,
    redis: Redis,
    processes: Processes,
    tmp_path: Path,
    report: Report,
    caplog: pytest.LogCaptureFixture,
):
    started = time.monotonic()
    caplog.set_level(logging.INFO)  # this process is a worker for one job: its log is searched too
    rq_redis = Redis.from_url(redis_server)
    settings = {"SMS_MPS": "0"}
    gateway = start_gateway(redis_server, processes, tmp_path / "var", **settings)
    live_settings = {  # what start_gateway gave the processes, for this process as a worker
        "REDIS_URL": redis_server,
        "PUBLIC_URL": gateway.base,
        "SECRET_KEY": "live-test-secret-key",
        "SIMULATOR": "1",
        **settings,
    }
    scan = Scans(redis_server)
    run = Run(gateway, redis, rq_redis, scan)

    # First texts register everyone; the same texters write in a second format later.
    run.texts(
        (ALI, "سلام! اینترنت قطع است #انتخابات"),
        (SARA, "Tehran: crowds at Azadi square #tehran"),
        (SAM, "Watching from Oakland #iran"),
        (LUCY, "London vigil tonight #tehran"),
        (OTHER_FORMS[JONAS], "Grüße aus Berlin 🌹"),
        (POLY, "من همه چیز را امتحان می‌کنم"),
    )
    run.texts(
        (ALI, "NAME ali"),
        (SARA, "NAME sara"),
        (SAM, "NAME sam"),
        (LUCY, "NAME lucy"),
        (JONAS, "NAME jonas"),
        (POLY, "NAME poly"),
        (OTHER_FORMS[ALI], "BIO reporter in Tehran"),
    )
    assert redis.get(keys.SUBSCRIBER_SEQ) == "6"  # a second format is the same texter
    run.texts(
        (SARA, "FOLLOW @ali #انتخابات"),
        (SARA, "F @sam"),
        (SAM, "FOLLOW @sara"),
        (LUCY, "FOLLOW #tehran"),
        (JONAS, "follow @ali"),
        (ALI, "WHOIS @ali"),
    )
    run.texts(
        (ALI, "my second post #انتخابات @sara"),
        (SAM, "@sara stay safe"),
        (LUCY, "D @ali are you ok?"),
        (SARA, "GET @ali"),
        (SARA, "WHOIS @ali"),
        (SARA, "STATS"),
        (SAM, "BIO watching from afar"),
        (SAM, "HELP"),
        (SAM, "info"),
        (LUCY, "OFF"),
    )
    run.texts(
        (ALI, "@sara ممنون، خوبم"),
        (ALI, "D @lucy yes, safe"),
        (ALI, "regret this one #tehran"),
        (SARA, "UNFOLLOW @sam"),
        (JONAS, "LEAVE @ali"),
        (SAM, "STOP"),
        *((SAM, bad) for bad in MALFORMED),
    )
    run.texts((ALI, "DELETE"), (LUCY, "ON"), (SAM, "START"), (SAM, "STATS"), (OTHER_FORMS[JONAS], "STATS"))
    every_word(run)

    # A reader replies from the post page's form; an operator moderates from the console.
    reader = Browser(gateway.base)
    [ali_post] = [p for p in gateway.feed() if p["body"] == "my second post #انتخابات @sara"]
    reply = {
        "name": "Reader in Paris",
        "body": "we hear you",
        "csrf_token": reader.token(f"/posts/{ali_post['id']}"),
    }
    assert reader.open(f"/posts/{ali_post['id']}/replies", reply)[0] == 200  # redirected to the post
    run.wait()
    accounts.add_user(redis, OPERATOR, PASSWORD)
    operator = Browser(gateway.base)
    login = {
        "name": OPERATOR,
        "password": PASSWORD,
        "next": "/ops",
        "csrf_token": operator.token("/ops/login"),
    }
    status, console = operator.open("/ops/login", login)
    assert status == 200 and "Failed jobs" in console
    csrf = json.loads(operator.open("/ops/api/health")[1])["csrf"]
    [sam_post] = [p for p in gateway.feed() if p.get("handle") == "sam"][:1]
    assert (
        operator.open("/ops/api/posts/hide", {"post_id": str(sam_post["id"]), "csrf_token": csrf})[0] == 200
    )
    assert operator.open("/ops/api/handles/block", {"handle": "lucy", "csrf_token": csrf})[0] == 200
    run.texts((LUCY, "blocked, so never posted"))

    # Twilio refuses two SMS with its own words, which quote the number.
    dev = {"csrf_token": reader.token("/dev/phone")}  # the hooks obey only the dev phone's browser
    for code, number in [(21408, SARA), (21211, SAM)]:
        assert reader.open("/dev/twilio/control/fail", {"count": "1", "code": str(code), **dev})[0] == 200
        run.texts((number, "HELP"))
        assert redis.hget(keys.OUTBOUND_STATS, f"failed:{code}") == "1"

    stop_the_worker_and_text_help(run, processes)
    time.sleep(0.5)
    assert redis.llen(keys.INBOX) == 1 and Queue(queues.INBOUND, connection=rq_redis).count >= 1
    scan()  # a text and its drain job waiting, no worker: the inbound hash and RQ's job data
    job = fail_a_send_job_with_a_number_in_flight(run, reader, live_settings)
    result = job.latest_result()
    assert result is not None and "JobTimeoutException" in (result.exc_string or "")
    error = result.exc_string.strip().splitlines()[-1]
    report("failed job", f"{job.func_name}{tuple(job.args)}, Twilio hanging with an SMS in flight: {error}")
    run.wait()
    scan()  # the failed job: its arguments, traceback and result

    # Every page, feed and API answer; the console, its JSON and /metrics.
    feed = json.loads(gateway.get("/api/v1/posts?limit=100")[1])["posts"]
    handles = sorted({p["handle"] for p in feed if p["source"] == "sms"})
    tags = sorted({t for p in feed for t in p["tags"]})
    paths = [
        "/",
        "/feed.atom",
        "/api/v1/posts?limit=100",
        "/healthz",
        "/readyz",
        "/no-such-page",
        "/ops/login",
    ]
    for handle in handles:
        paths += [f"/@{handle}", f"/@{handle}/feed.atom", f"/api/v1/posts?handle={handle}"]
    for tag in tags:
        quoted = urllib.parse.quote(tag)
        paths += [f"/tags/{quoted}", f"/tags/{quoted}/feed.atom", f"/api/v1/posts?tag={quoted}"]
    paths += [f"/posts/{p['id']}" for p in feed] + [f"/api/v1/posts/{p['id']}" for p in feed]
    pages: dict[str, str] = {}
    for path in paths:
        status, body = reader.open(path)
        assert status < 500 or path == "/readyz", (path, status)
        pages[path] = body
    for path in ["/ops", "/ops/api/health", "/ops/api/alerts", "/metrics"]:
        status, pages[path] = operator.open(path)
        assert status == 200, path
    assert "JobTimeoutException" in pages["/ops"]  # the failed job, listed
    assert "@lucy" in pages["/ops"]  # moderation
    assert "failed:21408" in pages["/metrics"] or 'code="21408"' in pages["/metrics"]
    page_leaks = {path: hit for path, body in pages.items() if (hit := leaks(body, NUMBERS))}

    # /dev/phone shows the number asked for, and no other.
    for number in (SAM, "+14155550100"):
        for path in ("/dev/phone", "/dev/phone/messages"):
            _, body = reader.open(f"{path}?number={urllib.parse.quote(number)}")
            others = [n for n in NUMBERS if n != number]
            assert leaks(body, others) == [], (path, number)

    processes.stop()  # so every log is complete
    logs = processes.output() + caplog.text
    log_leaks = leaks(logs, NUMBERS)
    assert "JobTimeoutException" in caplog.text  # RQ logged the failed job's traceback
    # Twilio's refusals were logged with the number masked (the simulator quoted it whole).
    worker_log = processes.output("worker")
    assert f"'To' number: {phones.mask(SARA)}." in worker_log
    assert f"The 'To' number {phones.mask(SAM)} is not a valid phone number." in worker_log

    report("numbers", ", ".join([*NUMBERS, *OTHER_FORMS.values()]))
    report("texts", f"{sum(run.said.values())}: {dict(sorted(run.said.items()))}")
    report("languages of the commands", dict(run.languages))
    report("SMS outcomes", dict(sorted(redis.hgetall(keys.OUTBOUND_STATS).items())))
    report(
        "Redis keys scanned", f"{scan.keys} in {scan.times} scans (and {scan.sim_keys} of the simulator's)"
    )
    report("pages and API answers scanned", len(pages))
    report("log bytes scanned", f"{len(logs)} from {len(list(processes.logs.iterdir()))} processes")
    leaked = [scan.found, scan.sim_found, sorted(scan.hashed), page_leaks, log_leaks]
    report("leaks found", sum(len(x) for x in leaked))
    report("run time", f"{time.monotonic() - started:.1f} s")
    assert leaked == [{}, {}, [], {}, []]


def test_the_scanner_finds_numbers_in_rq_job_data_tracebacks_and_results(redis: Redis, report: Report):
    """The search itself is not blind: a number among a job's zlib-pickled arguments (as
    text, or as an integer that pickle stores in binary), in a failed job's traceback (a
    result stream's base64 of zlib) and in a return value (base64 of pickle) is found."""
    rq_redis = Redis.from_url(url_of(redis))
    queue = Queue("scanner-self-test", connection=rq_redis)
    failing = queue.enqueue("builtins.int", OTHER_FORMS[ALI], description="no number here")  # ValueError
    returning = queue.enqueue("builtins.abs", int(SAM[1:]), description="nor here")
    BurstWorker([queue], connection=rq_redis).work(burst=True, logging_level="CRITICAL")
    assert failing.id in queue.failed_job_registry
    _, hits = redis_leaks(url_of(redis), [ALI, SAM])
    for job in (failing, returning):
        assert f"rq:job:{job.id}" in hits and f"rq:results:{job.id}" in hits, hits
    report("scanner self-test", f"found the numbers in {len(hits)} keys: {sorted(hits)}")
