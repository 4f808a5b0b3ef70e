"""Failed SMS sent again by filter, from the message history: a dry run first (how many,
to how many recipients, how many skipped), then the confirm; recipients who opted out since
are skipped, and the action is in the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.ops import accounts
from tests.phones import ALI, REZA, SARA, Phones, phones_on
from tests.test_ops import PASSWORD, csrf_of, log_in

FILTER = {"direction": "out", "outcome": "failed", "provider": "twilio"}


@pytest.fixture
def phones(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    with phones_on(redis_server, tmp_path) as found:
        yield found


def test_failed_sms_are_sent_again_by_filter_but_not_to_whoever_opted_out(phones: Phones):
    for number, handle in ((ALI, "ali"), (SARA, "sara"), (REZA, "reza")):
        phones.join(number, handle)
    phones.live.control("fail", code="21211", count="3")  # Twilio refuses the next three
    for number in (ALI, SARA, REZA):
        assert phones.say(number, "STATS") == []
    phones.say(SARA, "STOP")  # Sara opts out after her answer failed
    saras = phones.received(SARA)

    accounts.add_user(phones.redis, "ana", PASSWORD)
    client = phones.live.app.test_client()
    log_in(client)
    history = client.get("/ops/messages", query_string=FILTER).get_data(as_text=True)
    assert 'id="retry-these"' in history  # the way from the history to the dry run
    preview = client.get("/ops/bulk/sms", query_string=FILTER)
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert (
        "This will send <b>2</b> SMS again to 2 recipients; 1 are to recipients who opted out,"
        " paused or were forgotten and will be skipped." in page
    )
    phones.run()
    assert all("posts" not in body.lower() for body in phones.received(ALI)[-1:])  # the dry run sent nothing

    form = FILTER | {"previewed": "2", "csrf_token": csrf_of(page)}
    assert client.post("/ops/api/bulk/sms/retry", data=form).status_code == 303
    console = client.get("/ops").get_data(as_text=True)
    assert "Queued 2 failed SMS again; skipped 1 whose recipients do not receive SMS now." in console
    phones.live.send_all()  # as the workers do once the watchdog finds them due
    for number in (ALI, REZA):
        assert "posts" in phones.received(number)[-1].lower(), phones.received(number)  # STATS answered
    assert phones.received(SARA) == saras  # she opted out: nothing more

    audit_row = console[console.index('<section id="audit"') :].split("</tr>")[1]
    for seen in ("ana", "send failed SMS again", "provider: twilio", "outcome: failed", ">2<"):
        assert seen in audit_row, (seen, audit_row)
    again = client.get("/ops/bulk/sms", query_string=FILTER).get_data(as_text=True)
    assert "This will send <b>0</b> SMS again" in again and "Send 0" not in again  # only Sara's is left


@pytest.mark.parametrize(
    ("query", "says"),
    [({"outcome": "delivered"}, "only those are sent again"), ({"since": "yesterday"}, "since=")],
)
def test_a_retry_filter_that_cannot_be_used_is_refused_with_a_reason(phones: Phones, query, says):
    accounts.add_user(phones.redis, "ana", PASSWORD)
    client = phones.live.app.test_client()
    log_in(client)
    response = client.get("/ops/bulk/sms", query_string=query)
    assert response.status_code == 400 and says in response.get_data(as_text=True)
    assert client.post("/ops/api/bulk/sms/retry", data=query).status_code == 400  # no CSRF token either
