"""The operator console: who may see it, what it counts, and what its buttons do."""

from __future__ import annotations

import base64
import io
import json
import re
import time
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from werkzeug.routing import BuildError

from gateway.box import cli
from gateway.microblog import moderation, posts, subscribers
from gateway.ops import accounts, backoff, bulk
from gateway.outbox import outbound
from gateway.pipeline import intake
from gateway.providers.records import InboundText
from gateway.runtime import Runtime
from gateway.store import keys, queues
from gateway.web import create_app
from tests.burst import BurstWorker
from tests.conftest import Twilio
from workers import context

PASSWORD = "a long enough password"
SECRET_NUMBER = "+989121234567"


# Jobs the tests make fail, enqueued by dotted name like every Kabootar job.
def explode() -> None:
    raise RuntimeError(f"could not text {SECRET_NUMBER}: carrier said no")


def flaky(counter: str) -> int:
    """Counts its runs; fails while `<counter>:fail` is set."""
    redis = context.current().redis
    runs = int(redis.incr(counter))
    if redis.get(f"{counter}:fail"):
        raise RuntimeError("flaky job failed on purpose")
    return runs


def work(runtime: Runtime, *queue_names: str) -> None:
    """Run a real RQ worker in burst mode over the named queues (default: inbound only, so
    no test here reaches for Twilio)."""
    rq_redis = Redis.from_url(runtime.config.redis_url or "")
    rq_queues = queues.make(rq_redis)
    names = queue_names or (queues.INBOUND,)
    BurstWorker([rq_queues[n] for n in names], connection=rq_redis).work(burst=True, logging_level="ERROR")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def log_in(client: FlaskClient, name: str = "ana", password: str = PASSWORD, **kw: object):
    token = csrf_of(client.get("/ops/login").get_data(as_text=True))
    return client.post("/ops/login", data={"csrf_token": token, "name": name, "password": password}, **kw)


@pytest.fixture
def operator(client: FlaskClient, redis: Redis) -> str:
    """A logged-in operator; returns a CSRF token for their forms."""
    accounts.add_user(redis, "ana", PASSWORD)
    assert log_in(client).status_code == 303
    return csrf_of(client.get("/ops").get_data(as_text=True))


def health(client: FlaskClient) -> dict:
    response = client.get("/ops/api/health")
    assert response.status_code == 200
    return response.get_json()


def _paths(app: Flask) -> list[tuple[str, str]]:
    """Every (method, path) of the console and /metrics, with sample values for arguments."""
    adapter = app.url_map.bind("kabootar.test")
    samples = ["retry", "discard", "hide", "restore", "block", "unblock", "down", "up"]
    found = []
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/ops") or rule.rule == "/metrics"):
            continue
        if rule.endpoint in ("ops.static", "ops.login"):
            continue
        built = set()
        for action in samples:  # every action a rule accepts
            values = {"job_id": "abc", "action": action, "name": "android", "key": "A" * 24}
            values["history_id"] = "in-SM1"  # a message's timeline (/ops/messages/<id>)
            try:
                built.add(adapter.build(rule.endpoint, {k: values[k] for k in rule.arguments}))
            except (BuildError, ValueError):
                continue
        assert built, rule
        methods = sorted(set(rule.methods or ()) - {"HEAD", "OPTIONS"})
        found += [(m, path) for path in sorted(built) for m in methods]
    return found


def test_every_console_route_and_metrics_require_login(app: Flask, client: FlaskClient):
    paths = _paths(app)
    assert ("GET", "/ops") in paths and ("GET", "/metrics") in paths and len(paths) >= 12
    for method, path in paths:
        response = client.open(path, method=method)
        if path.startswith("/ops/api/") or path == "/metrics":
            assert response.status_code == 401, (method, path)
        else:
            assert response.status_code == 303, (method, path)
            assert response.headers["Location"].startswith("/ops/login"), (method, path)
    with client.get("/ops/static/ops.js") as script:  # public: the script holds no data
        assert script.status_code == 200


def test_operator_logs_in_sees_the_console_and_logs_out(client: FlaskClient, redis: Redis):
    accounts.add_user(redis, "Ana", PASSWORD)
    response = log_in(client, "ana")
    assert response.status_code == 303 and response.headers["Location"] == "/ops"
    page = client.get("/ops")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for heading in ("Queues", "Texts", "SMS out", "Workers", "Failed jobs", "Moderation"):
        assert f"<h2>{heading}" in html
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    assert "<script>" not in html and "style=" not in html
    assert page.headers["Cache-Control"] == "no-store"
    client.post("/ops/logout", data={"csrf_token": csrf_of(html)})
    assert client.get("/ops").status_code == 303


def test_settings_panel_shows_the_limits_this_app_runs_with_and_no_secret(config, runtime, redis: Redis):
    changed = replace(
        config, sender_posts_per_minute=7, sms_max_segments=3, twilio_auth_token="t0ps3cret-token"
    )
    client = create_app(changed, {"TESTING": True}).test_client()
    accounts.add_user(redis, "ana", PASSWORD)
    log_in(client)
    html = client.get("/ops").get_data(as_text=True)
    panel = html[html.index('<section id="settings"') :]
    panel = panel[: panel.index("</section>")]
    assert re.search(r"SENDER_POSTS_PER_MINUTE</code></th><td>7<", panel)
    assert re.search(r"SMS_MAX_SEGMENTS</code></th><td>3<", panel)
    assert "t0ps3cret" not in html and changed.secret_key not in html


def test_session_cookie_is_httponly_samesite_and_secure_behind_https(client: FlaskClient, redis: Redis):
    accounts.add_user(redis, "ana", PASSWORD)
    cookies = {c.split("=", 1)[0]: c for c in log_in(client).headers.getlist("Set-Cookie")}
    assert set(cookies) == {"session", "ops_device"}
    session, device = cookies["session"], cookies["ops_device"]
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Secure" in session
    # The device cookie (no wait for guessers elsewhere) goes nowhere but the login form.
    assert "HttpOnly" in device and "SameSite=Strict" in device and "Secure" in device
    assert "Path=/ops/login" in device


def test_wrong_passwords_earn_growing_waits_not_a_lock(app: Flask, redis: Redis, login_clock: list[float]):
    # Replaces a hard 15-minute lock of the name, which a guesser could set off for anyone.
    accounts.add_user(redis, "ana", PASSWORD)
    guesser = app.test_client()
    for _ in range(backoff.PAIR_FREE + 1):  # a few typos cost nothing; the next earns a wait
        assert log_in(guesser, password="hunter2").status_code == 401
    refused = log_in(guesser)  # even the right password waits, unchecked
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert "Try again in 1 second." in refused.get_data(as_text=True)

    waits = []
    for _ in range(12):  # the guesser waits each time as told, and guesses again
        login_clock[0] += int(log_in(guesser, password="hunter2").headers.get("Retry-After", 0))
        assert log_in(guesser, password="hunter2").status_code == 401
        waits.append(int(log_in(guesser, password="hunter2").headers["Retry-After"]))
    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
    assert "Try again in 15 minutes." in log_in(guesser).get_data(as_text=True)

    # From anywhere else ana waits a few seconds at most: the long waits are the guesser's.
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    refused = log_in(elsewhere)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) <= backoff.ACCOUNT_MAX_WAIT
    login_clock[0] += backoff.ACCOUNT_MAX_WAIT
    assert log_in(elsewhere).status_code == 303
    login_clock[0] += 900
    assert log_in(guesser).status_code == 303  # the wait is over: the right password works


def test_many_names_guessed_from_one_address_make_that_address_wait(app: Flask, redis: Redis, login_clock):
    accounts.add_user(redis, "ana", PASSWORD)
    guesser = app.test_client()
    guesser.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    for n in range(backoff.ADDR_FREE + 1):
        assert log_in(guesser, name=f"admin{n}", password="guess").status_code == 401
    assert log_in(guesser).status_code == 429  # ana's password, from the guesser's address
    assert log_in(app.test_client()).status_code == 303  # ana, from her own address
    assert not [k for k in redis.scan_iter() if "203.0.113.9" in k]  # no address in Redis


def test_unknown_name_and_wrong_password_read_the_same(client: FlaskClient, redis: Redis):
    accounts.add_user(redis, "ana", PASSWORD)
    unknown = log_in(client, name="nobody").get_data(as_text=True)
    wrong = log_in(client, password="nope").get_data(as_text=True)
    assert "Wrong name or password." in unknown and "Wrong name or password." in wrong


def test_login_without_csrf_token_is_refused(client: FlaskClient, redis: Redis):
    accounts.add_user(redis, "ana", PASSWORD)
    response = client.post("/ops/login", data={"name": "ana", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/ops").status_code == 303


@pytest.mark.parametrize("token", ["", "forged.token.value"], ids=["missing", "forged"])
def test_console_action_without_valid_csrf_token_is_refused(client, operator, redis, token):
    post_id = posts.create(redis, posts.NewPost(body="keep me", source="web", display_name="x"))
    response = client.post("/ops/api/posts/hide", data={"post_id": str(post_id), "csrf_token": token})
    assert response.status_code == 400
    assert posts.get(redis, post_id) is not None


def test_health_counts_match_texts_failures_and_deliveries(
    client: FlaskClient, operator: str, twilio: Twilio, runtime: Runtime, redis: Redis
):
    twilio.text(sender=SECRET_NUMBER, body="first")
    twilio.text(sender=SECRET_NUMBER, body="second")
    repeat = twilio.form(sender="+989350000001", body="third")
    twilio.post(repeat)
    twilio.post(repeat)  # Twilio retried: one text
    twilio.post(twilio.form(body="forged"), signature="bm90IGEgc2lnbmF0dXJl")
    twilio.post({"Body": "no sid, no sender"})

    before = health(client)
    assert before["queues"]["inbox"]["depth"] == 3
    assert before["queues"]["inbox"]["oldest_age"] is not None
    work(runtime)

    # Four SMS to the two texters; Twilio then reports on each through the status callback.
    numbers = [SECRET_NUMBER, "+989350000001"]
    ids = subscribers.find_ids(redis, [runtime.vault.lookup_key(n) for n in numbers])
    rq_queues = queues.make(Redis.from_url(runtime.config.redis_url or ""))
    reports = [("delivered", ""), ("delivered", ""), ("undelivered", "30003"), ("failed", "21610")]
    for n, (status, code) in enumerate(reports):
        recipient = ids[n % 2] or 0
        outbound.queue(redis, rq_queues, [(recipient, f"sms {n}")], intent=f"ops-test:{n}", kind="answer")
        mid = outbound.message_id(f"ops-test:{n}", recipient)
        form = {"MessageSid": f"SM{n:032x}", "MessageStatus": status, "ErrorCode": code}
        assert twilio.post(form, path=f"/twilio/status?m={mid}").status_code == 200
    rq_queues[queues.INBOUND].enqueue("tests.test_ops.explode", description="explode on purpose")
    work(runtime)

    h = health(client)
    p = h["pipeline"]
    assert (p["received"], p["duplicates"], p["rejected"], p["malformed"], p["posts"]) == (3, 1, 1, 1, 3)
    assert p["received_per_min"] == pytest.approx(3, abs=0.01)
    assert p["latency"]["webhook_to_post"]["count"] == 3
    assert 0 <= p["latency"]["webhook_to_post"]["p50"] <= p["latency"]["webhook_to_post"]["p99"] <= 60
    assert h["queues"]["inbox"]["depth"] == 0 and h["queues"]["inbox"]["oldest_age"] is None
    assert h["queues"]["inbox"]["out_per_s"] == pytest.approx(3 / 60, abs=0.001)

    out = h["outbound"]
    assert {k: out["by_status"][k] for k in ("delivered", "undelivered", "failed")} == {
        "delivered": 2,
        "undelivered": 1,
        "failed": 1,
    }
    codes = {(row["status"], row["code"]): row for row in out["by_code"]}
    assert codes[("undelivered", "30003")]["count"] == 1
    assert "unreachable" in codes[("undelivered", "30003")]["meaning"]
    assert "unsubscribed" in codes[("failed", "21610")]["meaning"]

    assert h["failed_jobs"]["count"] == 1
    [job] = h["failed_jobs"]["jobs"]
    assert job["description"] == "explode on purpose" and job["queue"] == queues.INBOUND
    assert job["error"] == "RuntimeError: could not text +98•••67: carrier said no"
    page = client.get("/ops").get_data(as_text=True)
    assert SECRET_NUMBER not in json.dumps(h) and SECRET_NUMBER not in page


def test_retry_of_a_failed_job_runs_it_again(
    client: FlaskClient, operator: str, runtime: Runtime, redis: Redis
):
    redis.set("test:flaky:fail", "1")
    rq_queues = queues.make(Redis.from_url(runtime.config.redis_url or ""))
    job = rq_queues[queues.INBOUND].enqueue("tests.test_ops.flaky", "test:flaky")
    work(runtime)
    [listed] = health(client)["failed_jobs"]["jobs"]
    assert listed["id"] == job.id and "failed on purpose" in listed["error"]

    redis.delete("test:flaky:fail")  # whatever broke is fixed: the operator retries
    response = client.post(f"/ops/api/jobs/{job.id}/retry", data={"csrf_token": operator})
    assert response.status_code == 303
    assert f"Retried job {job.id}." in client.get("/ops").get_data(as_text=True)
    work(runtime)
    assert redis.get("test:flaky") == "2"
    assert health(client)["failed_jobs"]["count"] == 0


def test_a_bulk_dry_run_over_the_cap_says_the_newest_are_taken(
    client: FlaskClient, operator: str, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(bulk, "MAX_SELECTED", 2)
    rq_queues = queues.make(Redis.from_url(runtime.config.redis_url or ""))
    for _ in range(3):
        rq_queues[queues.INBOUND].enqueue("tests.test_ops.explode")
    work(runtime)
    page = client.get("/ops/bulk/jobs?action=discard").get_data(as_text=True)
    assert "This will discard <b>2</b> failed jobs" in page
    assert "More jobs match than one action takes (2): the newest are taken" in page
    assert 'class="danger">Discard 2 jobs</button>' in page


def test_a_bulk_retry_by_filter_shows_its_count_first_and_is_audited(
    client: FlaskClient, operator: str, runtime: Runtime, redis: Redis
):
    rq_queues = queues.make(Redis.from_url(runtime.config.redis_url or ""))
    redis.set("test:flaky:fail", "1")
    for _ in range(3):
        rq_queues[queues.INBOUND].enqueue("tests.test_ops.flaky", "test:flaky")
    for _ in range(2):
        rq_queues[queues.INBOUND].enqueue("tests.test_ops.explode")
    work(runtime)
    assert health(client)["failed_jobs"]["count"] == 5

    # The dry run counts what the filter selects, and changes nothing.
    preview = client.get("/ops/bulk/jobs?action=retry&error=FLAKY+job&within=60")
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "This will retry <b>3</b> failed jobs: kb-inbound 3." in page
    assert health(client)["failed_jobs"]["count"] == 5
    assert (
        client.get("/ops/bulk/jobs?action=retry&error=nothing+like+it")
        .get_data(as_text=True)
        .count("<b>0</b>")
        == 1
    )

    redis.delete("test:flaky:fail")  # fixed: the operator confirms
    form = {"error": "flaky job", "within": "60", "queue": "", "previewed": "3"}
    confirmed = client.post("/ops/api/bulk/jobs/retry", data=form | {"csrf_token": csrf_of(page)})
    assert confirmed.status_code == 303
    console = client.get("/ops").get_data(as_text=True)
    assert "Retried 3 failed jobs." in console
    work(runtime)
    assert redis.get("test:flaky") == "6"  # each of the three ran once more, and passed
    assert [j["func"] for j in health(client)["failed_jobs"]["jobs"]] == ["tests.test_ops.explode"] * 2

    audit_row = console[console.index('<section id="audit"') :].split("</tr>")[1]
    for seen in ("ana", "retry failed jobs", "error: flaky job", "within: 60 min", ">3<"):
        assert seen in audit_row, (seen, audit_row)

    # Discarding the rest by an empty filter (every failed job), without the preview's count.
    answer = client.post(
        "/ops/api/bulk/jobs/discard",
        data={"csrf_token": operator},
        headers={"Accept": "application/json"},
    )
    assert answer.get_json() == {
        "ok": True,
        "message": "Discarded 2 failed jobs (0 in the preview: others changed them meanwhile).",
    }
    assert health(client)["failed_jobs"] == {"count": 0, "jobs": []}


@pytest.mark.parametrize(
    "query",
    [
        "action=retry&queue=no-such-queue",
        "action=retry&within=7",
        "action=retry&error=" + "x" * 101,
        "action=burn",
    ],
)
def test_a_bulk_filter_the_form_cannot_send_is_refused_with_a_reason(client, operator, query):
    response = client.get(f"/ops/bulk/jobs?{query}")
    assert response.status_code == 400
    assert "cannot be used" in response.get_data(as_text=True)


def test_a_bulk_action_needs_its_csrf_token_and_a_session(client: FlaskClient, operator: str):
    assert client.post("/ops/api/bulk/jobs/discard", data={}).status_code == 400
    client.post("/ops/logout", data={"csrf_token": operator})
    assert client.get("/ops/bulk/jobs?action=retry").status_code == 303  # to the login form


def test_hidden_post_leaves_the_feed_and_comes_back_when_restored(client, operator, twilio, runtime, redis):
    twilio.text(body="an unwanted post")
    work(runtime)
    [post] = posts.page(redis, keys.TIMELINE_ALL, None, 10)[0]
    client.post("/ops/api/posts/hide", data={"post_id": str(post.id), "csrf_token": operator})
    assert posts.page(redis, keys.TIMELINE_ALL, None, 10)[0] == []
    assert client.get(f"/api/v1/posts/{post.id}").status_code == 404
    client.post("/ops/api/posts/restore", data={"post_id": str(post.id), "csrf_token": operator})
    assert [p.id for p in posts.page(redis, keys.TIMELINE_ALL, None, 10)[0]] == [post.id]
    assert moderation.recent_actions(redis)[0]["action"] == "restore"


@pytest.mark.parametrize(
    "form, message",
    [
        ({"post_id": "abc"}, "A post id is a number"),
        ({"post_id": "999999"}, "There is no post 999999."),
    ],
    ids=["not-a-number", "no-such-post"],
)
def test_hiding_a_post_that_is_not_there_says_so(client, operator, form, message):
    response = client.post(
        "/ops/api/posts/hide", data={**form, "csrf_token": operator}, follow_redirects=True
    )
    assert message in response.get_data(as_text=True)


def test_a_number_typed_as_a_handle_to_block_is_not_logged(client, operator, caplog):
    caplog.set_level("INFO")
    response = client.post(
        "/ops/api/handles/block",
        data={"handle": SECRET_NUMBER[1:], "csrf_token": operator},
        follow_redirects=True,
    )
    assert response.status_code == 200 and SECRET_NUMBER[1:] not in caplog.text


def test_blocked_handles_texts_make_no_post(client, operator, twilio, runtime, redis):
    twilio.text(sender=SECRET_NUMBER, body="before the block")
    work(runtime)
    [post] = posts.page(redis, keys.TIMELINE_ALL, None, 10)[0]
    response = client.post(
        "/ops/api/handles/block", data={"handle": f"@{post.handle}", "hide": "0", "csrf_token": operator}
    )  # the checkbox unticked: their posts stay up (issue 13 made hiding them the default)
    assert response.status_code == 303
    lookup_key = runtime.vault.lookup_key(SECRET_NUMBER)
    assert moderation.blocked_among(redis, [lookup_key]) == {lookup_key}

    twilio.text(sender=SECRET_NUMBER, body="after the block")
    work(runtime)
    assert [p.body for p in posts.page(redis, keys.TIMELINE_ALL, None, 10)[0]] == ["before the block"]
    h = health(client)
    assert h["pipeline"]["blocked"] == 1
    [blocked] = h["moderation"]["blocked"]
    assert (blocked["id"], blocked["handle"], blocked["hides_posts"]) == (lookup_key, post.handle, False)

    client.post("/ops/api/handles/unblock", data={"handle": post.handle, "csrf_token": operator})
    twilio.text(sender=SECRET_NUMBER, body="after the unblock")
    work(runtime)
    assert len(posts.page(redis, keys.TIMELINE_ALL, None, 10)[0]) == 2


def test_red_banner_when_no_worker_is_alive_or_texts_wait_too_long(client, operator, runtime, redis):
    stale = InboundText("SM" + "5" * 32, SECRET_NUMBER, "waiting", received_at=time.time() - 300)
    intake.store(redis, runtime.vault, stale)
    alerts = [a["summary"] for a in health(client)["alerts"]]  # changed with alerts: objects
    assert alerts[0].startswith("No worker is alive")
    assert alerts[1].startswith("texts to post: the oldest has waited 300 s")

    redis.zadd(keys.WORKER_HEARTBEAT, {"box.4242": time.time()})  # a worker's watchdog beats
    h = health(client)
    assert [a for a in h["alerts"] if "worker" in a["summary"]] == []
    assert h["workers"]["alive"] == 1 and h["workers"]["list"][0]["name"] == "box.4242"
    assert h["queues"]["inbox"]["late"] is True
    html = client.get("/ops").get_data(as_text=True)
    assert 'id="queue-inbox" data-alarm="queues.inbox.late" class="late"' in html


def test_kabootar_ops_add_user_reads_the_password_from_stdin(
    redis_server, redis, client, monkeypatch, capsys
):
    monkeypatch.setenv("REDIS_URL", redis_server)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli.main(["ops", "add-user", "Bob", "--password-stdin"]) == 0
    assert "operator bob can now log in" in capsys.readouterr().out
    assert log_in(client, "bob").status_code == 303

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["ops", "add-user", "carol", "--password-stdin"]) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    assert not accounts.exists(redis, "carol")


def test_scripts_read_the_health_json_with_basic_auth_but_cannot_act(client, redis):
    accounts.add_user(redis, "script", PASSWORD)
    auth = {"Authorization": "Basic " + base64.b64encode(f"script:{PASSWORD}".encode()).decode()}
    assert client.get("/ops/api/health", headers=auth).get_json()["ok"] is False  # no worker here
    assert client.get("/ops/api/health", headers={"Authorization": "Basic Ym9iOm5v"}).status_code == 401
    assert client.post("/ops/api/bulk/jobs/retry", headers=auth).status_code == 401


def test_console_says_plainly_when_redis_is_down(app: Flask, client: FlaskClient, operator: str):
    ext = app.extensions["kabootar"]
    ext.redis.connection_pool.reset()
    ext.redis.connection_pool.connection_kwargs["port"] = 1  # nothing listens there
    response = client.get("/ops/api/health")
    assert response.status_code == 503
    assert "Redis cannot be reached" in response.get_json()["error"]
