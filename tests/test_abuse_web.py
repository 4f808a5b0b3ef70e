"""Issue 13 on the public web: a web reply cannot pass for a texter, no post's direction
controls reorder the text around it, media links are https only, and a page of the feed
is filled past hidden posts.

Each test does what the attacker (or an operator) did through the real routes, and reads
back what a reader gets: the JSON API, the Atom feed, the HTML pages, the author's SMS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import feedparser
import pytest
from flask.testing import FlaskClient
from redis import Redis

from gateway.microblog import moderation, posts
from gateway.runtime import Runtime
from gateway.store import keys
from gateway.web import create_app
from tests.conftest import Twilio, run_workers
from tests.phones import ALI, Phones, phones_on
from tests.test_feed import bodies_on_page
from workers import context

ALICE = "+989121234567"
TEXTER = "quiet-falcon-27"
RLO, LRO, RLE, PDF, LRI, RLI, FSI, PDI = (
    "\u202e",
    "\u202d",
    "\u202b",
    "\u202c",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
)
ZWSP, ZWJ, ALM, BOM = "\u200b", "\u200d", "\u061c", "\ufeff"


@pytest.fixture
def phones(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    with phones_on(redis_server, tmp_path) as p:
        yield p


def web_reply(client: FlaskClient, post_id: int, name: str, body: str) -> None:
    """Reply from the post's page as a reader does: its form, with the page's CSRF token."""
    page = client.get(f"/posts/{post_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    data = {"name": name, "body": body, "csrf_token": token.group(1)}
    assert client.post(f"/posts/{post_id}/replies", data=data).status_code == 303


def articles(page: str) -> dict[int, str]:
    """Each post's HTML on a page, by post id."""
    found = re.findall(r'<article class="post" id="post-(\d+)">(.*?)</article>', page, re.S)
    return {int(post_id): html for post_id, html in found}


def byline(article: str) -> str:
    """A post's byline as a reader reads it (tags stripped, spaces collapsed)."""
    meta = re.search(r'<div class="meta">(.*?)·', article, re.S)
    assert meta
    return " ".join(re.sub(r"<[^>]+>", "", meta.group(1)).split())


def page_title(page: str) -> str:
    found = re.search(r"<title>(.*?)</title>", page, re.S)
    assert found
    return found.group(1)


def stored_before_the_rules(redis: Redis, **fields: str) -> int:
    """A post written as an older Kabootar stored it, unfiltered (it is read by today's code)."""
    post_id = int(redis.incr(keys.POST_SEQ))
    redis.hset(keys.post(post_id), mapping={"src": "sms", "at": "1700000000.000", **fields})
    redis.zadd(keys.TIMELINE_ALL, {str(post_id): post_id})
    return post_id


# --- 7. A web reply never reads as a texter; direction controls reorder nothing ----------


@pytest.mark.parametrize("name", [f"@{TEXTER}", f"＠{TEXTER}", f"﹫{TEXTER}", f"{ZWSP}@{ZWJ}{TEXTER}{RLO}"])
def test_abuse_07_a_web_reply_named_like_a_texter_never_reads_as_their_handle(phones: Phones, name: str):
    phones.join(ALI, TEXTER)
    parent = int(phones.redis.zrevrange(keys.TIMELINE_ALL, 0, 0)[0])
    client = phones.live.app.test_client()

    web_reply(client, parent, name, "I am the real one")
    phones.run()

    # The JSON API: a display name, never a handle.
    [reply] = client.get(f"/api/v1/posts/{parent}").get_json()["replies"]
    assert reply["display_name"] == TEXTER and reply["source"] == "web"
    assert "handle" not in reply
    listed = client.get("/api/v1/posts").get_json()["posts"]
    assert [p.get("handle") for p in listed] == [None, TEXTER]  # the reply, then the texter's post
    # Atom: the author and the title say "(web)", and never "@".
    [entry, texters] = feedparser.parse(client.get("/feed.atom").data).entries
    assert entry.author == f"{TEXTER} (web)" and entry.title == f"{TEXTER} (web): I am the real one"
    assert texters.author == TEXTER and texters.title.startswith(f"@{TEXTER}: ")
    # The thread's page: the reply is marked as from the web, and is no link to the texter.
    shown = articles(client.get(f"/posts/{parent}").get_data(as_text=True))
    assert byline(shown[reply["id"]]) == f"{TEXTER} (web)"
    assert 'class="from-web"' in shown[reply["id"]] and "/@" not in shown[reply["id"]]
    assert byline(shown[parent]) == f"@{TEXTER}"
    assert page_title(client.get(f"/posts/{reply['id']}").get_data(as_text=True)).startswith(
        f"{TEXTER} (web): "
    )
    # And the texter's phone: the SMS names a web writer, not a handle.
    assert phones.received(ALI)[-1] == f"{TEXTER} (web): I am the real one"


def test_abuse_07_display_names_lose_bidi_controls_and_zero_width_characters(
    redis: Redis, client: FlaskClient
):
    parent = posts.create(redis, posts.NewPost(body="the bridge is closed", source="sms"))
    tricks = {
        f"{RLO}anA": "anA",  # would show reversed: "Ana"
        f"Sa{ZWSP}ra{BOM}": "Sara",
        f"{LRI}Reza{PDI}{PDF}{ALM}": "Reza",
        f"Mina{ZWJ}{RLE}": "Mina",
        "علی\u200cرضا": "علی\u200cرضا",  # a Persian name keeps its zero-width non-joiner
    }
    for name in tricks:
        web_reply(client, parent, name, "hello")

    replies = client.get(f"/api/v1/posts/{parent}").get_json()["replies"]
    assert [r["display_name"] for r in replies] == list(tricks.values())
    atom = feedparser.parse(client.get("/feed.atom").data)
    assert sorted(e.author for e in atom.entries[:-1]) == sorted(f"{n} (web)" for n in tricks.values())
    shown = articles(client.get(f"/posts/{parent}").get_data(as_text=True))
    assert [byline(shown[r["id"]]) for r in replies] == [f"{n} (web)" for n in tricks.values()]


def test_abuse_07_a_bodys_direction_controls_cannot_reorder_text_around_it(
    twilio: Twilio, drain, redis: Redis, client: FlaskClient
):
    # A texter leaves a right-to-left override open: it would reverse whatever follows the
    # post (the reply's byline, the page title's " · Kabootar", an SMS's link).
    twilio.text(sender=ALICE, body=f"see {RLO}nimda {'x' * 80}\nline two {LRI}open")
    drain()
    [texted] = client.get("/api/v1/posts").get_json()["posts"]
    # A web reader sends closers that close nothing, to break out of the page's isolate.
    web_reply(client, texted["id"], "Ana", f"{PDF}{PDI}hi {RLI}x{RLE}y{PDI} {FSI}z")
    # And a post stored before this rule, still with an open override.
    old = stored_before_the_rules(redis, body=f"old {RLO}post")

    balanced = {
        texted["id"]: f"see {RLO}nimda {'x' * 80}{PDF}\nline two {LRI}open{PDI}",
        texted["id"] + 1: f"hi {RLI}x{RLE}y{PDF}{PDI} {FSI}z{PDI}",
        old: f"old {RLO}post{PDF}",
    }
    api = {p["id"]: p["body"] for p in client.get("/api/v1/posts").get_json()["posts"]}
    assert api == balanced
    atom = feedparser.parse(client.get("/feed.atom").data)
    assert {int(e.link.rsplit("/", 1)[1]): e.content[0].value for e in atom.entries} == balanced
    assert atom.entries[0].title == f"anonymous: old {RLO}post{PDF}"
    home = client.get("/").get_data(as_text=True)
    assert sorted(bodies_on_page(home)) == sorted(balanced.values())
    # Each body in its own isolate on the page; the title's cut body closed again.
    assert home.count('<p class="body" dir="auto">') == 3
    title = page_title(client.get(f"/posts/{texted['id']}").get_data(as_text=True))
    assert title.endswith(f"…{PDF} · Kabootar") and title.count(RLO) == title.count(PDF) == 1


# --- 8. Media links are https only (http when MEDIA_ALLOW_HTTP is on) ----------------------

TWILIO_MEDIA = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
HOSTILE_MEDIA = [
    "javascript:alert(document.cookie)",
    "JaVaScRiPt:alert(1)",
    "file:///etc/passwd",
    "data:text/html,<script>alert(1)</script>",
    "https://api.twilio.com@evil.example/x.jpg",  # a host hidden behind "credentials"
    "https:evil.example",
    "http://example.com/a.jpg",
]


def mms(twilio: Twilio, urls: list[str]):
    fields = {f"MediaUrl{n}": url for n, url in enumerate(urls)}
    return twilio.text(sender=ALICE, body="photos from the square", NumMedia=str(len(urls)), **fields)


def media_everywhere(client: FlaskClient, post_id: int) -> dict[str, list[str]]:
    """The media URLs a reader is given for a post: in the API, the feed and the page."""
    [listed] = [p for p in client.get("/api/v1/posts").get_json()["posts"] if p["id"] == post_id]
    [entry] = [
        e for e in feedparser.parse(client.get("/feed.atom").data).entries if e.link.endswith(f"/{post_id}")
    ]
    page = client.get(f"/posts/{post_id}").get_data(as_text=True)
    return {
        "api": listed["media"],
        "api post": client.get(f"/api/v1/posts/{post_id}").get_json()["media"],
        "atom": [link.href for link in entry.links if link.rel == "enclosure"],
        "page": re.findall(r'<a href="([^"]+)" rel="nofollow noopener noreferrer">media', page),
    }


def test_abuse_08_javascript_and_file_media_urls_are_never_stored_or_shown(
    twilio: Twilio, drain, redis: Redis, client: FlaskClient
):
    assert mms(twilio, [*HOSTILE_MEDIA[:5], TWILIO_MEDIA, *HOSTILE_MEDIA[5:]]).status_code == 200
    [sid] = redis.lrange(keys.INBOX, 0, -1)
    assert json.loads(redis.hget(keys.inbound_message(sid), "media") or "") == [TWILIO_MEDIA]
    drain()

    [post] = client.get("/api/v1/posts").get_json()["posts"]
    assert json.loads(redis.hget(keys.post(post["id"]), "media") or "") == [TWILIO_MEDIA]
    assert media_everywhere(client, post["id"]) == dict.fromkeys(
        ["api", "api post", "atom", "page"], [TWILIO_MEDIA]
    )


def test_abuse_08_media_urls_stored_before_the_rule_are_dropped_when_shown(redis: Redis, client: FlaskClient):
    post_id = stored_before_the_rules(
        redis, body="old photos", media=json.dumps([*HOSTILE_MEDIA, TWILIO_MEDIA])
    )

    assert media_everywhere(client, post_id) == dict.fromkeys(
        ["api", "api post", "atom", "page"], [TWILIO_MEDIA]
    )


def test_abuse_08_http_media_urls_are_kept_when_media_allow_http_is_on(
    config, runtime: Runtime, redis: Redis
):
    allowing = replace(config, media_allow_http=True)
    client = create_app(allowing, {"TESTING": True}).test_client()
    context.use(replace(runtime, config=allowing))  # the workers run with the setting too
    mms(Twilio(client, allowing), ["file:///etc/passwd", "http://example.com/a.jpg", TWILIO_MEDIA])
    run_workers(runtime)

    [post] = client.get("/api/v1/posts").get_json()["posts"]
    kept = ["http://example.com/a.jpg", TWILIO_MEDIA]
    assert media_everywhere(client, post["id"]) == dict.fromkeys(["api", "api post", "atom", "page"], kept)


# --- Also: a page is filled past hidden posts, and says when there is nothing more ---------


def make_posts(redis: Redis, count: int) -> list[int]:
    """`count` posts by one texter, tagged #square, oldest first."""
    new = [posts.NewPost(body=f"post {i} #square", source="sms", author_id=1) for i in range(count)]
    return posts.create_many(redis, new)


def test_abuse_also_a_page_of_one_skips_a_hidden_newest_post_and_ends_with_no_next(
    redis: Redis, client: FlaskClient
):
    older, newer, newest = make_posts(redis, 3)
    moderation.set_hidden(redis, newest, True, "ana")

    first = client.get("/api/v1/posts?limit=1").get_json()
    assert [p["id"] for p in first["posts"]] == [newer] and first["next"] == newer
    second = client.get(f"/api/v1/posts?limit=1&before={first['next']}").get_json()
    assert [p["id"] for p in second["posts"]] == [older] and second["next"] is None

    moderation.set_hidden(redis, older, True, "ana")
    only = client.get("/api/v1/posts?limit=1").get_json()
    assert [p["id"] for p in only["posts"]] == [newer] and only["next"] is None


@pytest.mark.parametrize("path", ["/", "/tags/square"], ids=["home", "tag"])
def test_abuse_also_a_full_html_page_despite_hidden_posts_and_no_older_link_when_nothing_follows(
    redis: Redis, client: FlaskClient, path: str
):
    ids = make_posts(redis, 25)
    for post_id in ids[-5:]:  # the five newest
        moderation.set_hidden(redis, post_id, True, "ana")

    page = client.get(path).get_data(as_text=True)
    assert bodies_on_page(page) == [f"post {i} #square" for i in range(19, -1, -1)]
    assert "older →" not in page
    atom = feedparser.parse(client.get(f"{path.rstrip('/')}/feed.atom").data)
    assert len(atom.entries) == 20

    moderation.set_hidden(redis, ids[-1], False, "ana")
    page = client.get(path).get_data(as_text=True)
    older = re.search(r'<a href="([^"]+)" rel="next">older', page)
    assert older and len(bodies_on_page(page)) == 20
    assert bodies_on_page(client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)) == [
        "post 0 #square"
    ]


def test_abuse_also_a_long_run_of_hidden_posts_is_passed_over_a_bounded_stretch_at_a_time(
    redis: Redis, client: FlaskClient
):
    [visible, *flood] = make_posts(redis, posts.PAGE_SCAN_IDS + 50)
    pipe = redis.pipeline(transaction=False)
    for post_id in flood:
        pipe.hset(keys.post(post_id), "hidden", "1")
    pipe.execute()

    # One read looks at PAGE_SCAN_IDS posts at most: it answers, and says where to go on.
    first = client.get("/api/v1/posts?limit=10").get_json()
    assert first["posts"] == [] and first["next"] == flood[-posts.PAGE_SCAN_IDS]
    second = client.get(f"/api/v1/posts?limit=10&before={first['next']}").get_json()
    assert [p["id"] for p in second["posts"]] == [visible] and second["next"] is None
