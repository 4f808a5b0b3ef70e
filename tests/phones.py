"""Phones that text a live gateway and read what they receive, for conversation tests.

Texts go in through the signed webhook of each phone's channel (Twilio's unless a test
puts a phone on the Android one); real RQ workers run every job (drain, fan-out, send);
the SMS reach the built-in simulators over real HTTP, and each phone's inbox is read from
the simulated handsets, which is what a person holding that phone would see.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from gateway.microblog import account, subscribers
from gateway.providers.android.simulator import phones as android_phones
from gateway.providers.simulated import handsets
from gateway.store import keys
from tests.conftest import Twilio, run_workers
from tests.simulated import Live, running

ALI, SARA, REZA = "+989121234567", "+989351112233", "+14155550123"


class Phones:
    def __init__(self, live: Live, channels: dict[str, str] | None = None) -> None:
        self.live = live
        self.redis = live.redis
        self.twilio = Twilio(live.app.test_client(), live.config)
        self.channels = channels or {}  # number -> "android" for the phone's channel; else Twilio

    def text(self, number: str, body: str) -> str:
        """Text the gateway from `number` through its channel; returns the text's message id."""
        if self.channels.get(number) == "android":
            return self._text_by_phone(number, body)
        form = self.twilio.form(sender=number, body=body)
        assert self.twilio.post(form).status_code == 200
        return form["MessageSid"]

    def _text_by_phone(self, number: str, body: str) -> str:
        path, data, headers = android_phones.text_webhook(self.live.config, number, body)
        with self.live.app.test_client() as client:
            assert client.post(path, data=data, headers=headers).status_code == 200
        return f"android:{json.loads(data)['id']}"

    def channels_received(self, number: str) -> set[str]:
        """The channels the SMS this phone received came through."""
        return {m["channel"] for m in handsets.inbox_for(self.redis, number)}

    def run(self) -> None:
        """Let the workers do everything queued: posts, commands, fan-out, sending."""
        run_workers(self.live.runtime)

    def say(self, number: str, body: str) -> list[str]:
        """Text, let the workers run, and return what this phone received meanwhile."""
        before = len(self.received(number))
        self.text(number, body)
        self.run()
        return self.received(number)[before:]

    def received(self, number: str) -> list[str]:
        """The SMS bodies this phone has received, oldest first."""
        return [m["body"] for m in handsets.inbox_for(self.redis, number)]

    def sub_id(self, number: str) -> int | None:
        [found] = subscribers.find_ids(self.redis, [self.live.runtime.vault.lookup_key(number)])
        return found

    def join(self, number: str, handle: str) -> int:
        """Register `number` by texting (a post), then give it a known handle."""
        self.text(number, f"hello, {handle} here")
        self.run()
        sub_id = self.sub_id(number)
        assert sub_id is not None
        assert account.rename(self.redis, sub_id, handle) == "renamed"
        return sub_id

    def timeline(self) -> list[str]:
        """Bodies of every public post, newest first."""
        ids = self.redis.zrevrange(keys.TIMELINE_ALL, 0, -1)
        return [self.redis.hget(keys.post(i), "body") or "" for i in ids]


@contextlib.contextmanager
def phones_on(
    redis_server: str, tmp_path: Path, channels: dict[str, str] | None = None, **env: str
) -> Iterator[Phones]:
    """A live gateway and phones to text it; test modules wrap it in a `phones` fixture.
    `channels` puts numbers on the Android phone's channel; `env` adds settings."""
    if channels and "SMS_PROVIDERS" not in env:
        env["SMS_PROVIDERS"] = "twilio,android"
    with running(redis_server, tmp_path, **env) as live:
        yield Phones(live, channels)
