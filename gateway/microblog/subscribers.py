"""Texters: registered on their first text under a random handle, found by a keyed hash.

A subscriber is a hash at `kb:sub:<id>` holding the handle, the encrypted number and
their settings. The number's keyed hash maps to the id; nothing maps the other way
except decrypting the stored ciphertext, which only the sender of SMS needs to do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from redis import Redis

from gateway.microblog import handles, text
from gateway.store import keys, scripts

# Atomic registration: two drain jobs seeing the same new number make one subscriber,
# and the handle is claimed in the same step as the id, so no two subscribers share one.
# KEYS: phone index, handle index, handle-of index, the new subscriber's hash, then each
# candidate handle's hold key.  ARGV: lookup key, encrypted number, created time, the new subscriber's id
# (taken beforehand from the seq, as their hash must be named in KEYS), then each candidate
# handle's index key (`handles.key`) and the handle.  Returns {id, handle} for a new
# subscriber, {id, ""} for a known number, false if every candidate is taken.
_REGISTER = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {existing, ''} end
for j = 5, #KEYS do
  local index_key, handle = ARGV[5 + 2 * (j - 5)], ARGV[6 + 2 * (j - 5)]
  if redis.call('HEXISTS', KEYS[2], index_key) == 0 and redis.call('EXISTS', KEYS[j]) == 0 then
    redis.call('HSET', KEYS[2], index_key, ARGV[4])
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
    redis.call('HSET', KEYS[3], ARGV[4], handle)
    redis.call('HSET', KEYS[4], 'handle', handle, 'phone', ARGV[2], 'created', ARGV[3])
    return {ARGV[4], handle}
  end
end
return false
"""


# The same for a batch of numbers in one call, every key named in KEYS (ids taken beforehand).
# KEYS: phone index, handle index, handle-of index, then per number: their would-be subscriber hash and the c
# candidate handles' hold keys.  ARGV: created time, candidates per number (c), then per
# number: lookup key, encrypted number, would-be id, c × (index key, handle).
# Returns per number {id, handle ('' if it was known)}, or {'', ''} when every candidate
# was taken (that number is then registered on its own).
_REGISTER_MANY = """
local c = tonumber(ARGV[2])
local out = {}
local i, k = 3, 4
while i <= #ARGV do
  local key, phone, new_id = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local id, handle = redis.call('HGET', KEYS[1], key), ''
  if not id then
    id = ''
    for j = 0, c - 1 do
      local index_key, candidate = ARGV[i + 3 + 2 * j], ARGV[i + 4 + 2 * j]
      if redis.call('HEXISTS', KEYS[2], index_key) == 0 and redis.call('EXISTS', KEYS[k + 1 + j]) == 0 then
        id, handle = new_id, candidate
        redis.call('HSET', KEYS[2], index_key, id)
        redis.call('HSET', KEYS[1], key, id)
        redis.call('HSET', KEYS[3], id, handle)
        redis.call('HSET', KEYS[k], 'handle', handle, 'phone', phone, 'created', ARGV[1])
        break
      end
    end
  end
  out[#out + 1] = id
  out[#out + 1] = handle
  i = i + 3 + 2 * c
  k = k + 1 + c
end
return out
"""
# Random handles offered per new number in a batch (each free nine times in ten: see
# handles.digits_for); a number all of whose candidates are taken is registered alone.
CANDIDATES = 4


@dataclass(frozen=True)
class Subscriber:
    id: int
    handle: str
    is_new: bool = False


def find_ids(redis: Redis, lookup_keys: list[str]) -> list[int | None]:
    """Subscriber ids for keyed number hashes, one round trip; None where unknown."""
    if not lookup_keys:
        return []
    found = redis.hmget(keys.PHONE_INDEX, lookup_keys)
    return [int(x) if x else None for x in found]


def register(redis: Redis, lookup_key: str, encrypted_phone: str) -> Subscriber:
    """The subscriber with this number, created with a fresh random handle if new."""
    script = scripts.load(redis, _REGISTER)
    # The id is taken first (one more round trip, for first-time texters only); it goes
    # unused only if another job registered the number meanwhile.
    new_id = int(redis.incr(keys.SUBSCRIBER_SEQ))
    for _ in range(20):
        candidates = _keyed(handles.candidates(8, population=new_id))
        holds = [handles.hold_key_of(k) for k, _ in candidates]
        result = script(
            keys=[keys.PHONE_INDEX, keys.HANDLE_INDEX, keys.HANDLE_OF, keys.subscriber(new_id), *holds],
            args=[
                lookup_key,
                encrypted_phone,
                f"{time.time():.3f}",
                new_id,
                *(x for pair in candidates for x in pair),
            ],
        )
        if result:
            sub_id, handle = result
            if handle:
                return Subscriber(int(sub_id), handle, is_new=True)
            return Subscriber(int(sub_id), handle_of(redis, int(sub_id)) or "")
    raise RuntimeError("could not find a free handle")  # 160 random candidates all taken


def _keyed(candidates: list[str]) -> list[tuple[str, str]]:
    """(key, handle) of each candidate: its key is taken once, for the index and its hold."""
    return [(handles.key(h), h) for h in candidates]


def register_many(redis: Redis, numbers: Sequence[tuple[str, str]]) -> list[Subscriber]:
    """`register` for many (lookup key, encrypted number) at once, in one round trip (a
    drain batch full of first-time texters: a crisis's usual case). A number all of whose
    candidate handles were taken is registered on its own, with fresh candidates."""
    if not numbers:
        return []
    # The ids are taken first (their hashes must be named in KEYS); one goes unused where a
    # number turns out to be known already.
    first = int(redis.incrby(keys.SUBSCRIBER_SEQ, len(numbers))) - len(numbers) + 1
    script_keys = [keys.PHONE_INDEX, keys.HANDLE_INDEX, keys.HANDLE_OF]
    args: list[str | int] = [f"{time.time():.3f}", CANDIDATES]
    for new_id, (lookup_key, encrypted) in enumerate(numbers, start=first):
        candidates = _keyed(handles.candidates(CANDIDATES, population=new_id))
        script_keys += [keys.subscriber(new_id), *(handles.hold_key_of(k) for k, _ in candidates)]
        args += [lookup_key, encrypted, new_id, *(x for pair in candidates for x in pair)]
    flat = scripts.load(redis, _REGISTER_MANY)(keys=script_keys, args=args)
    found = []
    for (lookup_key, encrypted), sub_id, handle in zip(numbers, flat[::2], flat[1::2], strict=True):
        if not sub_id:
            found.append(register(redis, lookup_key, encrypted))
        elif handle:
            found.append(Subscriber(int(sub_id), handle, is_new=True))
        else:
            found.append(Subscriber(int(sub_id), handle_of(redis, int(sub_id)) or ""))
    return found


def set_channels(redis: Redis, channels: dict[int, tuple[str, str]]) -> None:
    """Note the channel (provider) each texter texted through last, and the provider's own
    channel prefix if their address had one ("whatsapp"), in one round trip: SMS to them
    go back that way."""
    if not channels:
        return
    pipe = redis.pipeline(transaction=False)
    for sub_id, (channel, prefix) in channels.items():
        pipe.hset(keys.subscriber(sub_id), "ch", channel)
        if prefix:
            pipe.hset(keys.subscriber(sub_id), "pre", prefix)
        else:
            pipe.hdel(keys.subscriber(sub_id), "pre")
    pipe.execute()


def handle_of(redis: Redis, sub_id: int) -> str | None:
    return cast(str | None, redis.hget(keys.subscriber(sub_id), "handle"))


def handles_of(redis: Redis, sub_ids: list[int]) -> dict[int, str]:
    """Current handles for several subscribers, one round trip."""
    unique = list(dict.fromkeys(sub_ids))
    pipe = redis.pipeline(transaction=False)
    for sub_id in unique:
        pipe.hget(keys.subscriber(sub_id), "handle")
    return {sub_id: h for sub_id, h in zip(unique, pipe.execute(), strict=True) if h}


def id_for_handle(redis: Redis, handle: str) -> int | None:
    """The subscriber whose handle is, or looks like, `handle` (a name longer than any handle
    can be names no one, and costs no skeleton or lookup)."""
    if len(handle) > text.HANDLE_MAX:
        return None
    found = redis.hget(keys.HANDLE_INDEX, handles.key(handle))
    return int(found) if found else None
