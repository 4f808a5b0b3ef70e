"""Console security and abuse, over every route the app serves (issue 6, items 6 and 7).

Routes come from `app.url_map`, so a route added later is checked without editing this
file: a console route must refuse strangers, a POST must name what protects it (a CSRF
token, Twilio's signature, the simulator's Basic auth), and every response carries the
security headers. Then the limits: replies, logins, replayed webhooks (a fast texter's
throttle is in test_throttle.py).
"""

from __future__ import annotations

import base64
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from redis import Redis
from werkzeug.routing import AnyConverter, Rule

from gateway.microblog import posts
from gateway.ops import accounts, backoff
from gateway.providers.android import webhooks as android
from gateway.providers.android.simulator import reports as android_sim
from gateway.store import keys
from gateway.web import create_app, security
from gateway.web import replies as web_replies
from tests.conftest import Twilio, real_twilio
from tests.live import start_gateway
from tests.test_ops import PASSWORD, csrf_of, log_in

# What each POST route is protected by. A console route ("ops.*") always needs the CSRF
# token (the blueprint's guard checks it); any other new POST route must be added here.
CSRF_FORMS = {"web_replies.create_reply", "devphone.send"}
SIGNED_BY_TWILIO = {"webhooks.twilio_sms", "webhooks.twilio_status"}
SIGNED_BY_THE_PHONE = {"webhooks.android_webhook"}  # HMAC of body and timestamp, 5 minutes
# Basic auth: Twilio's account sid and token; the phone's user and password.
SIMULATOR_API = {"twilio_simulator.create_message", "android_simulator.send_message"}
# The simulators' test hooks (make the fake Twilio or phone fail or slow down). They exist
# only while a provider has no credentials, i.e. no real SMS can be at stake.
SIMULATOR_HOOKS = ("twilio_simulator.control_", "android_simulator.control_")  # names starting so
PUBLIC_CONSOLE = {"ops.login", "ops.static"}
STATIC_FILES = {"ops.static": "ops.js", "devphone.static": "phone.js", "static": "nothing-here.css"}
SECURE = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
TEXTER = "+989121234567"


# ---------------------------------------------------------------- helpers


def paths(app: Flask, rule: Rule, **values: str) -> list[str]:
    """Every path `rule` serves, one per choice of each any(...) part, `values` for the rest."""
    choices: list[dict[str, str]] = [{}]
    for name in sorted(rule.arguments):
        converter = rule._converters[name]  # private, but the only way to read any()'s items
        options = sorted(converter.items) if isinstance(converter, AnyConverter) else [values[name]]
        choices = [{**c, name: o} for c in choices for o in options]
    adapter = app.url_map.bind("kabootar.test")
    return sorted({adapter.build(rule.endpoint, c) for c in choices})


def routes(app: Flask, method: str) -> Iterator[Rule]:
    return (r for r in app.url_map.iter_rules() if method in (r.methods or ()))


def csp_of(response: Response) -> dict[str, list[str]]:
    policy = response.headers.get("Content-Security-Policy", "")
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


def assert_secure(response: Response, what: object) -> None:
    """The headers every response carries, and nothing inline a strict CSP would block."""
    for name, value in SECURE.items():
        assert response.headers.get(name) == value, (what, name, response.headers.get(name))
    csp = csp_of(response)
    default = csp.get("default-src")
    assert csp.get("script-src", default) == ["'self'"], (what, csp)
    assert "'unsafe-inline'" not in str(csp) and "'unsafe-eval'" not in str(csp), (what, csp)
    assert csp.get("frame-ancestors") == ["'none'"], (what, csp)
    assert csp.get("object-src", default) == ["'none'"], (what, csp)
    assert csp.get("base-uri") in (["'none'"], ["'self'"]), (what, csp)
    assert csp.get("form-action") == ["'self'"], (what, csp)
    if response.mimetype != "text/html":
        return
    html = response.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), (what, "inline script")
    assert not re.search(r"<[a-zA-Z][^>]*\s(style|on[a-z]+)\s*=", html), (what, "inline style or handler")
    assert "javascript:" not in html.lower(), what
    for block in re.findall(r"<style>(.*?)</style>", html, re.S):
        assert security.style_hash(block) in csp.get("style-src", []), (what, "unhashed <style>")


def redis_state(app: Flask) -> dict[bytes, bytes]:
    """Every key's serialized value, but the rate counters (a refused request still counts)
    and RQ's liveness keys (a worker or scheduler of another test may still beat)."""
    raw: Redis = app.extensions["kabootar"].rq_redis
    rate = keys.web_reply_rate("*", "*").replace("*", ".*")
    skip = re.compile(f"{rate}|rq:(scheduler|worker|maintenance).*".encode())  # scheduler-lock:… too
    return {k: raw.dump(k) for k in raw.scan_iter() if not skip.fullmatch(k)}  # type: ignore[misc]


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


@pytest.fixture
def sample(twilio: Twilio, drain, redis: Redis) -> dict[str, str]:
    """A post by a texter with a tag, so the feed's routes have something to show."""
    twilio.text(sender=TEXTER, body="the square is full #tehran")
    drain()
    [post] = posts.page(redis, keys.TIMELINE_ALL, None, 1)[0]
    assert post.handle
    return {
        "post_id": str(post.id),
        "handle": post.handle,
        "tag": "tehran",
        "job_id": "abc",
        "name": "android",
        "key": "A" * 24,  # a block, by the keyed hash of its number
        "history_id": f"in-{redis.hget(keys.post(post.id), 'sid')}",  # the text's timeline
    }


@pytest.fixture
def operator(app: Flask, redis: Redis) -> FlaskClient:
    accounts.add_user(redis, "ana", PASSWORD)
    client = app.test_client()
    assert log_in(client).status_code == 303
    return client


# ---------------------------------------------------------------- who may see the console


def test_every_console_route_and_metrics_refuse_anonymous_visitors(app: Flask, client, sample, redis):
    checked = 0
    wrong = basic("ana", "not the password")
    accounts.add_user(redis, "ana", PASSWORD)
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/ops") or rule.rule == "/metrics") or rule.endpoint in PUBLIC_CONSOLE:
            continue
        for path in paths(app, rule, **sample):
            for method in sorted(set(rule.methods or ()) - {"HEAD", "OPTIONS"}):
                for headers in ({}, wrong):
                    response = client.open(path, method=method, headers=headers)
                    body = response.get_data(as_text=True)
                    if response.status_code == 303:
                        assert response.headers["Location"].startswith("/ops/login"), (method, path)
                    else:  # 429: wrong passwords made this address wait
                        assert response.status_code in (401, 429), (method, path, response.status_code)
                    assert "kabootar_" not in body and "queues" not in body, (method, path)
                    checked += 1
    assert checked >= 24
    # Making the guesser above wait never opened anything either.
    assert client.get("/ops/api/health").status_code == 401


def test_metrics_public_opens_metrics_and_nothing_else(config, runtime):
    app = create_app(replace(config, metrics_public=True), {"TESTING": True})
    client = app.test_client()
    assert client.get("/metrics").status_code == 200
    assert client.get("/ops/api/health").status_code == 401
    assert client.get("/ops").status_code == 303


def test_dev_and_simulator_routes_exist_only_without_twilio_credentials(config, runtime):
    simulated = {r.rule for r in create_app(config, {"TESTING": True}).url_map.iter_rules()}
    real = {r.rule for r in create_app(real_twilio(config), {"TESTING": True}).url_map.iter_rules()}
    assert any(r.startswith("/dev/") for r in simulated)
    assert not [r for r in real if r.startswith("/dev")]


# ---------------------------------------------------------------- CSRF on every POST


def test_every_post_route_is_protected_by_a_token_a_signature_or_basic_auth(app: Flask):
    known = CSRF_FORMS | SIGNED_BY_TWILIO | SIGNED_BY_THE_PHONE | SIMULATOR_API
    unknown = [
        r.endpoint
        for r in routes(app, "POST")
        if not r.endpoint.startswith(("ops.", *SIMULATOR_HOOKS)) and r.endpoint not in known
    ]
    assert unknown == [], "say what protects these POST routes (and test it here)"


@pytest.mark.parametrize("token", ["missing", "forged", "another session's"])
def test_every_form_post_refuses_a_missing_or_foreign_csrf_token(app: Flask, operator, sample, token):
    stranger = app.test_client()
    stolen = csrf_of(stranger.get("/ops/login").get_data(as_text=True))
    values = {"missing": None, "forged": "forged.token.value", "another session's": stolen}
    operator.get(f"/posts/{sample['post_id']}")  # the reader's own session has a token
    form = {"post_id": sample["post_id"], "handle": sample["handle"], "name": "x", "body": "forged"}
    form |= {"number": TEXTER, "password": PASSWORD} | (
        {"csrf_token": values[token]} if values[token] else {}
    )
    checked = []
    for rule in routes(app, "POST"):
        if not (rule.endpoint.startswith("ops.") or rule.endpoint in CSRF_FORMS):
            continue
        for path in paths(app, rule, **sample):
            before = redis_state(app)
            response = operator.post(path, data=form)
            assert response.status_code == 400, (path, response.status_code)
            assert "reload the page" in response.get_data(as_text=True).lower(), path
            assert redis_state(app) == before, f"{path} changed data without a valid token"
            checked.append(path)
    assert len(checked) >= 12 and "/ops/logout" in checked and "/dev/phone/send" in checked
    assert operator.get("/ops").status_code == 200  # still logged in: the logout was refused too


def test_twilio_webhooks_refuse_unsigned_and_missigned_requests(app: Flask, client, twilio: Twilio, redis):
    form = twilio.form(body="forged")
    for rule in routes(app, "POST"):
        if rule.endpoint not in SIGNED_BY_TWILIO:
            continue
        for signature in ("", "bm90IGEgc2lnbmF0dXJl", twilio.signer.sign("/elsewhere", form)):
            assert twilio.post(form, path=rule.rule, signature=signature).status_code == 403
    assert redis.llen(keys.INBOX) == 0


def test_the_phones_webhook_refuses_unsigned_missigned_and_stale_requests(app: Flask, client, config, redis):
    body = android_sim.body("sms:received", {"messageId": "m1", "message": "forged", "sender": TEXTER})
    now = str(int(time.time()))
    good = android.sign(config.android_webhook_signing_key, body, now)
    stale = str(int(time.time()) - 301)
    attempts = {
        "no signature": {},
        "garbage": {"X-Timestamp": now, "X-Signature": "bm90IGEgc2lnbmF0dXJl"},
        "another key": {"X-Timestamp": now, "X-Signature": android.sign("not the key", body, now)},
        "another time": {"X-Timestamp": str(int(now) + 1), "X-Signature": good},
        "stale": {
            "X-Timestamp": stale,
            "X-Signature": android.sign(config.android_webhook_signing_key, body, stale),
        },
    }
    [rule] = [r for r in routes(app, "POST") if r.endpoint in SIGNED_BY_THE_PHONE]
    for what, headers in attempts.items():
        response = client.post(rule.rule, data=body, headers={"Content-Type": "application/json", **headers})
        assert response.status_code == 403, what
    assert redis.llen(keys.INBOX) == 0


def test_the_simulators_api_refuses_requests_without_its_credentials(app: Flask, client, config):
    form = {"To": TEXTER, "From": config.twilio_from or "", "Body": "x"}
    [rule] = [r for r in routes(app, "POST") if r.endpoint == "twilio_simulator.create_message"]
    path = paths(app, rule, account_sid=config.twilio_account_sid)[0]
    for headers in (
        {},
        basic(config.twilio_account_sid, "wrong"),
        basic("AC" + "9" * 32, config.twilio_auth_token),
    ):
        assert client.post(path, data=form, headers=headers).status_code == 401


# ---------------------------------------------------------------- security headers everywhere


@pytest.mark.parametrize("twilio_mode", ["simulator", "real Twilio"])
def test_every_get_route_carries_the_security_headers(config, runtime, sample, redis, twilio_mode):
    app = create_app(config if twilio_mode == "simulator" else real_twilio(config), {"TESTING": True})
    accounts.add_user(redis, "ana", PASSWORD)
    operator = app.test_client()
    log_in(operator)
    statuses: Counter[int] = Counter()
    for rule in routes(app, "GET"):
        for path in paths(app, rule, filename=STATIC_FILES.get(rule.endpoint, "x"), **sample):
            for who, client in (("anonymous", app.test_client()), ("operator", operator)):
                with client.get(path) as response:
                    assert_secure(response, (who, path, response.status_code))
                    statuses[response.status_code] += 1
    assert statuses[200] >= 20 and statuses[303] and statuses[401] and statuses[404]


def test_error_pages_carry_the_security_headers(app: Flask, client, twilio: Twilio, sample, monkeypatch):
    monkeypatch.setattr(web_replies, "clock", lambda: 1_800_000_000.0)  # one minute throughout
    post = f"/posts/{sample['post_id']}"
    cases = {
        404: client.get("/no/such/page"),
        405: client.get("/twilio/sms"),
        400: client.get("/?before=not-a-cursor"),
        403: twilio.post(twilio.form(), signature="wrong"),
        413: client.post(f"{post}/replies", data={"body": "x" * 70_000, "name": "big"}),
    }
    for _ in range(web_replies.REPLIES_PER_MINUTE + 1):
        cases[429] = client.post(f"{post}/replies", data={"name": "x", "body": "y"})
    for status, response in cases.items():
        assert response.status_code == status, (status, response.status_code)
        assert_secure(response, status)
    assert "Too many requests" in cases[429].get_data(as_text=True)


def test_server_errors_carry_the_security_headers(config, runtime, sample):
    app = create_app(config, {"TESTING": True, "PROPAGATE_EXCEPTIONS": False})
    redis = app.extensions["kabootar"].redis
    redis.connection_pool.reset()
    redis.connection_pool.connection_kwargs["port"] = 1  # Redis is gone: nothing listens there
    client = app.test_client()
    for path in ("/", f"/posts/{sample['post_id']}", "/api/v1/posts", "/feed.atom", "/readyz"):
        response = client.get(path)
        assert response.status_code in (500, 503), path
        assert_secure(response, path)


def test_twilios_webhooks_answered_before_flask_carry_the_security_headers(twilio: Twilio, sample):
    """Ordinary texts and delivery reports are answered in webhook_wsgi.py, not by Flask."""
    text = twilio.text(body="a second text")
    report = {"MessageSid": "SM" + "ab" * 16, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    delivered = twilio.post(report, path="/twilio/status?m=0123abcd")
    for what, response in (("text", text), ("status callback", delivered)):
        assert response.status_code == 200, what
        assert_secure(response, what)
    assert text.mimetype == "application/xml" and delivered.get_data() == b""


# ---------------------------------------------------------------- abuse: the reply form


def reply(client: FlaskClient, post_id: str, body: str, **environ: str) -> Response:
    page = client.get(f"/posts/{post_id}", environ_base=environ).get_data(as_text=True)
    data = {"name": "Reader", "body": body, "csrf_token": csrf_of(page)}
    return client.post(f"/posts/{post_id}/replies", data=data, environ_base=environ)


def test_a_reply_flood_gets_429_until_the_minute_passes(client, sample, redis, monkeypatch, report):
    now = [1_800_000_000.0]  # the start of a minute
    monkeypatch.setattr(web_replies, "clock", lambda: now[0])
    post_id = sample["post_id"]
    statuses = Counter(reply(client, post_id, f"flood {n}").status_code for n in range(30))
    report("injected", "30 replies from one address within one minute")
    report("counted", f"{statuses[303]} posted, {statuses[429]} answered 429")
    assert statuses == {303: web_replies.REPLIES_PER_MINUTE, 429: 30 - web_replies.REPLIES_PER_MINUTE}

    refused = reply(client, post_id, "one more")
    assert "Too many replies from your address" in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    # A made-up X-Forwarded-For is no new address: no proxy is configured.
    assert reply(client, post_id, "spoofed", HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429
    assert reply(client, post_id, "another reader", REMOTE_ADDR="192.0.2.7").status_code == 303

    now[0] += 60
    assert reply(client, post_id, "a minute later").status_code == 303
    assert len(posts.replies_to(redis, int(post_id))) == web_replies.REPLIES_PER_MINUTE + 2
    report("counted", "after the minute: the same address may reply again")


# ---------------------------------------------------------------- abuse: /ops/login


def test_guessing_many_names_from_one_address_makes_that_address_wait(app: Flask, redis, report, login_clock):
    # Changed with issue 13: the address waits (doubling) instead of being locked for 15 minutes.
    accounts.add_user(redis, "ana", PASSWORD)
    guesser = app.test_client()
    guesser.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    statuses = Counter()
    for n in range(30):
        # A new name each time, and a new made-up X-Forwarded-For: neither helps.
        headers = {"X-Forwarded-For": f"198.51.100.{n}"}
        statuses[log_in(guesser, name=f"admin{n}", password="guess", headers=headers).status_code] += 1
    report("injected", "30 logins from one address, 30 different names, 30 forged X-Forwarded-For")
    report("counted", f"{statuses[401]} answered 401, {statuses[429]} answered 429 (wait)")
    assert statuses == {401: backoff.ADDR_FREE + 1, 429: 30 - backoff.ADDR_FREE - 1}
    assert log_in(guesser).status_code == 429  # a real operator's password, from that address
    assert log_in(app.test_client()).status_code == 303  # ana, from her own address
    assert not [k for k in redis.scan_iter() if "198.51.100." in k]  # forged addresses not even stored


def test_behind_a_configured_proxy_each_forwarded_client_is_counted_apart(
    config, runtime, redis, report, login_clock
):
    app = create_app(replace(config, trusted_proxies=1), {"TESTING": True})
    accounts.add_user(redis, "ana", PASSWORD)

    def via_proxy(forwarded: str) -> FlaskClient:
        client = app.test_client()
        client.environ_base.update(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
        return client

    guesser = via_proxy("203.0.113.9")
    for n in range(backoff.ADDR_FREE + 1):
        log_in(guesser, name=f"admin{n}", password="guess")
    assert log_in(guesser).status_code == 429
    # The client wrote the left entry, the proxy appended the right one: only that counts.
    assert log_in(via_proxy("192.0.2.1, 203.0.113.9"), name="root", password="x").status_code == 429
    assert log_in(via_proxy("198.51.100.4")).status_code == 303  # ana, behind the same proxy
    report("counted", "behind TRUSTED_PROXIES=1: the guesser waits, another reader of the same proxy not")


# ---------------------------------------------------------------- abuse: replayed webhooks


def test_a_replayed_webhook_makes_one_post(app: Flask, twilio: Twilio, drain, redis, report):
    form = twilio.form(body="said once")
    signature = twilio.signer.sign("/twilio/sms", form)
    statuses = Counter(twilio.post(form, signature=signature).status_code for _ in range(10))
    drain()
    bodies = [p.body for p in posts.page(redis, keys.TIMELINE_ALL, None, 50)[0]]
    report("injected", "the same signed webhook 10 times")
    report("counted", f"{statuses[200]} answered 200, {bodies.count('said once')} post")
    assert statuses == {200: 10} and bodies == ["said once"]


@pytest.mark.e2e
@pytest.mark.fault
def test_replays_racing_against_a_real_web_process_make_one_post_each(
    redis_server: str, redis: Redis, processes, tmp_path: Path, report
):
    # `redis` before `processes`: the processes stop before the data is flushed.
    gateway = start_gateway(redis_server, processes, tmp_path / "var")
    texts = [(f"SM{uuid.uuid4().hex}", f"replayed text {n}") for n in range(5)]
    requests = []
    for sid, body in texts:
        form = {
            "MessageSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": TEXTER,
            "To": "+15005550006",
            "Body": body,
        }
        data = urllib.parse.urlencode(form).encode()  # the same bytes and signature every time
        requests.append((data, gateway.signer.sign("/twilio/sms", form)))
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + 60

    def replay(worker: int) -> None:
        for n in range(40):
            data, signature = requests[(worker + n) % len(requests)]
            request = urllib.request.Request(
                gateway.base + "/twilio/sms", data=data, headers={"X-Twilio-Signature": signature}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as e:
                status = e.code
            with lock:
                statuses[status] += 1
            if time.monotonic() > deadline:
                return

    threads = [threading.Thread(target=replay, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not any(t.is_alive() for t in threads)
    assert gateway.text(TEXTER, "after the storm") == 200
    feed = gateway.wait_for_posts(len(texts) + 1, timeout=30)
    time.sleep(1)  # anything a duplicate could still make would land by now
    feed = gateway.feed()
    made = Counter(p["body"] for p in feed)
    report(
        "injected", f"{sum(statuses.values())} webhooks: 5 signed texts, each replayed by 8 threads at once"
    )
    report("counted", f"answers {dict(statuses)}; posts per text {sorted(made.values())}")
    assert statuses == {200: 8 * 40}
    assert made == Counter({body: 1 for _, body in texts} | {"after the storm": 1})
