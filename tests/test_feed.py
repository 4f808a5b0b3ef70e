"""The public feed as a reader sees it: pages, Atom and JSON over the same timelines."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import feedparser
import pytest
from flask.testing import FlaskClient
from redis import Redis

from gateway.config import Config
from gateway.microblog import account, moderation, posts, subscribers
from gateway.store import keys
from gateway.web import create_app
from tests.conftest import TEST_PUBLIC_URL, Twilio

ALICE = "+989121234567"
BOB = "+989350001122"

ROUND_TRIP_BODIES = [
    "سلام دنیا، امروز در خیابان آزادی بودیم #انتخابات",
    "🕊️ free 🇮🇷 ✌🏽 👩‍👩‍👧",
    "رای من کجاست؟ where is my vote, 2009 #IranElection",
    "می‌خواهم آزاد باشم",  # a zero-width non-joiner inside a word
]
ROUND_TRIP_IDS = ["persian", "emoji", "mixed-direction", "zwnj"]


def make_posts(redis: Redis, bodies: list[str], author_id: int | None = 1) -> list[int]:
    """Posts made directly (no SMS pipeline), oldest first."""
    return posts.create_many(
        redis, [posts.NewPost(body=b, source="sms", author_id=author_id) for b in bodies]
    )


def handle_of_latest(client: FlaskClient) -> str:
    return client.get("/api/v1/posts?limit=1").get_json()["posts"][0]["handle"]


def bodies_on_page(page: str) -> list[str]:
    """The post bodies on a page as a reader sees them: links and escapes undone."""
    found = re.findall(r'<p class="body" dir="auto">(.*?)</p>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", body)) for body in found]


def test_feed_lists_posts_newest_first(twilio: Twilio, drain, client: FlaskClient):
    for body in ["first", "second", "third"]:
        twilio.text(sender=ALICE, body=body)
    drain()
    api = client.get("/api/v1/posts").get_json()
    assert [p["body"] for p in api["posts"]] == ["third", "second", "first"]
    assert api["next"] is None
    assert bodies_on_page(client.get("/").get_data(as_text=True)) == ["third", "second", "first"]


def test_api_pages_through_45_posts_with_the_next_cursor(redis: Redis, client: FlaskClient):
    ids = make_posts(redis, [f"post {n}" for n in range(45)])
    seen, sizes, url = [], [], "/api/v1/posts?limit=20"
    while url:
        page = client.get(url).get_json()
        sizes.append(len(page["posts"]))
        seen += [p["id"] for p in page["posts"]]
        url = f"/api/v1/posts?limit=20&before={page['next']}" if page["next"] else ""
    assert sizes == [20, 20, 5]
    assert seen == sorted(ids, reverse=True)


def test_page_older_links_walk_the_whole_feed(redis: Redis, client: FlaskClient):
    make_posts(redis, [f"post {n}" for n in range(45)])
    seen, url = [], "/"
    while url:
        page = client.get(url).get_data(as_text=True)
        seen += bodies_on_page(page)
        older = re.search(r'<a href="([^"]+)" rel="next">older', page)
        url = older.group(1).replace("&amp;", "&") if older else ""
    assert seen == [f"post {n}" for n in reversed(range(45))]


def test_handle_page_shows_only_that_texters_posts(twilio: Twilio, drain, client: FlaskClient):
    twilio.text(sender=ALICE, body="from alice")
    twilio.text(sender=BOB, body="from bob")
    drain()
    bob = handle_of_latest(client)
    for path in [f"/@{bob}", f"/@{bob.upper()}"]:
        page = client.get(path).get_data(as_text=True)
        assert bodies_on_page(page) == ["from bob"], path
    api = client.get(f"/api/v1/posts?handle={bob.upper()}").get_json()
    assert [p["body"] for p in api["posts"]] == ["from bob"]


@pytest.mark.parametrize(
    "asked, body",
    [
        ("IranElection", "crowds at Azadi #IranElection"),
        ("iranelection", "crowds at Azadi #IranElection"),
        ("IRANELECTION", "crowds at Azadi #iranElection"),
        ("انتخابات", "صف‌های طولانی #انتخابات"),
    ],
    ids=["as-written", "lower", "upper", "persian"],
)
def test_tag_page_finds_posts_whatever_the_case(twilio: Twilio, drain, client: FlaskClient, asked, body):
    twilio.text(sender=ALICE, body=body)
    twilio.text(sender=ALICE, body="untagged")
    drain()
    assert bodies_on_page(client.get(f"/tags/{asked}").get_data(as_text=True)) == [body]
    api = client.get("/api/v1/posts", query_string={"tag": asked}).get_json()
    assert [p["body"] for p in api["posts"]] == [body]


@pytest.mark.parametrize(
    "path",
    [
        "/@nobody-here-00",
        "/@nobody-here-00/feed.atom",
        "/tags/nothing",
        "/tags/nothing/feed.atom",
        "/tags/%23",
        "/posts/999",
        "/posts/abc",
    ],
    ids=["handle", "handle-atom", "tag", "tag-atom", "empty-tag", "post", "post-not-a-number"],
)
def test_unknown_page_is_an_html_404(redis: Redis, client: FlaskClient, path):
    make_posts(redis, ["something #real"])
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Not found" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/posts?handle=nobody-here-00", "/api/v1/posts?tag=nothing", "/api/v1/posts/999"],
    ids=["handle", "tag", "post"],
)
def test_unknown_api_lookup_is_a_json_404(redis: Redis, client: FlaskClient, path):
    make_posts(redis, ["something #real"])
    response = client.get(path)
    assert response.status_code == 404
    assert response.is_json and response.get_json()["error"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"limit": "-5"},
        {"limit": "2.5"},
        {"before": "-1"},
        {"before": "abc"},
        {"before": "٣"},
        {"handle": "a", "tag": "b"},
    ],
    ids=[
        "limit-zero",
        "limit-over-100",
        "limit-word",
        "limit-negative",
        "limit-fraction",
        "before-negative",
        "before-word",
        "before-persian-digit",
        "handle-and-tag",
    ],
)
def test_bad_paging_parameter_is_a_json_400(client: FlaskClient, params):
    response = client.get("/api/v1/posts", query_string=params)
    assert response.status_code == 400
    assert response.is_json and response.get_json()["error"]


def test_limit_and_before_bound_the_page(redis: Redis, client: FlaskClient):
    ids = make_posts(redis, [f"post {n}" for n in range(5)])
    assert len(client.get("/api/v1/posts?limit=100").get_json()["posts"]) == 5
    page = client.get(f"/api/v1/posts?limit=2&before={ids[3]}").get_json()
    assert [p["id"] for p in page["posts"]] == [ids[2], ids[1]]
    assert page["next"] == ids[1]


@pytest.mark.parametrize("body", ROUND_TRIP_BODIES, ids=ROUND_TRIP_IDS)
def test_text_round_trips_byte_for_byte_into_json_and_atom(twilio: Twilio, drain, client, body):
    twilio.text(sender=ALICE, body=body)
    drain()
    raw_json = client.get("/api/v1/posts").data
    assert body.encode() in raw_json  # unescaped UTF-8, not \uXXXX
    assert client.get("/api/v1/posts").get_json()["posts"][0]["body"] == body
    raw_atom = client.get("/feed.atom").data
    assert body.encode() in raw_atom
    assert feedparser.parse(raw_atom).entries[0].content[0].value == body
    assert bodies_on_page(client.get("/").get_data(as_text=True)) == [body]


@pytest.mark.parametrize(
    "path_for",
    [
        lambda handle: "/feed.atom",
        lambda handle: f"/@{handle}/feed.atom",
        lambda handle: "/tags/%D8%A7%D9%86%D8%AA%D8%AE%D8%A7%D8%A8%D8%A7%D8%AA/feed.atom",
    ],
    ids=["all", "handle", "persian-tag"],
)
def test_atom_feed_parses_and_has_the_entries(
    twilio: Twilio, drain, client: FlaskClient, path_for: Callable[[str], str]
):
    twilio.text(sender=ALICE, body="older #انتخابات")
    twilio.text(sender=ALICE, body="newer #انتخابات")
    drain()
    handle = handle_of_latest(client)
    response = client.get(path_for(handle))
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    feed = feedparser.parse(response.data)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.id.startswith(TEST_PUBLIC_URL)
    self_link = next(link.href for link in feed.feed.links if link.rel == "self")
    assert self_link.startswith(TEST_PUBLIC_URL + "/") and self_link.endswith("/feed.atom")
    assert feed.feed.updated
    assert [e.content[0].value for e in feed.entries] == ["newer #انتخابات", "older #انتخابات"]
    for entry in feed.entries:
        assert entry.author == handle
        assert entry.link.startswith(f"{TEST_PUBLIC_URL}/posts/")
        assert entry.id == entry.link
        assert entry.updated and entry.title


def test_html_escapes_the_body_and_links_tags_and_mentions(twilio: Twilio, drain, client: FlaskClient):
    twilio.text(sender=BOB, body="hello")
    drain()
    bob = handle_of_latest(client)
    twilio.text(sender=ALICE, body=f'<script>alert("x")</script> & <b>hi</b> #Azadi #انتخابات @{bob}')
    drain()
    page = client.get("/").get_data(as_text=True)
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;hi&lt;/b&gt;" in page
    assert '<a href="/tags/Azadi">#Azadi</a>' in page
    assert '<a href="/tags/%D8%A7%D9%86%D8%AA%D8%AE%D8%A7%D8%A8%D8%A7%D8%AA">#انتخابات</a>' in page
    assert f'<a href="/@{bob}">@{bob}</a>' in page
    atom = feedparser.parse(client.get("/feed.atom").data)
    assert atom.entries[0].content[0].value.startswith('<script>alert("x")</script>')


@pytest.mark.parametrize(
    "path",
    ["/", "/feed.atom", "/api/v1/posts", "/api/v1/posts/1"],
    ids=["page", "atom", "api", "api-post"],
)
def test_reads_are_cacheable_and_revalidate_with_etag(redis: Redis, client: FlaskClient, path):
    make_posts(redis, ["first"])
    first = client.get(path)
    assert first.status_code == 200
    assert first.headers["ETag"]
    assert first.cache_control.public and first.cache_control.max_age == 10
    again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    posts.create(redis, posts.NewPost(body="a reply", source="web", display_name="Sara", reply_to=1))
    changed = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != first.headers["ETag"]


def test_mms_media_urls_are_in_the_json_and_linked_on_the_page(twilio: Twilio, drain, client: FlaskClient):
    media = [f"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME{n}" for n in range(2)]
    twilio.text(
        sender=ALICE,
        body="photos from the square",
        NumMedia="2",
        MediaUrl0=media[0],
        MediaContentType0="image/jpeg",
        MediaUrl1=media[1],
        MediaContentType1="image/png",
    )
    drain()
    [post] = client.get("/api/v1/posts").get_json()["posts"]
    assert post["media"] == media
    page = client.get(f"/posts/{post['id']}").get_data(as_text=True)
    assert all(f'href="{url}"' in page for url in media)
    assert client.get(f"/api/v1/posts/{post['id']}").get_json()["media"] == media


def test_post_page_shows_replies_oldest_first(redis: Redis, client: FlaskClient):
    [parent] = make_posts(redis, ["what is happening at the square?"])
    for name, body in [("Sara", "first reply"), ("Reza", "second reply")]:
        posts.create(redis, posts.NewPost(body=body, source="web", display_name=name, reply_to=parent))
    api = client.get(f"/api/v1/posts/{parent}").get_json()
    assert api["body"] == "what is happening at the square?"
    assert [(r["display_name"], r["body"], r["source"]) for r in api["replies"]] == [
        ("Sara", "first reply", "web"),
        ("Reza", "second reply", "web"),
    ]
    page = client.get(f"/posts/{parent}").get_data(as_text=True)
    assert bodies_on_page(page) == ["what is happening at the square?", "first reply", "second reply"]
    assert 'href="/@Sara"' not in page  # a web reply's name is not a texter's handle


def test_hidden_posts_are_not_shown_anywhere(redis: Redis, client: FlaskClient):
    visible, hidden = make_posts(redis, ["visible #tag", "hidden #tag"])
    redis.hset(keys.post(hidden), "hidden", "1")
    assert [p["id"] for p in client.get("/api/v1/posts").get_json()["posts"]] == [visible]
    assert client.get(f"/posts/{hidden}").status_code == 404
    assert client.get(f"/api/v1/posts/{hidden}").status_code == 404
    for path in ["/", "/tags/tag", "/feed.atom"]:
        assert "hidden #tag" not in client.get(path).get_data(as_text=True), path


@pytest.mark.parametrize("path", ["/", "/tags/tag", "/posts/1"], ids=["home", "tag", "post"])
def test_pages_read_right_to_left_where_needed_and_fit_a_phone(redis: Redis, client: FlaskClient, path):
    make_posts(redis, ["سلام #tag"])
    page = client.get(path).get_data(as_text=True)
    assert re.search(r'<html lang="\w+">', page)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<p class="body" dir="auto">سلام' in page
    assert "<script" not in page


def test_reply_form_appears_once_the_reply_route_exists(config: Config, redis: Redis):
    [post_id] = make_posts(redis, ["a post"])
    with_route = create_app(config, {"TESTING": True})
    if "/posts/<int:post_id>/replies" not in {r.rule for r in with_route.url_map.iter_rules()}:
        with_route.add_url_rule(
            "/posts/<int:post_id>/replies", "replies", lambda post_id: "", methods=["POST"]
        )
    response = with_route.test_client().get(f"/posts/{post_id}")
    form = f'<form class="reply" method="post" action="/posts/{post_id}/replies">'
    assert form in response.get_data(as_text=True)
    assert response.cache_control.private  # the form's CSRF token is this reader's alone


@pytest.mark.parametrize("path", ["/", "/feed.atom", "/api/v1/posts", "/tags/news"])
def test_a_page_read_just_before_a_hide_or_rename_shows_the_change_at_once(
    redis: Redis, client: FlaskClient, path: str
):
    author = subscribers.register(redis, "lookup-key", "ciphertext")
    make_posts(redis, ["stays #news", "goes away #news"], author_id=author.id)
    first = client.get(path).get_data(as_text=True)
    assert "goes away" in first and author.handle in first
    assert moderation.set_hidden(redis, 2, True)
    hidden = client.get(path).get_data(as_text=True)
    assert "goes away" not in hidden and "stays" in hidden and author.handle in hidden
    assert account.rename(redis, author.id, "new_name") == "renamed"
    again = client.get(path).get_data(as_text=True)
    assert "goes away" not in again and "stays" in again
    assert "new_name" in again and author.handle not in again


@pytest.mark.parametrize("path", ["/", "/api/v1/posts"], ids=["page", "api"])
def test_the_newest_page_comes_from_memory_until_a_post_shows_differently(
    redis: Redis, client: FlaskClient, path: str, monkeypatch: pytest.MonkeyPatch
):
    """`/` and `/api/v1/posts` are answered in front of Flask while nothing they show has
    changed (gateway/web/feed/fast.py): each change a reader would see shows at once."""
    made: list[str] = []
    read_page = posts.read_page
    monkeypatch.setattr(posts, "read_page", lambda *a, **k: made.append("page") or read_page(*a, **k))
    ali = subscribers.register(redis, "ali-lookup-key", "ciphertext")
    sara = subscribers.register(redis, "sara-lookup-key", "ciphertext")
    make_posts(redis, ["first from ali"], author_id=ali.id)
    make_posts(redis, ["words of sara"], author_id=sara.id)

    def shown() -> str:
        response = client.get(path)
        assert response.status_code == 200 and response.cache_control.public
        return response.get_data(as_text=True)

    first = shown()
    assert shown() == first and made == ["page"]  # the second came from memory
    assert "first from ali" in first and sara.handle in first

    steps: list[tuple[str, Callable[[], object], Callable[[str], bool]]] = [
        (
            "a new post",
            lambda: make_posts(redis, ["ali again"], author_id=ali.id),
            lambda p: "ali again" in p,
        ),
        ("a hide", lambda: moderation.set_hidden(redis, 1, True), lambda p: "first from ali" not in p),
        ("a restore", lambda: moderation.set_hidden(redis, 1, False), lambda p: "first from ali" in p),
        ("a rename", lambda: account.rename(redis, sara.id, "sara_now"), lambda p: "sara_now" in p),
        (
            "a block",
            lambda: moderation.block(redis, "ali-lookup-key"),
            lambda p: "from ali" not in p and "ali again" not in p,
        ),
        ("an unblock", lambda: moderation.unblock(redis, "ali-lookup-key"), lambda p: "ali again" in p),
        ("DELETE", lambda: account.delete_latest(redis, ali.id, "SMdelete"), lambda p: "ali again" not in p),
        (
            "FORGET ME",
            lambda: account.forget(redis, ali.id, "ali-lookup-key"),
            lambda p: "from ali" not in p and "ali again" not in p,
        ),
    ]
    for change, do, seen in steps:
        before = len(made)
        do()
        page = shown()
        assert seen(page), change
        assert len(made) == before + 1, change  # made afresh once
        assert shown() == page and len(made) == before + 1, change  # then from memory again
    assert "words of sara" in page and "sara_now" in page


def test_readers_sending_other_hosts_share_the_newest_page_and_cannot_evict_it(
    redis: Redis, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
):
    """The Host header is the reader's to choose: a thousand of them make no new rendering."""
    made: list[str] = []
    read_page = posts.read_page
    monkeypatch.setattr(posts, "read_page", lambda *a, **k: made.append("page") or read_page(*a, **k))
    make_posts(redis, ["first"])
    first = client.get("/").get_data()
    for n in range(1000):
        assert client.get("/", headers={"Host": f"attacker-{n}.example"}).get_data() == first
    assert made == ["page"]


def test_the_newest_page_is_not_kept_when_a_reader_asks_conditionally_or_with_a_query(
    redis: Redis, client: FlaskClient
):
    make_posts(redis, ["first"])
    first = client.get("/")
    assert client.get("/", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    make_posts(redis, ["second"])
    assert bodies_on_page(client.get("/?").get_data(as_text=True)) == ["second", "first"]
    assert [p["body"] for p in client.get("/api/v1/posts?limit=1").get_json()["posts"]] == ["second"]
    assert bodies_on_page(client.get("/").get_data(as_text=True)) == ["second", "first"]


def test_authors_registered_before_the_handle_index_still_show_their_handle(
    twilio: Twilio, drain, client: FlaskClient, redis: Redis
):
    """Data from before keys.HANDLE_OF (a feed read names that one index in KEYS): a post's
    author missing from it is shown with their handle all the same, and indexed then."""
    twilio.text(sender=ALICE, body="posted before the index")
    drain()
    handle = handle_of_latest(client)
    post = posts.get(redis, client.get("/api/v1/posts?limit=1").get_json()["posts"][0]["id"])
    author = post.author_id if post else None
    redis.delete(keys.HANDLE_OF)  # as an installation upgraded from before it

    redis.config_set("min-replicas-to-write", 1)  # no replica: Redis takes no writes now
    try:
        assert handle_of_latest(client) == handle  # shown all the same, indexed later
        assert redis.hget(keys.HANDLE_OF, str(author)) is None
    finally:
        redis.config_set("min-replicas-to-write", 0)
    assert handle_of_latest(client) == handle
    assert f"@{handle}" in client.get("/").get_data(as_text=True)
    assert redis.hget(keys.HANDLE_OF, str(author)) == handle
    assert account.rename(redis, author or 0, "ali-upgraded") == "renamed"
    assert handle_of_latest(client) == "ali-upgraded"
