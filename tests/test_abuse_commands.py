"""Issue 13, texters' commands: floods capped (mentions, direct messages, follows, tags), and
commands that do what the texter meant (a command word never makes a post by accident,
FORGET ME asks first, a direct message that cannot be delivered is reported).

Each test texts a live gateway as the texter (or attacker) did, and asserts what a person
holding a phone, or reading the feed, would notice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.commands import confirmation
from gateway.config import Config
from gateway.microblog import account, posts, subscribers
from gateway.ops import settings
from gateway.outbox import outbound
from gateway.providers.twilio.simulator import store as twilio_store
from gateway.store import keys
from tests.phones import ALI, REZA, SARA, Phones, phones_on


@pytest.fixture
def phones(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    with phones_on(redis_server, tmp_path) as p:
        yield p


@pytest.fixture
def strict(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    """A gateway with small limits, so a test reaches them in a few texts."""
    with phones_on(redis_server, tmp_path, DM_PER_HOUR="3", MAX_FOLLOWS="3") as p:
        yield p


def post_by(phones: Phones, sub_id: int, body: str) -> posts.Post:
    [found] = [
        p for p in posts.page(phones.redis, keys.timeline_user(sub_id), None, 100)[0] if p.body == body
    ]
    return found


# ---------------------------------------------------------------- 1: mentions


def test_abuse_01_a_text_with_67_mentions_texts_only_5_of_them(phones: Phones):
    ali = phones.join(ALI, "ali")
    crowd = [f"+98912700{n:04d}" for n in range(67)]
    handles = [subscribers.handle_of(phones.redis, phones.live.subscriber(number)) for number in crowd]
    flood = "look " + " ".join(f"@{h}" for h in handles)

    assert phones.say(ALI, flood) == []  # a post: no answer

    texted = [number for number in crowd if phones.received(number)]
    assert texted == crowd[:5]  # the first five it names
    for number in texted:
        [sms] = phones.received(number)
        assert sms.startswith(f"@ali: look @{handles[0]}")
    post = post_by(phones, ali, flood)
    page = phones.live.app.test_client().get(f"/posts/{post.id}").get_data(as_text=True)
    assert all(f'href="/@{h}"' in page for h in handles)  # every one is still linked on the web
    # ... and those SMS waited in the bulk lane, behind answers to texters' own commands.
    sent = [
        outbound.get(phones.redis, outbound.message_id(f"post:{post.id}", phones.sub_id(n) or 0))
        for n in texted
    ]
    assert {sms.kind for sms in sent if sms} == {"fanout"} and all(sent)


def test_abuse_01_mentions_beyond_the_cap_still_reach_followers_and_a_reply_its_author(phones: Phones):
    ali = phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.join(REZA, "reza")
    crowd = [f"+98912710{n:04d}" for n in range(6)]
    handles = [subscribers.handle_of(phones.redis, phones.live.subscriber(number)) for number in crowd]
    phones.say(REZA, "FOLLOW @ali")
    phones.say(SARA, "my post")

    reply = "@sara " + " ".join(f"@{h}" for h in handles) + " @reza"
    phones.say(ALI, reply)

    assert phones.received(SARA)[-1].startswith("@ali: @sara")  # the replied-to author
    assert [n for n in crowd if phones.received(n)] == crowd[:5]  # five mentions besides her
    assert phones.received(REZA)[-1].startswith("@ali: @sara")  # a follower: mentioned or not
    intent = f"post:{post_by(phones, ali, reply).id}"
    to_sara = outbound.get(phones.redis, outbound.message_id(intent, phones.sub_id(SARA) or 0))
    assert to_sara is not None and to_sara.kind == "direct"  # a reply is a conversation: priority


# ---------------------------------------------------------------- 2: direct messages


def test_abuse_02_a_texter_may_send_dm_per_hour_direct_messages_then_is_told(strict: Phones):
    phones = strict
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    for n in range(3):
        assert phones.say(ALI, f"D @sara message {n}") == ["Sent privately to @sara."]

    assert phones.say(ALI, "D @sara message 3") == [
        "Not sent: you can send 3 private messages an hour. Try again later."
    ]
    assert phones.say(ALI, "پیام @sara سلام") == [
        "فرستاده نشد: در هر ساعت 3 پیام خصوصی می‌توانید بفرستید. بعداً دوباره بفرستید."
    ]
    assert [m for m in phones.received(SARA) if m.startswith("D @ali")] == [
        f"D @ali: message {n}" for n in range(3)
    ]
    assert phones.say(SARA, "D @ali still fine for me") == ["Sent privately to @ali."]  # per texter


def test_abuse_02_a_direct_message_to_yourself_is_refused(phones: Phones):
    phones.join(ALI, "ali")
    assert phones.say(ALI, "D @ALI note to self") == ["You cannot send a private message to yourself."]
    assert not any("note to self" in m for m in phones.received(ALI))


# ---------------------------------------------------------------- 3: follows and tags


def test_abuse_03_follows_are_capped_at_max_follows(strict: Phones):
    phones = strict
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")

    [answer] = phones.say(ALI, "FOLLOW #a #b #c #d")
    assert answer == (
        "You follow #a, #b, #c now: new posts come to you by SMS. "
        "You follow 3 people and tags, the most allowed: UNFOLLOW some first."
    )
    assert phones.say(ALI, "FOLLOW @sara") == [
        "You follow 3 people and tags, the most allowed: UNFOLLOW some first."
    ]
    assert phones.say(ALI, "FOLLOW #b") == ["You follow #b now: new posts come to you by SMS."]  # already
    assert phones.say(ALI, "STATS") == ["Followers: 0. Following: 0 people, 3 tags. Posts: 1."]

    phones.say(ALI, "UNFOLLOW #a")
    assert phones.say(ALI, "FOLLOW @sara") == ["You follow @sara now: new posts come to you by SMS."]


def test_abuse_03_a_tag_over_50_characters_is_neither_indexed_nor_followable(phones: Phones):
    ali = phones.join(ALI, "ali")
    fits, too_long = "y" * 50, "x" * 51
    body = f"news #{fits} #{too_long}"
    phones.say(ALI, body)

    post = post_by(phones, ali, body)
    assert post.tags == [fits]
    client = phones.live.app.test_client()
    assert f"/posts/{post.id}" in client.get(f"/tags/{fits}").get_data(as_text=True)
    assert client.get(f"/api/v1/posts?tag={too_long}").status_code == 404  # no such tag

    [answer] = phones.say(ALI, f"FOLLOW #{too_long}")
    assert answer == f"A #tag has at most 50 characters: #{too_long[:20]}… was not followed."
    assert phones.say(ALI, "STATS")[0].endswith("0 tags. Posts: 2.")


def test_abuse_03_a_post_is_filed_under_at_most_10_tags(phones: Phones):
    ali = phones.join(ALI, "ali")
    body = " ".join(f"#t{n}" for n in range(200))
    before = len(list(phones.redis.scan_iter(keys.timeline_tag("*"))))

    phones.say(ALI, body)

    tag_keys = list(phones.redis.scan_iter(keys.timeline_tag("*")))
    assert len(tag_keys) - before == 10
    assert post_by(phones, ali, body).tags == [f"t{n}" for n in range(10)]
    assert phones.live.app.test_client().get("/api/v1/posts?tag=t10").status_code == 404  # no such tag


def test_abuse_03_a_mention_longer_than_a_handle_names_no_one(phones: Phones):
    ali = phones.join(ALI, "ali")
    body = "hello @" + "m" * 5000
    phones.say(ALI, body)
    assert post_by(phones, ali, body).mentions == []
    [answer] = phones.say(ALI, "WHOIS @" + "m" * 5000)
    assert answer.startswith("No one here is called @mmm")


def test_abuse_01_02_03_the_limits_are_settings_on_the_console():
    defaults = Config.from_env({})
    assert (defaults.max_mention_sms, defaults.dm_per_hour, defaults.max_follows) == (5, 30, 200)
    mine = Config.from_env({"MAX_MENTION_SMS": "2", "DM_PER_HOUR": "10", "MAX_FOLLOWS": "50"})
    assert Config.from_env(mine.as_env()).limits == mine.limits
    shown = {s.name: s.value for s in settings.shown(mine)}
    assert (shown["MAX_MENTION_SMS"], shown["DM_PER_HOUR"], shown["MAX_FOLLOWS"]) == ("2", "10", "50")


# ---------------------------------------------------------------- 10: command words


@pytest.mark.parametrize(
    "text, answer",
    [
        ("FORGET ME please", "starts with the command FORGET ME. To run it, text FORGET ME alone."),
        ("forget me, now", "Not posted: your text starts with the command forget me."),
        ("فراموشم کن لطفا", "منتشر نشد: متن با فرمان «فراموشم کن» شروع می‌شود."),
        ("انسني من فضلك", "لم يُنشر: نصك يبدأ بالأمر «انسني»."),
        ("OFF for the night", "To run it, text OFF alone."),
        ("STOP sending me things", "To run it, text STOP alone."),
        ("DELETE my last post", "To run it, text DELETE alone."),
        ("NAME Ali Rezaei", "Choose a new name: NAME newname"),
        ("D sara are you safe? I am at my uncle's", "To send a private message: D @name your message"),
        ("FOLLOW sara and reza", "Follow whom? FOLLOW @name or FOLLOW #tag"),
        ("آمار کشته‌شدگان به ۵۰ رسید", "«آمار»"),
    ],
    ids=[
        "forget-en",
        "forget-comma",
        "forget-fa",
        "forget-ar",
        "off",
        "stop",
        "delete",
        "name",
        "dm-without-at",
        "follow",
        "fa-stats",
    ],
)
def test_abuse_10_a_command_word_with_more_words_is_asked_about_never_posted(phones: Phones, text, answer):
    ali = phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    sms_before = len(phones.received(SARA))

    [got] = phones.say(ALI, text)

    assert answer in got
    assert text not in phones.timeline()
    assert phones.sub_id(ALI) == ali  # nothing carried out: not forgotten, not renamed, not paused
    assert subscribers.handle_of(phones.redis, ali) == "ali"
    assert phones.redis.hget(keys.subscriber(ali), "paused") is None
    assert phones.redis.hget(keys.subscriber(ali), "stopped") is None
    assert len(phones.received(SARA)) == sms_before  # no private message went out
    assert account.post_count(phones.redis, ali) == 1


def test_abuse_10_a_post_that_starts_with_a_command_word_is_posted_when_sent_again_quoted(phones: Phones):
    phones.join(ALI, "ali")
    [answer] = phones.say(ALI, "Help is needed at the square")
    assert answer == (
        "Not posted: your text starts with the command Help. To run it, text Help alone. "
        'To post your text, send it again starting with a quote mark (").'
    )
    assert "Help is needed at the square" not in phones.timeline()

    assert phones.say(ALI, '"Help is needed at the square"') == []  # a post: no answer
    assert phones.timeline()[0] == '"Help is needed at the square"'
    assert phones.say(ALI, "«توقف کنید» فریاد می‌زدند") == []
    assert phones.timeline()[0] == "«توقف کنید» فریاد می‌زدند"
    assert phones.say(ALI, "Helpers are at the square") == []  # a longer word is no command word
    assert phones.timeline()[0] == "Helpers are at the square"


# ---------------------------------------------------------------- 11: FORGET ME asks first

ASK_EN = "FORGET ME erases your number, posts, follows and messages for good. To go ahead, reply YES within 10 minutes. Any other reply cancels."  # noqa: E501


@pytest.mark.parametrize(
    "forget, question, yes",
    [
        ("FORGET ME", ASK_EN, "YES"),
        ("forget me", ASK_EN, "yes!"),
        ("فراموشم کن", "برای تأیید تا 10 دقیقه «بله» بفرستید", "بله"),
        ("فراموشم کن", "برای تأیید تا 10 دقیقه «بله» بفرستید", "آره"),
        ("انسني", "للتأكيد أرسل «نعم» خلال 10 دقائق", "نعم"),
    ],
    ids=["en", "en-lower", "fa", "fa-colloquial", "ar"],
)
def test_abuse_11_forget_me_asks_to_confirm_and_a_yes_erases(phones: Phones, forget, question, yes):
    ali = phones.join(ALI, "ali")
    [asked] = phones.say(ALI, forget)
    assert question in asked
    assert phones.sub_id(ALI) == ali and "hello, ali here" in phones.timeline()  # nothing erased yet

    assert phones.say(ALI, yes) == []  # no number left to answer

    assert phones.sub_id(ALI) is None
    assert "hello, ali here" not in phones.timeline()
    assert phones.redis.exists(keys.confirmation(ali)) == 0


def test_abuse_11_any_other_answer_cancels_and_is_not_posted(phones: Phones):
    ali = phones.join(ALI, "ali")
    phones.say(ALI, "FORGET ME")

    assert phones.say(ALI, "no wait!") == [
        "FORGET ME cancelled: nothing was erased, and your text was taken as the answer, not posted. "
        "Send it again to post it."
    ]
    assert phones.sub_id(ALI) == ali and "no wait!" not in phones.timeline()
    assert phones.say(ALI, "YES")[0].startswith("Welcome back")  # YES is START's again
    assert phones.sub_id(ALI) == ali


def test_abuse_11_a_command_as_the_answer_cancels_and_still_runs(phones: Phones):
    ali = phones.join(ALI, "ali")
    phones.say(ALI, "FORGET ME")
    assert phones.say(ALI, "STATS") == [
        "FORGET ME cancelled: nothing was erased.",
        "Followers: 0. Following: 0 people, 0 tags. Posts: 1.",
    ]
    phones.say(ALI, "FORGET ME")
    assert phones.say(ALI, "STOP") == []  # STOP always works (Twilio answers it itself)
    assert phones.redis.hget(keys.subscriber(ali), "stopped") == "1"
    assert phones.say(ALI, "YES")[0].startswith("Welcome back")
    assert phones.sub_id(ALI) == ali


def test_abuse_11_a_yes_after_10_minutes_erases_nothing(phones: Phones):
    ali = phones.join(ALI, "ali")
    phones.say(ALI, "FORGET ME")
    asked_at = float(phones.redis.get(keys.confirmation(ali)) or 0)
    phones.redis.set(
        keys.confirmation(ali), f"{asked_at - confirmation.CONFIRM_SECONDS - 1:.3f}"
    )  # 10 min on

    assert phones.say(ALI, "YES") == [
        "Nothing was erased: FORGET ME waits 10 minutes for YES. To be erased, text FORGET ME again.",
        "Welcome back: SMS from Kabootar are on. Text HELP for commands.",  # START's YES again
    ]
    assert phones.sub_id(ALI) == ali
    phones.say(ALI, "a post after all")
    assert "a post after all" in phones.timeline()  # the question is over: texts are posts again


def test_abuse_11_forget_me_and_yes_in_one_batch_erase_and_later_texts_start_afresh(phones: Phones):
    phones.join(ALI, "ali")
    phones.text(ALI, "FORGET ME")
    phones.text(ALI, "YES")
    phones.run()
    assert phones.sub_id(ALI) is None
    assert "hello, ali here" not in phones.timeline()


def test_abuse_11_a_stopped_texter_is_asked_too(phones: Phones):
    phones.join(ALI, "ali")
    phones.say(ALI, "STOP")
    [asked] = phones.say(ALI, "FORGET ME")
    assert "reply YES within 10 minutes" in asked
    phones.say(ALI, "YES")
    assert phones.sub_id(ALI) is None


def test_abuse_11_the_welcome_and_help_say_forget_me_asks_to_confirm(phones: Phones):
    [welcome] = phones.say(ALI, "first text")
    assert "FORGET ME erases you (after you confirm with YES)" in welcome
    assert "FORGET ME (then YES to confirm)" in phones.say(ALI, "HELP")[0]
    [persian] = phones.say(SARA, "سلام")
    assert "فراموشم کن+بله" in persian
    assert "فراموشم کن+بله" in phones.say(SARA, "راهنما")[0]


# ---------------------------------------------------------------- 12: undelivered DMs

UNDELIVERED = "Your private message to @sara was not delivered: they are not receiving messages now."


@pytest.mark.parametrize("word", ["OFF", "STOP"])
def test_abuse_12_a_dm_to_a_texter_who_is_off_or_stopped_is_reported_not_delivered(phones: Phones, word):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(SARA, word)
    assert phones.say(ALI, "D @sara are you there?") == [UNDELIVERED]
    assert not any("are you there" in m for m in phones.received(SARA))


@pytest.mark.parametrize("word", ["OFF", "STOP", "خاموش"], ids=["off", "stop", "fa-off"])
def test_abuse_12_a_dm_dropped_because_they_went_off_before_it_left_is_reported(phones: Phones, word):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.text(ALI, "D @sara are you there?")
    phones.text(SARA, word)  # handled before the DM is sent
    phones.run()

    assert phones.received(ALI)[-2:] == ["Sent privately to @sara.", UNDELIVERED]
    assert not any("are you there" in m for m in phones.received(SARA))


def test_abuse_12_a_dm_refused_because_they_opted_out_with_their_carrier_is_reported(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    # On Twilio's blocklist only (a "fail the next send" could hit Ali's confirmation first).
    twilio_store.set_opted_out(phones.redis, SARA, True)  # Twilio then answers 21610
    assert phones.say(ALI, "پیام @sara کجایی؟") == [
        "پیام خصوصی برای @sara فرستاده شد.",
        "پیام خصوصی شما به @sara نرسید: او اکنون پیامی دریافت نمی‌کند.",
    ]
