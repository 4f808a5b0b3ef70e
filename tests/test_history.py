"""The message history (/ops/messages, its JSON and exports): what an operator finds, how it
pages, what it refuses, and what it never shows or keeps."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis

from gateway.config import Config, ConfigError
from gateway.ops import accounts, export, filters, history
from gateway.store import history as stored
from gateway.store import keys
from tests.conftest import Twilio
from tests.phones import ALI, REZA, SARA, Phones, phones_on
from tests.simulated import wait_until
from tests.test_ops import PASSWORD, log_in

NUMBER_DIGITS = ("9121234567", "9351112233", "4155550123")  # ALI's, SARA's, REZA's


@pytest.fixture
def phones(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    with phones_on(redis_server, tmp_path) as found:
        yield found


def console(phones: Phones) -> FlaskClient:
    """An operator logged in to the live gateway's console."""
    accounts.add_user(phones.redis, "ana", PASSWORD)
    client = phones.live.app.test_client()
    assert log_in(client).status_code == 303
    return client


def api(client: FlaskClient, **query: str) -> dict:
    response = client.get("/ops/api/messages", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def no_number_in(text: str) -> None:
    for digits in NUMBER_DIGITS:
        assert digits not in text and digits[-7:] not in text


def delivered(client: FlaskClient, handle: str, text: str) -> None:
    """Wait until the simulator's delivery report of the SMS to `handle` holding `text` landed."""
    wait_until(lambda: api(client, handle=handle, outcome="delivered", q=text)["rows"] != [], timeout=10)


def test_operator_finds_a_post_by_handle_and_its_timeline_shows_each_step(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(SARA, "FOLLOW @ali")
    phones.say(ALI, "the square is full")
    client = console(phones)
    delivered(client, "sara", "the square is full")

    rows = api(client, handle="@ali", direction="in")["rows"]
    assert [r["text"] for r in rows] == ["the square is full", "hello, ali here"]
    post = rows[0]
    assert post["handle"] == "ali" and post["country"] == "+98" and post["provider"] == "twilio"
    assert post["outcome"] == "post"

    page = client.get(f"/ops/messages/{post['id']}").get_data(as_text=True)
    for step in ("received", "stored", "processed", "became post #", "sent", "delivered"):
        assert step in page, step
    assert "to @sara" in page  # the fan-out SMS, with its own steps
    no_number_in(page)

    sms = api(client, handle="sara", direction="out", q="the square")["rows"]
    assert [(r["kind"], r["outcome"], r["provider"]) for r in sms] == [("post", "delivered", "twilio")]
    assert sms[0]["country"] == "+98"  # the recipient's country code: all a row shows of a number
    sms_page = client.get(f"/ops/messages/{sms[0]['id']}").get_data(as_text=True)
    assert f"/ops/messages/{post['id']}" in sms_page  # back to the text that caused it


def test_failed_sms_are_found_by_outcome_and_provider(phones: Phones):
    phones.join(ALI, "ali")
    phones.live.control("fail", code="21211")  # Twilio: the number is not valid
    phones.say(ALI, "STATS")
    client = console(phones)
    [failed] = api(client, outcome="failed", provider="twilio")["rows"]
    assert (failed["handle"], failed["kind"], failed["direction"]) == ("ali", "answer", "out")
    assert "invalid_number" in failed["detail"] and "21211" in failed["detail"]
    assert api(client, outcome="failed", provider="android")["rows"] == []
    wait_until(lambda: api(client, outcome="delivered", handle="ali")["rows"] != [])  # the welcome
    timeline = client.get(f"/ops/messages/{failed['id']}").get_data(as_text=True)
    assert "failed" in timeline and "invalid_number" in timeline


def test_an_sms_the_provider_refused_once_is_found_as_retried_and_then_delivered(phones: Phones):
    phones.join(ALI, "ali")
    phones.live.control("fail", status="429")  # Twilio: too many requests, once
    phones.say(ALI, "STATS")
    client = console(phones)
    wait_until(lambda: api(client, outcome="retry", handle="ali")["rows"] != [])
    [retried] = api(client, outcome="retry")["rows"]
    assert retried["kind"] == "answer" and "retried 1×" in retried["detail"]
    wait_until(lambda: api(client, outcome="retry")["rows"][0]["outcome"] == "delivered", timeout=10)
    timeline = client.get(f"/ops/messages/{retried['id']}").get_data(as_text=True)
    assert "retried" in timeline and "delivered" in timeline


def test_direct_message_text_is_never_shown(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(ALI, "D @sara meet at the bakery")
    client = console(phones)
    everything = json.dumps(api(client, limit="200"))
    assert "bakery" not in everything and history.DM_HIDDEN in everything
    assert api(client, q="bakery")["rows"] == []
    export = client.get("/ops/messages.csv").get_data(as_text=True)
    assert "bakery" not in export
    no_number_in(everything + export)


def test_forget_me_erases_the_texters_history(phones: Phones):
    ali = phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(ALI, "a post of mine")
    sid = phones.text(ALI, "FORGET ME")
    phones.run()
    phones.say(ALI, "YES")
    client = console(phones)
    assert api(client, handle="ali")["rows"] == []
    rows = api(client, limit="200")["rows"]
    assert {r["handle"] for r in rows} == {"sara"}  # ali's texts and SMS are gone, sara's stay
    assert "hello, sara here" in [r["text"] for r in rows]
    assert not phones.redis.exists(keys.history_inbound(sid))
    indexes = list(phones.redis.scan_iter(keys.history_index(0, "*").replace(":0:", ":*:")))
    assert not [k for k in indexes if k.endswith(f":h:{ali}")]
    members = {str(m) for key in indexes for m in phones.redis.zrange(key, 0, -1)}
    assert stored.inbound_id(sid) not in members


def test_delete_erases_the_posts_history(phones: Phones):
    phones.join(ALI, "ali")
    sid = phones.text(ALI, "a post I regret")
    phones.run()
    phones.say(ALI, "DELETE")
    client = console(phones)
    texts = [r["text"] for r in api(client, handle="ali", direction="in")["rows"]]
    assert "a post I regret" not in texts and "DELETE" in texts
    assert not phones.redis.exists(keys.history_inbound(sid))


# Fast: the webhook and the drain only (no SMS leave), through the Flask test client.


@pytest.fixture
def operator(client: FlaskClient, redis: Redis) -> FlaskClient:
    accounts.add_user(redis, "ana", PASSWORD)
    assert log_in(client).status_code == 303
    return client


def test_pages_go_back_in_time_with_cursors_and_never_repeat(twilio: Twilio, drain, operator: FlaskClient):
    for n in range(7):
        assert twilio.text(sender=REZA, body=f"report {n}").status_code == 200
    drain()
    seen, query = [], {"direction": "in", "limit": "3"}
    while True:
        page = api(operator, **query)
        seen.append([r["text"] for r in page["rows"]])
        if not page["next"]:
            break
        query["cursor"] = page["next"]
    flat = [t for texts in seen for t in texts]
    assert flat == [f"report {n}" for n in reversed(range(7))]
    assert [len(texts) for texts in seen][:3] == [3, 3, 1]


def test_the_page_works_without_javascript_and_marks_text_direction(
    twilio: Twilio, drain, operator: FlaskClient
):
    twilio.text(sender=ALI, body="خیابان‌ها شلوغ است")
    twilio.text(sender=SARA, body="<script>alert(1)</script>")
    drain()
    page = operator.get("/ops/messages?direction=in").get_data(as_text=True)
    assert '<td class="text" dir="auto">خیابان‌ها شلوغ است</td>' in page
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'id="export-csv"' in page and "4 messages at most" in page  # two texts, two welcomes
    no_number_in(page)


def test_a_search_that_finds_little_continues_page_by_page(twilio: Twilio, drain, redis: Redis, runtime):
    for n in range(12):
        twilio.text(sender=REZA, body="needle" if n == 0 else f"hay {n}")
    drain()
    f = filters.parse({"q": "needle", "direction": "in"}, runtime.config.history_days)
    pages: list[history.Page] = []
    while True:
        pages.append(history.page(redis, f, budget=5))  # 5 candidates a page at most
        if not pages[-1].next:
            break
        at, _, member = pages[-1].next.partition("~")
        f = replace(f, cursor=(int(at), member))
    assert [r.text for p in pages for r in p.rows] == ["needle"]  # the oldest of the 12
    assert len(pages) >= 3 and all(p.partial for p in pages[:-1]) and not pages[-1].partial


@pytest.mark.parametrize(
    "query, says",
    [
        ({"cursor": "nonsense"}, "cursor"),
        ({"since": "2026-12-07T10:00", "until": "2026-12-07T09:00"}, "later than until"),
        ({"outcome": "exploded"}, "outcome"),
        ({"q": "x" * 101}, "at most 100"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"direction": "sideways"}, "direction"),
        ({"provider": "pigeon"}, "provider"),
        ({"since": "yesterday"}, "since"),
        ({"handle": "h" * 41}, "handle"),
    ],
    ids=["cursor", "since-after-until", "outcome", "long-q", "limit-0", "limit-huge", "direction",
         "provider", "since-words", "long-handle"],
)  # fmt: skip
def test_bad_filters_get_a_400_that_says_why(operator: FlaskClient, query: dict[str, str], says: str):
    for path in ("/ops/api/messages", "/ops/messages", "/ops/messages.csv", "/ops/messages.json"):
        response = operator.get(path, query_string=query)
        assert response.status_code == 400, path
        assert says in response.get_data(as_text=True), path


def test_every_history_route_needs_a_login(client: FlaskClient):
    for path in ("/ops/messages", "/ops/messages.csv", "/ops/messages.json", "/ops/messages/in-SM1"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["Location"].startswith("/ops/login"), path
    assert client.get("/ops/api/messages").status_code == 401


def test_an_unknown_message_is_a_404(operator: FlaskClient):
    assert operator.get("/ops/messages/in-SMnothing").status_code == 404
    assert operator.get("/ops/messages/..%2Fsecret").status_code == 404


def test_exports_hold_the_filtered_rows_and_say_how_many_at_most(
    twilio: Twilio, drain, operator: FlaskClient
):
    twilio.text(sender=ALI, body='=HYPERLINK("http://evil")')
    twilio.text(sender=SARA, body="calm here")
    twilio.text(sender=REZA, body="calm there")
    drain()
    calm = {"q": "calm", "direction": "in"}
    response = operator.get("/ops/messages.csv", query_string=calm)
    assert response.status_code == 200
    assert int(response.headers["X-Rows-At-Most"]) >= 2  # an upper bound: the texts' welcomes count
    assert response.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted(r["text"] for r in rows) == ["calm here", "calm there"]
    assert {r["direction"] for r in rows} == {"in"}
    everything = operator.get("/ops/messages.csv").get_data(as_text=True)
    assert "'=HYPERLINK" in everything  # a spreadsheet shows it, never runs it
    no_number_in(everything)
    exported = json.loads(operator.get("/ops/messages.json", query_string=calm).get_data(as_text=True))
    assert exported["count_at_most"] == int(response.headers["X-Rows-At-Most"]) and exported["next"] is None
    assert sorted(r["text"] for r in exported["rows"]) == ["calm here", "calm there"]


def test_a_capped_export_ends_with_the_cursor_that_resumes_it(twilio: Twilio, drain, redis: Redis, runtime):
    for n in range(5):
        twilio.text(sender=REZA, body=f"report {n}")
    drain()
    f = filters.parse({"direction": "in"}, runtime.config.history_days)
    *first, (end, cursor) = export.rows(redis, f, cap=3)
    assert end is None and cursor
    at, _, member = cursor.partition("~")
    *rest, (_, last) = export.rows(redis, replace(f, cursor=(int(at), member)), cap=3)
    texts = [r.text for r, _ in first + rest if r is not None]
    assert texts == [f"report {n}" for n in reversed(range(5))] and last is None


def test_history_keys_expire_with_the_retention(twilio: Twilio, drain, redis: Redis, runtime):
    twilio.text(sender=ALI, body="kept a while")
    drain()
    days = runtime.config.history_days
    index = stored.index(time.time(), stored.ALL)
    ttl = redis.ttl(index)
    assert (days * 86400) < ttl <= (days + 1) * 86400
    [sid] = [m.removeprefix("in-") for m in redis.zrange(index, 0, -1) if m.startswith("in-")]
    assert 0 < redis.ttl(keys.history_inbound(sid)) <= (days + 1) * 86400


@pytest.mark.parametrize("raw", ["0", "15", "seven"])
def test_history_days_outside_one_to_fourteen_is_refused(raw: str):
    with pytest.raises(ConfigError, match="HISTORY_DAYS"):
        Config.from_env({"HISTORY_DAYS": raw})
    assert Config.from_env({}).history_days == 7
