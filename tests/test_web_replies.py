"""Replies from the web form on /posts/<id>: CSRF-protected, rate-limited, texted to the author."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis

from gateway.microblog import posts
from gateway.store import keys
from gateway.web import replies as web_replies
from tests.phones import ALI, Phones, phones_on


@pytest.fixture
def phones(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    with phones_on(redis_server, tmp_path) as p:
        yield p


def a_post(redis: Redis, body: str = "the square is full") -> int:
    return posts.create(redis, posts.NewPost(body=body, source="sms"))


def form_token(client: FlaskClient, post_id: int) -> str:
    """Open the post's page as a reader would and take the form's CSRF token."""
    page = client.get(f"/posts/{post_id}").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the post page has no reply form with a CSRF token"
    assert 'dir="auto"' in page
    return match.group(1)


def reply(client: FlaskClient, post_id: int, name: str = "Reader", body: str = "stay safe"):
    data = {"name": name, "body": body, "csrf_token": form_token(client, post_id)}
    return client.post(f"/posts/{post_id}/replies", data=data)


def test_a_web_reply_is_posted_and_reaches_the_author_by_sms(phones: Phones):
    ali = phones.join(ALI, "ali")
    phones.text(ALI, "the bridge is closed #tehran")
    phones.run()
    [post] = posts.page(phones.redis, keys.timeline_user(ali), None, 1)[0]
    client = phones.live.app.test_client()

    response = reply(client, post.id, name="Maryam in Berlin", body="Which bridge? سلام")

    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/posts/{post.id}")
    [made] = posts.replies_to(phones.redis, post.id)
    assert (made.display_name, made.body, made.source) == ("Maryam in Berlin", "Which bridge? سلام", "web")
    assert "Which bridge?" in client.get(f"/posts/{post.id}").get_data(as_text=True)
    phones.run()
    assert phones.received(ALI)[-1] == "Maryam in Berlin (web): Which bridge? سلام"


def test_a_web_reply_texts_no_one_but_the_author(phones: Phones):
    ali = phones.join(ALI, "ali")
    phones.join("+989351112233", "sara")
    phones.say("+989351112233", "FOLLOW #tehran")
    post_id = posts.create(phones.redis, posts.NewPost(body="mine", source="sms", author_id=ali))

    reply(phones.live.app.test_client(), post_id, body="spam for #tehran and @sara")
    phones.run()

    assert phones.received("+989351112233")[-1] == "You follow #tehran now: new posts come to you by SMS."


def test_a_reply_without_the_csrf_token_is_refused(client: FlaskClient, redis: Redis):
    post_id = a_post(redis)
    form_token(client, post_id)  # a session, but the token is left out of the form
    response = client.post(f"/posts/{post_id}/replies", data={"name": "x", "body": "forged"})
    assert response.status_code == 400
    assert "reload the page" in response.get_data(as_text=True)
    assert posts.replies_to(redis, post_id) == []


def test_a_token_from_another_session_is_refused(app, client: FlaskClient, redis: Redis):
    post_id = a_post(redis)
    stolen = form_token(app.test_client(), post_id)
    data = {"name": "x", "body": "forged", "csrf_token": stolen}
    assert client.post(f"/posts/{post_id}/replies", data=data).status_code == 400


@pytest.mark.parametrize(
    "name, body, message",
    [
        ("Reader", "", "Write a reply."),
        ("Reader", "   \n ", "Write a reply."),
        ("", "hello", "Write the name to show with your reply."),
        ("Reader", "x" * 281, "at most 280 characters"),
        ("n" * 41, "hello", "at most 40 characters"),
    ],
    ids=["empty", "blank", "no-name", "too-long", "long-name"],
)
def test_bad_replies_get_a_clear_400(client: FlaskClient, redis: Redis, name, body, message):
    post_id = a_post(redis)
    response = reply(client, post_id, name=name, body=body)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert posts.replies_to(redis, post_id) == []


def test_the_longest_allowed_reply_is_accepted(client: FlaskClient, redis: Redis):
    post_id = a_post(redis)
    assert reply(client, post_id, name="n" * 40, body="ب" * 280).status_code == 303


@pytest.mark.parametrize(
    "path", ["/posts/999/replies", "/posts/abc/replies"], ids=["unknown", "not-a-number"]
)
def test_replying_to_no_such_post_is_404(client: FlaskClient, redis: Redis, path):
    a_post(redis)
    assert client.post(path, data={"name": "x", "body": "y"}).status_code == 404


def test_replying_to_a_hidden_post_is_404(client: FlaskClient, redis: Redis):
    post_id = a_post(redis)
    token = form_token(client, post_id)
    redis.hset(keys.post(post_id), "hidden", "1")
    data = {"name": "x", "body": "y", "csrf_token": token}
    assert client.post(f"/posts/{post_id}/replies", data=data).status_code == 404


def test_a_client_may_reply_five_times_a_minute(client: FlaskClient, redis: Redis):
    post_id = a_post(redis)
    for n in range(web_replies.REPLIES_PER_MINUTE):
        assert reply(client, post_id, body=f"reply {n}").status_code == 303

    response = reply(client, post_id, body="one too many")

    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 61
    assert len(posts.replies_to(redis, post_id)) == web_replies.REPLIES_PER_MINUTE
    data = {"name": "x", "body": "from elsewhere", "csrf_token": form_token(client, post_id)}
    other = client.post(f"/posts/{post_id}/replies", data=data, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 303


def test_client_addresses_are_not_stored(client: FlaskClient, redis: Redis):
    post_id = a_post(redis)
    client.post(f"/posts/{post_id}/replies", data={}, environ_base={"REMOTE_ADDR": "198.51.100.23"})
    assert not [k for k in redis.scan_iter() if "198.51.100.23" in k]
