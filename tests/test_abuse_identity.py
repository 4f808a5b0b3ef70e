"""Issue 13, identity: who a texter is (one number, whatever the channel prefix), blocks that
hold through FORGET ME, handles that cannot pass for another's, and logs that show almost
nothing of a number.

Each test does what the attacker or the texter did, through the signed webhooks, real
workers, the simulated providers and the console's own forms, and checks what a person
would notice: the HTTP status, the SMS on their phone, the public feed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis

from gateway import phones
from gateway.commands import words as command_words
from gateway.microblog import handles
from gateway.ops import accounts
from gateway.providers.simulated import handsets
from gateway.runtime import Runtime
from gateway.store import keys
from tests.conftest import Twilio
from tests.phones import ALI, REZA, SARA, Phones, phones_on
from tests.test_ops import PASSWORD, csrf_of, log_in, work

JONAS = "+4915112345678"
HELD = "Kabootar could not take your text."
STATS_ONE_POST = "Followers: 0. Following: 0 people, 0 tags. Posts: 1."


@pytest.fixture
def texters(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    with phones_on(redis_server, tmp_path) as p:
        yield p


class Console:
    """An operator using the console's forms on the live gateway."""

    def __init__(self, texters: Phones) -> None:
        accounts.add_user(texters.redis, "ana", PASSWORD)
        self.client = texters.live.app.test_client()
        assert log_in(self.client).status_code == 303
        self.page = self.client.get("/ops").get_data(as_text=True)
        self.token = csrf_of(self.page)

    def post(self, path: str, **form: str | list[str]) -> str:
        response = self.client.post(path, data={**form, "csrf_token": self.token}, follow_redirects=True)
        return response.get_data(as_text=True)

    def block(self, handle: str, hide_posts: bool = True) -> str:
        """The block form as the page sends it: a hidden "0", then the checkbox's "1" if ticked."""
        return self.post("/ops/api/handles/block", handle=handle, hide=["0", "1"] if hide_posts else ["0"])

    def blocks(self) -> list[dict[str, object]]:
        health = self.client.get("/ops/api/health").get_json()
        found: list[dict[str, object]] = health["moderation"]["blocked"]
        return found


def feed(client: FlaskClient) -> list[str]:
    return [p["body"] for p in client.get("/api/v1/posts").get_json()["posts"]]


# Item 4 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sender",
    ["abc", "+98912\x001234567", "9" * 5000, "+98912abc1234567", "+1-800-FLOWERS", "whatsapp:abc", "+98 912"],
    ids=["letters", "nul-byte", "5000-digits", "letters-inside", "vanity", "whatsapp-no-number", "too-short"],
)
@pytest.mark.parametrize("path", ["fast", "flask"])
def test_abuse_04_a_from_that_is_no_phone_number_is_refused_with_400_and_a_log_without_it(
    twilio: Twilio,
    client: FlaskClient,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
    sender: str,
    path: str,
):
    form = twilio.form(sender=sender, body="hello")
    signature = twilio.signer.sign("/twilio/sms", form)
    headers = {"X-Twilio-Signature": signature}
    with caplog.at_level(logging.INFO):
        if path == "fast":  # urlencoded: read by fast_webhooks.py before Flask
            response = client.post("/twilio/sms", data=form, headers=headers)
        else:  # multipart: the fast path leaves it to the Flask view
            multipart = "multipart/form-data"
            response = client.post("/twilio/sms", data=form, headers=headers, content_type=multipart)
    assert response.status_code == 400
    assert redis.llen(keys.INBOX) == 0
    assert "From is not a phone number" in caplog.text
    assert sender not in caplog.text and "912" not in caplog.text


def test_abuse_04_an_android_sender_that_is_no_phone_number_is_refused(redis_server: str, tmp_path: Path):
    from gateway.providers.android.simulator import phones as android_phones

    with phones_on(redis_server, tmp_path, SMS_PROVIDERS="twilio,android") as p:
        for sender in ("abc\x00", "+1-800-FLOWERS", "+98 912 123 4567 ext. 5"):
            path, data, headers = android_phones.text_webhook(p.live.config, sender, "hello")
            assert p.live.app.test_client().post(path, data=data, headers=headers).status_code == 400
        assert p.redis.llen(keys.INBOX) == 0


def test_abuse_04_whatsapp_and_sms_from_one_number_are_one_texter_answered_the_way_they_came(texters: Phones):
    texters.text(JONAS, "hello from my SMS app")
    texters.run()
    assert texters.say(f"whatsapp:{JONAS}", "STATS") == [STATS_ONE_POST]
    assert texters.redis.get(keys.SUBSCRIBER_SEQ) == "1"  # one texter, not two
    channels = [m["channel"] for m in handsets.inbox_for(texters.redis, JONAS)]
    assert channels == ["twilio", "twilio:whatsapp"]  # the welcome by SMS, the answer on WhatsApp

    texters.say(JONAS, "STATS")
    assert handsets.inbox_for(texters.redis, JONAS)[-1]["channel"] == "twilio"  # back to SMS


# Item 5 ------------------------------------------------------------------------------------


def test_abuse_05_a_blocked_texter_stays_blocked_after_forget_me_and_is_told_once(texters: Phones):
    texters.join(ALI, "ali")
    texters.join(SARA, "sara")
    console = Console(texters)
    assert "@ali is blocked" in console.block("@ali")

    assert texters.say(ALI, "still here") == [HELD]  # one neutral SMS, no word of a block
    for attempt in ("@sara hello", "D @sara psst", "NAME ali-again", "FOLLOW @sara", "BIO hi", "again"):
        assert texters.say(ALI, attempt) == []
    assert texters.received(SARA)[-1:] != ["D @ali: psst"]
    assert texters.say(ALI, "STATS") == [STATS_ONE_POST]  # what a blocked texter may still do

    assert "reply YES" in texters.say(ALI, "FORGET ME")[0]  # it asks first (item 11)
    texters.say(ALI, "YES")
    assert texters.sub_id(ALI) is None
    after = texters.say(ALI, "I am someone new")  # a fresh registration: the welcome, nothing else
    assert len(after) == 1 and after[0].startswith("Welcome to Kabootar! You are @")
    new_handle = after[0].split("@")[1].split(".")[0]
    for attempt in ("D @sara psst", "NAME ali", "FOLLOW @sara", "@sara hi"):
        assert texters.say(ALI, attempt) == []
    assert "I am someone new" not in texters.timeline()
    assert texters.redis.hget(keys.subscriber(texters.sub_id(ALI) or 0), "handle") == new_handle

    [listed] = console.blocks()
    assert listed["handle"] == new_handle  # the block follows the number to its new handle
    assert "unblocked" in console.post(f"/ops/api/blocks/{listed['id']}/unblock")
    assert texters.say(ALI, "free to speak") == []
    assert texters.timeline()[0] == "free to speak"
    assert console.blocks() == []


def test_abuse_05_the_answer_to_forget_me_cannot_carry_a_blocked_texters_dm(texters: Phones):
    texters.join(ALI, "ali")
    texters.join(SARA, "sara")
    Console(texters).block("@ali")
    assert "reply YES" in texters.say(ALI, "FORGET ME")[0]
    for attempt in ("D @sara psst", "FOLLOW @sara", "NAME ali-again"):
        texters.say(ALI, attempt)
    assert "psst" not in " ".join(texters.received(SARA))
    assert texters.redis.hget(keys.subscriber(texters.sub_id(ALI) or 0), "handle") == "ali"


def test_abuse_05_unblocking_a_forgotten_number_from_the_list(texters: Phones):
    texters.join(ALI, "ali")
    console = Console(texters)
    console.block("@ali")
    assert "reply YES" in texters.say(ALI, "FORGET ME")[0]  # it asks first (item 11)
    texters.say(ALI, "YES")
    [listed] = console.blocks()
    assert listed["handle"] == ""  # no handle now, still blocked, still listed
    assert "(no handle: forgotten)" in console.client.get("/ops").get_data(as_text=True)
    console.post(f"/ops/api/blocks/{listed['id']}/unblock")
    texters.say(ALI, "back again")
    assert texters.timeline()[0] == "back again"


# Item 6 ------------------------------------------------------------------------------------

LOOK_ALIKES = [
    "quiet-fa1con-27",  # digit one for l
    "quiet-faIcon-27",  # capital I for l
    "quiet-f\u0430lcon-27",  # Cyrillic а
    "QUIET-FALCON-27",
    "quiet_falcon_27",
    "ｑuiet-falcon-27",  # fullwidth
    "quiet-falc0n-27",  # zero for o
    "quiet-fal\u200bcon-27",  # a zero-width space inside
]


def test_abuse_06_a_handle_that_looks_like_one_in_use_is_taken(texters: Phones):
    texters.join(ALI, "quiet-falcon-27")
    texters.join(SARA, "sara")
    for look_alike in LOOK_ALIKES:
        answer = texters.say(SARA, f"NAME {look_alike}")
        assert len(answer) == 1 and answer[0].endswith("is taken. Try another: NAME newname"), look_alike
    assert texters.say(SARA, "GET @quiet-fa1con-27") == ["@quiet-falcon-27: hello, quiet-falcon-27 here"]


def test_abuse_06_ligatures_and_rn_for_m_are_one_handle():
    assert handles.key("ﬁnch") == handles.key("finch")
    assert handles.key("rnagpie") == handles.key("magpie")
    assert handles.key("w0lf") == handles.key("wolf") == handles.key("WOLF")


RESERVED = [
    "admin",
    "\u0430dmin",
    "adm1n",
    "Admin2",
    "ops",
    "support",
    "kabootar",
    "kabootar-news",
    "the_kabootar",
    "official",
    "help",
    "news",
    "staff",
    "moderator",
    "twilio",
    "forget-me",
    "فراموشم_کن",
    "a\u200bdmin",
]


def test_abuse_06_reserved_words_and_their_look_alikes_are_refused(texters: Phones):
    texters.join(ALI, "ali")
    for word in RESERVED:
        answer = texters.say(ALI, f"NAME {word}")
        assert len(answer) == 1 and answer[0].startswith("A name has 2-30 letters"), word
    assert handles.is_valid("badminton-fan") and handles.is_valid("get-rich")  # no over-reach


def test_abuse_06_every_command_word_in_every_language_is_reserved():
    for by_language in command_words.WORDS.values():
        for word in (w for words in by_language.values() for w in words):
            for written in {word.replace(" ", "-"), word.replace(" ", "_"), word.replace(" ", "")}:
                assert handles.is_reserved(written), written


def test_abuse_06_a_freed_handle_stays_unavailable_to_others_for_30_days(texters: Phones):
    texters.join(ALI, "ali")
    texters.join(SARA, "sara")
    texters.join(REZA, "reza")
    assert texters.say(ALI, "NAME ali-tehran") == ["You are @ali-tehran now."]
    assert texters.say(SARA, "NAME ali") == ["@ali is taken. Try another: NAME newname"]
    assert "reply YES" in texters.say(REZA, "FORGET ME")[0]  # it asks first (item 11)
    texters.say(REZA, "YES")
    assert texters.say(SARA, "NAME reza") == ["@reza is taken. Try another: NAME newname"]
    assert texters.say(SARA, "NAME r\u0435za") == ["@r\u0435za is taken. Try another: NAME newname"]
    assert texters.redis.ttl(handles.hold_key("reza")) > 29.9 * 24 * 3600
    assert "reza" not in " ".join(texters.redis.keys("kb:sub:held:*"))  # not spelled out
    assert texters.say(ALI, "NAME ali") == ["You are @ali now."]  # its owner may take it back

    texters.redis.delete(handles.hold_key("reza"))  # as 30 days later
    assert texters.say(SARA, "NAME reza") == ["You are @reza now."]


def test_abuse_06_one_texter_cannot_hold_any_number_of_handles_by_renaming(texters: Phones):
    texters.join(ALI, "ali")  # NAME ali: the random handle is held, the first of MAX_HELD
    for n in range(1, handles.MAX_HELD):  # each rename holds the name left behind
        assert texters.say(ALI, f"NAME ali{n}") == [f"You are @ali{n} now."]
    assert "too often" in texters.say(ALI, "NAME ali-next")[0]
    assert texters.say(ALI, "NAME ali") == ["You are @ali now."]  # taking one back is fine


def test_abuse_06_bidi_and_zero_width_characters_are_taken_out_of_a_handle(texters: Phones):
    texters.join(ALI, "ali")
    texters.say(ALI, "NAME \u202eali-\u2066tehran\u2069\u200d")
    [sub_id] = [texters.sub_id(ALI)]
    assert texters.redis.hget(keys.subscriber(sub_id or 0), "handle") == "ali-tehran"


# Item 9 ------------------------------------------------------------------------------------


def test_abuse_09_blocking_hides_the_posts_and_unblocking_restores_all_but_those_hidden_one_by_one(
    client: FlaskClient, twilio: Twilio, runtime: Runtime, redis: Redis
):
    for body in ("first", "second", "third"):
        twilio.text(sender=ALI, body=body)
    twilio.text(sender=SARA, body="sara's")
    work(runtime)
    accounts.add_user(redis, "ana", PASSWORD)
    log_in(client)
    page = client.get("/ops").get_data(as_text=True)
    assert '<input type="checkbox" name="hide" value="1" checked>' in page  # hiding is the default
    token = csrf_of(page)
    forged = client.post("/ops/api/handles/block", data={"handle": "@x", "csrf_token": "forged"})
    assert forged.status_code in (400, 403)  # the block form needs its CSRF token, as the others
    [first] = [p for p in client.get("/api/v1/posts").get_json()["posts"] if p["body"] == "first"]
    handle = first["handle"]
    client.post("/ops/api/posts/hide", data={"post_id": str(first["id"]), "csrf_token": token})

    client.post("/ops/api/handles/block", data={"handle": handle, "hide": ["0", "1"], "csrf_token": token})
    assert feed(client) == ["sara's"]
    assert client.get(f"/@{handle}").status_code in (200, 404)
    client.post("/ops/api/handles/unblock", data={"handle": handle, "csrf_token": token})
    assert feed(client) == ["sara's", "third", "second"]  # "first" an operator hid on its own

    client.post("/ops/api/handles/block", data={"handle": handle, "hide": ["0"], "csrf_token": token})
    assert feed(client) == ["sara's", "third", "second"]  # the box unticked: their posts stay up
    twilio.text(sender=ALI, body="while blocked")
    work(runtime)
    assert "while blocked" not in feed(client)


# Item 16 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number, shown",
    [
        ("+989121234567", "+98•••67"),
        ("+14155550123", "+1•••23"),
        ("+4915112345678", "+49•••78"),
        ("09121234567", "•••67"),
        ("12345", "•••"),
    ],
    ids=["iran", "us", "germany", "national", "short-code"],
)
def test_abuse_16_a_masked_number_shows_its_country_code_and_two_digits_at_most(number: str, shown: str):
    assert phones.mask(number) == shown
    if len(number) >= 8:  # what redact takes for a number in free text
        assert phones.redact(f"could not text {number} today") == f"could not text {shown} today"


def test_abuse_16_a_refused_sms_logs_the_number_masked(texters: Phones, caplog: pytest.LogCaptureFixture):
    texters.join(ALI, "ali")
    texters.live.control("fail", code="21211")  # Twilio: "The 'To' number +98912… is not valid"
    with caplog.at_level(logging.INFO):
        texters.say(ALI, "STATS")
    assert "+98•••67" in caplog.text
    assert "912123" not in caplog.text and "1234567" not in caplog.text
