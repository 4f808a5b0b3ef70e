"""Commands by SMS: every word in every language, the answers a texter gets, and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import segments
from gateway.commands import answers, grammar
from gateway.commands import words as command_words
from gateway.microblog import account, handles
from gateway.pipeline import batch
from gateway.providers.twilio import vocabulary as twilio_words
from gateway.store import keys
from tests.phones import ALI, SARA, Phones, phones_on


@pytest.fixture
def phones(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    with phones_on(redis_server, tmp_path) as p:
        yield p


# A well-formed use of each command word: it must parse as that command.
SHAPES = {
    "help": "{w}",
    "stop": "{w}",
    "start": "{w}",
    "off": "{w}",
    "on": "{w}",
    "delete": "{w}",
    "stats": "{w}",
    "forget": "{w}",
    "follow": "{w} @ali",
    "unfollow": "{w} #tehran",
    "get": "{w} @ali",
    "whois": "{w} @ali",
    "name": "{w} new-name",
    "bio": "{w} reporter in Tehran",
    "dm": "{w} @ali are you safe?",
}
EVERY_WORD = [
    pytest.param(command, language, word, id=f"{command}-{language}-{word}")
    for command, by_language in command_words.WORDS.items()
    for language, words in by_language.items()
    for word in words
]


@pytest.mark.parametrize("command, language, word", EVERY_WORD)
@pytest.mark.parametrize("case", [str, str.lower, str.upper], ids=["as-listed", "lower", "upper"])
def test_every_command_word_in_every_language_is_understood(command, language, word, case):
    parsed = grammar.parse("  " + case(SHAPES[command].format(w=word)) + " \n")
    assert parsed is not None and parsed.name == command and not parsed.problem
    assert parsed.language in (language, None)  # None: a word Persian and Arabic share


def test_a_word_typed_on_an_arabic_keyboard_matches_the_persian_one():
    parsed = grammar.parse("كيست @ali")  # Arabic kaf and yeh, Persian word
    assert parsed is not None and parsed.name == "whois"


@pytest.mark.parametrize(
    "text",
    [
        "Stop the arrests now",
        "F this government",
        "name of the game is courage",
        "D day is coming",
        "help me find my brother",
        "forget me not",
        "on my way to the square",
        "دنبال حقیقت هستیم",
        "توقف کنید",
    ],
    ids=["stop-in-sentence", "f", "name", "d", "help", "forget", "on", "fa-follow", "fa-stop"],
)
def test_texts_that_only_start_with_a_command_word_are_asked_about_not_posted(text):
    """Issue 13 item 10 changed this: such a text was posted; now it gets "did you mean …?"."""
    parsed = grammar.parse(text)
    assert parsed is not None and parsed.problem == grammar.UNCLEAR
    assert grammar.parse(f'"{text}"') is None  # sent again in quotes: a post


@pytest.mark.parametrize(
    "text",
    ["@ali's photo is everywhere", "«توقف کنید»", "", "Stopping here for the night"],
    ids=["possessive", "quoted", "empty", "longer-word"],
)
def test_texts_that_are_posts(text):
    assert grammar.parse(text) is None


@pytest.mark.parametrize(
    "text, problem",
    [
        ("FOLLOW", "follow_usage"),
        ("f", "follow_usage"),
        ("UNFOLLOW", "unfollow_usage"),
        ("GET", "get_usage"),
        ("WHOIS", "whois_usage"),
        ("NAME", "name_usage"),
        ("D", "dm_usage"),
        ("D @ali", "dm_usage"),
        ("@ali", "reply_usage"),
        ("دنبال", "follow_usage"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_commands_missing_their_argument_are_still_commands(text, problem):
    parsed = grammar.parse(text)
    assert parsed is not None and parsed.problem == problem


@pytest.mark.parametrize(
    "text, language",
    [("hello", "en"), ("سلام، کجایی؟", "fa"), ("مرحبا كيف حالك", "ar"), ("123", "fa")],
    ids=["english", "persian", "arabic", "digits"],
)
def test_the_answer_language_follows_the_script(text, language):
    assert grammar.language_of(text) == language


@pytest.mark.parametrize("key", sorted(answers.TEXTS))
@pytest.mark.parametrize("language", command_words.LANGUAGES)
def test_every_answer_fits_two_segments_even_with_long_names(key, language):
    fields = dict(
        handle="quiet-falcon-27451234567890ab",
        targets="@quiet-falcon-2745, #انتخابات",
        bio="x" * 20,
        posts=12345,
        followers=67890,
        users=123,
        tags=45,
        start="y" * 40,
        word="UNSUBSCRIBE",
        usage="z" * 45,
        most=200,
        minutes=10,
        tag="t" * 20,
    )
    assert segments.segments(answers.render(key, language, **fields)) <= answers.MAX_SEGMENTS


# What ALI texts, and what ALI's phone shows in answer. SARA exists, with one post.
ANSWERS = [
    ("HELP", "FOLLOW or UNFOLLOW"),
    ("info", "FOLLOW or UNFOLLOW"),
    ("راهنما", "لغو دنبال"),
    ("مساعدة", "الغاء المتابعة"),
    ("FOLLOW @sara", "You follow @sara now"),
    ("F #Tehran", "You follow #Tehran now"),
    ("follow @sara #tehran @nobody", "You follow @sara, #tehran now: new posts come to you by SMS. No one"),
    ("دنبال @sara", "اکنون @sara را دنبال می‌کنید"),
    ("FOLLOW", "Follow whom?"),
    ("FOLLOW @nobody", "No one here is called @nobody."),
    ("FOLLOW @ali", "You cannot follow yourself."),
    ("UNFOLLOW @sara", "You no longer follow @sara."),
    ("LEAVE #tehran", "You no longer follow #tehran."),
    ("UNFOLLOW", "Unfollow whom?"),
    ("GET @sara", "@sara: the square is full"),
    ("GET", "Whose latest post?"),
    ("GET @nobody", "No one here is called @nobody."),
    ("WHOIS @sara", "@sara: (no bio) Posts: 2. Followers: 0."),
    ("WHOIS", "Who? WHOIS @name"),
    ("NAME ali-2", "You are @ali-2 now."),
    ("NAME ali", "You are @ali already."),
    ("NAME SARA", "@SARA is taken."),
    ("NAME x", "A name has 2-30 letters"),
    ("NAME admin", "A name has 2-30 letters"),
    ("NAME", "Choose a new name"),
    ("BIO reporter in Tehran", "Bio saved."),
    ("BIO", "You have no bio."),
    ("OFF", "Paused: no SMS from Kabootar until you text ON."),
    ("ON", "SMS from Kabootar are on again."),
    ("DELETE", 'Deleted your latest post: "hello, ali here"'),
    ("حذف", "آخرین پست شما حذف شد"),
    ("STATS", "Followers: 0. Following: 0 people, 0 tags. Posts: 1."),
    ("آمار", "دنبال‌کننده: 0"),
    ("START", "Welcome back"),
    ("YES", "Welcome back"),
    ("D @sara are you safe?", "Sent privately to @sara."),
    ("D", "To send a private message: D @name your message"),
    ("D @sara", "To send a private message"),
    ("D @nobody hi", "No one here is called @nobody."),
    ("@nobody where are you?", "No one here is called @nobody, so your text was not posted."),
    ("@sara", "To reply, write your message after the name: @sara your reply"),
    ("توقف", "دیگر پیامکی از کبوتر نمی‌گیرید"),
    ("ايقاف", "لن تصلك رسائل من كبوتر"),
    ("تابع", "متابعة من؟"),
]


@pytest.mark.parametrize("text, answer", ANSWERS, ids=[t for t, _ in ANSWERS])
def test_each_command_is_answered_in_the_language_it_was_written_in(phones: Phones, text, answer):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.text(SARA, "the square is full")
    phones.run()

    got = phones.say(ALI, text)

    assert len(got) == 1, got
    assert answer in got[0]
    assert segments.segments(got[0]) <= answers.MAX_SEGMENTS


@pytest.mark.parametrize("word", sorted(twilio_words.OPT_OUT_KEYWORDS))
def test_twilio_stop_words_get_no_answer_from_us_and_stop_everything(phones: Phones, word):
    phones.join(ALI, "ali")
    sara = phones.join(SARA, "sara")
    phones.say(SARA, "FOLLOW @ali")

    assert phones.say(SARA, word.lower()) == []
    assert phones.redis.hget(keys.subscriber(sara), "stopped") == "1"
    phones.say(ALI, "news from the square")
    assert phones.say(SARA, "D @ali hello") == []  # not even an answer
    assert phones.received(SARA)[-1] == "You follow @ali now: new posts come to you by SMS."


def test_a_new_texter_is_welcomed_with_their_handle_and_help(phones: Phones):
    [welcome] = phones.say(ALI, "first text ever")
    handle = phones.redis.hget(keys.subscriber(phones.sub_id(ALI) or 0), "handle")
    assert f"You are @{handle}" in welcome and "HELP" in welcome
    assert phones.say(ALI, "second text") == []  # posts are not confirmed


def test_a_new_texter_writing_persian_is_welcomed_in_persian(phones: Phones):
    [welcome] = phones.say(SARA, "سلام از تهران")
    assert "به کبوتر خوش آمدید" in welcome and "راهنما" in welcome


def test_help_reaches_a_stopped_texter(phones: Phones):
    phones.join(ALI, "ali")
    phones.say(ALI, "STOP")
    [help_text] = phones.say(ALI, "HELP")
    assert "FOLLOW" in help_text
    assert phones.say(ALI, "STATS") == []


def test_rename_holds_the_old_handle_for_its_owner_alone(phones: Phones):
    # (Until issue 13 a freed handle was anyone's the next second: now it is held 30 days.)
    ali = phones.join(ALI, "ali")
    sara = phones.join(SARA, "sara")
    assert phones.say(SARA, "NAME ali") == ["@ali is taken. Try another: NAME newname"]

    assert phones.say(ALI, "NAME Ali-Tehran") == ["You are @Ali-Tehran now."]
    assert phones.say(SARA, "NAME ali") == ["@ali is taken. Try another: NAME newname"]

    assert account.rename(phones.redis, ali, "ali-tehran") == "renamed"  # a change of case is fine
    assert account.rename(phones.redis, ali, "ali") == "renamed"  # and so is taking it back
    by_handle = phones.redis.hgetall(keys.HANDLE_INDEX)
    assert by_handle == {handles.key("ali"): str(ali), handles.key("sara"): str(sara)}


def test_a_drain_that_runs_twice_answers_and_welcomes_once(phones: Phones):
    redis = phones.redis
    sids = [phones.text(ALI, "hello"), phones.text(ALI, "DELETE"), phones.text(ALI, "STATS")]
    stored = {sid: redis.hgetall(keys.inbound_message(sid)) for sid in sids}
    redis.delete(keys.INBOX)
    batch.process(phones.live.runtime, sids)
    for sid, fields in stored.items():  # as if the worker died before clearing the batch
        redis.hset(keys.inbound_message(sid), mapping=fields)
    batch.process(phones.live.runtime, sids)
    phones.run()

    got = phones.received(ALI)
    assert len(got) == 3, got
    assert got[0].startswith("Welcome to Kabootar!")
    assert got[1] == 'Deleted your latest post: "hello"'
    assert got[2] == "Followers: 0. Following: 0 people, 0 tags. Posts: 0."


def test_delete_twice_for_one_text_deletes_one_post(phones: Phones):
    ali = phones.join(ALI, "ali")
    phones.text(ALI, "second post")
    phones.run()
    first = account.delete_latest(phones.redis, ali, "SMdelete")
    again = account.delete_latest(phones.redis, ali, "SMdelete")
    assert first is not None and first is not True and first.body == "second post"
    assert again is True
    assert phones.timeline() == ["hello, ali here"]


def test_delete_takes_a_post_made_before_the_tag_cap_off_every_tag_it_was_filed_under(phones: Phones):
    ali = phones.join(ALI, "ali")
    phones.text(ALI, "news " + " ".join(f"#t{n}" for n in range(15)))
    phones.run()
    [post_id] = phones.redis.zrange(keys.timeline_user(ali), -1, -1)
    for n in range(10, 15):  # filed, as posts were before a post filed under its first 10 only
        phones.redis.zadd(keys.timeline_tag(f"t{n}"), {post_id: 1.0})

    [answer] = phones.say(ALI, "DELETE")
    assert answer.startswith('Deleted your latest post: "news #t0')
    assert [n for n in range(15) if phones.redis.zscore(keys.timeline_tag(f"t{n}"), post_id)] == []


def test_a_broken_command_never_stops_the_batch(phones: Phones):
    phones.join(ALI, "ali")
    for text in ["NAME 🙂🙂", "FOLLOW @@", "D @ali", "GET #tag", "WHOIS @" + "x" * 200, "بیو"]:
        phones.text(ALI, text)
    phones.text(SARA, "still posted")
    phones.run()
    assert "still posted" in phones.timeline()
    assert phones.redis.llen(keys.INBOX) == 0
    assert len(phones.received(ALI)) == 1 + 6  # welcome, then one answer each
