"""The Lua scripts behind `sender.py`: each state change of an outbound SMS is one atomic
step in Redis, so two jobs holding the same id can never both call the provider for it.

Statuses rank queued < sending < sent < delivered / undelivered / failed / cancelled; only
"begin" moves a message out of "queued", and only to "sending". Outcomes are counted in
`keys.OUTBOUND_STATS` twice: in all ("sent", "failed:21211") and by provider ("sent@twilio").
Each step is noted for the console's history too (see gateway/store/history.py): the times
of the first call (`t_go`), of the provider's taking it (`t_sent`) and of its end (`t_done`,
with `oc`, the neutral outcome), and the indexes of its provider and outcome.
"""

from gateway.store.history import LUA_INDEX

LUA: dict[str, str] = {}
# KEYS: message, sending zset, claim list, claims zset, stats, the recipient's subscriber hash
# (read with the batch: an id's recipient never changes, it is derived from them), today's
# history index of cancelled SMS.  ARGV: now, id, token, history score, history expiry.
LUA["begin"] = (
    LUA_INDEX
    + """
redis.call('LREM', KEYS[3], 1, ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[3])
local m = redis.call('HMGET', KEYS[1], 'status', 'r', 'body', 'kind', 'force', 'gen')
if not m[1] then return {'gone'} end
if m[1] ~= 'queued' then return {m[1]} end
local s = redis.call('HMGET', KEYS[6], 'phone', 'stopped', 'paused')
if not s[1] or (s[2] == '1' and m[5] ~= '1') or (s[3] == '1' and m[4] ~= 'answer') then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'updated', ARGV[1], 't_done', ARGV[1])
  redis.call('HINCRBY', KEYS[5], 'cancelled', 1)
  kb_index(KEYS[7], ARGV[4], 'out-' .. ARGV[2], ARGV[5])
  -- "off": the recipient stopped or paused (their sender may be told); else they are gone
  if s[1] then return {'cancelled', 'off'} end
  return {'cancelled'}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'sending', 'updated', ARGV[1])
redis.call('HSETNX', KEYS[1], 't_go', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return {'go', m[3], s[1], tostring(attempts), m[6] or '0'}
"""
)
# KEYS: message, sending zset, stats, delayed zset, the recipient's subscriber hash, and the
# history's indexes: the provider's (the SMS's day), this outcome's and opted-out SMS (today's).
# ARGV: outcome (sent/retry/failed/unknown), id, now, the provider's id, segments, error code,
# due, "1" if the recipient opted out, the provider called, the generation
# the call was made under (a provider's report of a retryable failure bumps it and queues the
# SMS again, possibly before this settles: that retry must stand), the neutral outcome of a
# refusal, the history's scores and expiries (the SMS's day, then today's).
LUA["settle"] = (
    LUA_INDEX
    + """
local cur = redis.call('HMGET', KEYS[1], 'status', 'gen')
local same_send = (cur[2] or '0') == ARGV[10]
if ARGV[1] == 'sent' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  if not cur[1] then return 0 end
  if same_send then
    redis.call('HSET', KEYS[1], 'sid', ARGV[4], 'segments', ARGV[5], 'via', ARGV[9], 't_sent', ARGV[3])
    kb_index(KEYS[6], ARGV[12], 'out-' .. ARGV[2], ARGV[13])
    -- "queued" too: the reaper gave up on a slow call that then went through.
    if cur[1] == 'queued' or cur[1] == 'sending' then
      redis.call('HSET', KEYS[1], 'status', 'sent', 'updated', ARGV[3])
    end
  end
  redis.call('HINCRBY', KEYS[3], 'sent', 1)
  redis.call('HINCRBY', KEYS[3], 'sent@' .. ARGV[9], 1)
  return 1
end
if cur[1] ~= 'sending' or not same_send then redis.call('ZREM', KEYS[2], ARGV[2]) return 0 end
redis.call('HSET', KEYS[1], 'error', ARGV[6], 'updated', ARGV[3], 'via', ARGV[9])
kb_index(KEYS[6], ARGV[12], 'out-' .. ARGV[2], ARGV[13])
if ARGV[1] == 'unknown' then return 1 end
kb_index(KEYS[7], ARGV[14], 'out-' .. ARGV[2], ARGV[15])
redis.call('ZREM', KEYS[2], ARGV[2])
if ARGV[1] == 'retry' then
  redis.call('HSET', KEYS[1], 'status', 'queued')
  redis.call('HINCRBY', KEYS[1], 'refused', 1)
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[2])
  redis.call('HINCRBY', KEYS[3], 'retried', 1)
else
  redis.call('HSET', KEYS[1], 'status', 'failed', 't_done', ARGV[3], 'oc', ARGV[11])
  redis.call('HINCRBY', KEYS[3], 'failed:' .. ARGV[6], 1)
  redis.call('HINCRBY', KEYS[3], 'failed:' .. ARGV[6] .. '@' .. ARGV[9], 1)
  if ARGV[8] == '1' then
    redis.call('HSET', KEYS[5], 'stopped', '1')
    kb_index(KEYS[8], ARGV[14], 'out-' .. ARGV[2], ARGV[15])
  end
end
return 1
"""
)
# KEYS: message, sending zset, stats, the replies lane, the fanout lane, today's history index
# of failed SMS.  ARGV: id, now, max attempts, history score, history expiry.
LUA["reap"] = (
    LUA_INDEX
    + """
local m = redis.call('HMGET', KEYS[1], 'status', 'kind', 'attempts', 'refused')
redis.call('ZREM', KEYS[2], ARGV[1])
if m[1] ~= 'sending' then return 0 end
-- Attempts the provider refused sent nothing: only those with no known outcome count here.
if tonumber(m[3] or '0') - tonumber(m[4] or '0') >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'updated', ARGV[2], 't_done', ARGV[2])
  redis.call('HINCRBY', KEYS[3], 'failed:unconfirmed', 1)
  kb_index(KEYS[6], ARGV[4], 'out-' .. ARGV[1], ARGV[5])
  return 2
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'updated', ARGV[2])
local lane = KEYS[4]
if m[2] == 'fanout' then lane = KEYS[5] end
redis.call('RPUSH', lane, ARGV[1])
return 1
"""
)
