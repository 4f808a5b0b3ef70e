"""Every Redis key Kabootar uses. Nothing else spells "kb:" (RQ's queue names are in
`queues.py`).

Keys that name a subscriber use its numeric id or the keyed hash of its number,
never the number itself.
"""

PREFIX = "kb:"

# Inbound pipeline
INBOX = PREFIX + "inbox"  # list of message ids of texts waiting to become posts
INBOX_DRAIN_SCHEDULED = PREFIX + "inbox:drain-scheduled"  # set while a drain job is queued or running
INBOX_CLAIMS = PREFIX + "inbox:claims"  # zset: claim token -> time it was taken


def inbound_message(sid: str) -> str:
    """Hash holding one received text until it is posted (the number only encrypted)."""
    return f"{PREFIX}in:{sid}"


def seen_message(sid: str) -> str:
    """Dedupe marker of a text's message id: "0" while queued, then the id of the post it made."""
    return f"{PREFIX}seen:{sid}"


def inbox_claim(token: str) -> str:
    """List of message ids one drain job has taken from the inbox and not yet finished."""
    return f"{PREFIX}inbox:claim:{token}"


# Subscribers (texters)
SUBSCRIBER_SEQ = PREFIX + "sub:seq"
PHONE_INDEX = PREFIX + "sub:by-phone"  # hash: keyed hash of the number -> subscriber id
HANDLE_INDEX = PREFIX + "sub:by-handle"  # hash: handle's confusable skeleton (handles.key) -> subscriber id
# hash: subscriber id -> current handle, beside the subscriber's own hash: a feed read names
# this one key in KEYS to show every author's handle (microblog/posts.py).
HANDLE_OF = PREFIX + "sub:handle-of"


def handle_hold(digest: str) -> str:
    """A freed handle, unavailable to others until it expires: the id of the subscriber who
    freed it with NAME (they may take it back), or "" after FORGET ME."""
    return f"{PREFIX}sub:held:{digest}"


def handles_held_for(sub_id: int | str) -> str:
    """Set of the `handle_hold` keys held for one subscriber (FORGET ME makes them no one's)."""
    return f"{PREFIX}sub:{sub_id}:held"


def subscriber(sub_id: int | str) -> str:
    """Hash: handle, encrypted number, bio, flags."""
    return f"{PREFIX}sub:{sub_id}"


# Posts
POST_SEQ = PREFIX + "post:seq"
TIMELINE_ALL = PREFIX + "tl:all"  # zset of post ids scored by id
# Counter: bumped whenever a post already listed changes how it shows (hidden, restored,
# erased, its author renamed or forgotten). New posts change the timeline's size instead.
FEED_GENERATION = PREFIX + "feed:generation"


def post(post_id: int | str) -> str:
    return f"{PREFIX}post:{post_id}"


def timeline_user(sub_id: int | str) -> str:
    return f"{PREFIX}tl:user:{sub_id}"


def timeline_tag(tag: str) -> str:
    """Posts carrying a tag; `tag` is already case-folded."""
    return f"{PREFIX}tl:tag:{tag}"


def replies(post_id: int | str) -> str:
    return f"{PREFIX}post:{post_id}:replies"


# Health
WORKER_HEARTBEAT = PREFIX + "workers:heartbeat"  # zset: worker name -> last beat (unix time)
# Hash (store/primary.py): the Redis primary last seen taking writes ("run_id", "address",
# "seen_at") and its last change ("changed_at", "changed_from", "down_for": how long writes
# failed around it). Replicated with everything else, so a promoted replica inherits it.
REDIS_PRIMARY = PREFIX + "redis:primary"
# Never holds a value: deleting it asks "would you take a write?" without writing anything.
WRITE_PROBE = PREFIX + "redis:write-probe"


# Outbound SMS (gateway/outbox/). A lane is "replies" (answers, DMs) or "fanout" (bulk).
OUTBOUND_SENDING = PREFIX + "out:sending"  # zset: message id -> when its API call began
OUTBOUND_STATS = PREFIX + "out:stats"  # hash: outcome ("sent", "retried", "failed:21211", …) -> count


def outbound_message(message_id: str) -> str:
    """Hash for one SMS: recipient id, body, kind, status, attempts, error (never the number)."""
    return f"{PREFIX}out:msg:{message_id}"


def outbound_lane(lane: str) -> str:
    """List of message ids waiting to be sent in a lane."""
    return f"{PREFIX}out:lane:{lane}"


def outbound_delayed(lane: str) -> str:
    """Zset: message id -> when its retry is due."""
    return f"{PREFIX}out:delayed:{lane}"


def outbound_claims(lane: str) -> str:
    """Zset: claim token -> last heartbeat of the send job holding it."""
    return f"{PREFIX}out:claims:{lane}"


def outbound_claim(token: str) -> str:
    """List of message ids one send job has taken from a lane and not yet finished."""
    return f"{PREFIX}out:claim:{token}"


def outbound_drain_scheduled(lane: str, helper: int = 0) -> str:
    """Set while a send job for the lane is queued, running or scheduled (`helper` n > 0:
    the n-th extra job that helps it through a large backlog, see sender.call_helpers)."""
    return f"{PREFIX}out:drain-scheduled:{lane}" + (f":helper:{helper}" if helper else "")


# The provider simulators are the providers, not us: its data lives under its own prefix.
SIMULATOR_PREFIX = "sim:"


# Follows, commands, fan-out and web replies (microblog/follows.py, commands/actions.py, web/replies.py)
def following(sub_id: int | str) -> str:
    """Set: ids of the subscribers this subscriber follows."""
    return f"{PREFIX}fol:{sub_id}:users"


def following_tags(sub_id: int | str) -> str:
    """Set: case-folded tags this subscriber follows."""
    return f"{PREFIX}fol:{sub_id}:tags"


def followers(sub_id: int | str) -> str:
    """Set: ids of the subscribers who follow this one."""
    return f"{PREFIX}fans:user:{sub_id}"


def tag_followers(tag: str) -> str:
    """Set: ids of the subscribers who follow a tag; `tag` is already case-folded."""
    return f"{PREFIX}fans:tag:{tag}"


def confirmation(sub_id: int | str) -> str:
    """A question waiting for a texter's YES (FORGET ME's): when it was asked; expires."""
    return f"{PREFIX}confirm:{sub_id}"


def dm_rate(sub_id: int | str) -> str:
    """Zset: a texter's direct messages of the last hour (message id -> when), for DM_PER_HOUR."""
    return f"{PREFIX}rate:dms:{sub_id}"


def command_done(sid: str) -> str:
    """What a command that must not run twice (DELETE) did for a text (its message id)."""
    return f"{PREFIX}cmd:{sid}"


def web_reply_rate(client: str, window: int) -> str:
    """Counter: web replies from one client (a keyed hash of its address) in one minute."""
    return f"{PREFIX}web:replies:{client}:{window}"


# Operator console: counters, moderation, accounts (store/stats.py, microblog/moderation.py, ops/)
STATS_TOTAL = PREFIX + "stats:total"  # hash: counter name -> count since the data began
# Block tombstones (microblog/moderation.py): keyed hash of a number -> JSON {"at", "hide"};
# they outlive FORGET ME. The told set: the blocked numbers already sent their one neutral SMS.
BLOCKS = PREFIX + "mod:blocks"
BLOCKS_TOLD = PREFIX + "mod:blocks:told"
MODERATION_LOG = PREFIX + "mod:log"  # capped list of JSON lines: who hid/blocked what, when
OPS_USERS = PREFIX + "ops:users"  # hash: operator name -> werkzeug password hash
OPS_AUDIT = PREFIX + "ops:audit"  # list, newest first: JSON entries of bulk actions (ops/audit.py)
# Alerts (ops/alerts.py, ops/alert_webhook.py), hashes by alert id: since when it fires (unix
# time), and what was announced to ALERT_WEBHOOK_URL (its JSON); the webhook's check lock.
ALERTS_SINCE = PREFIX + "ops:alerts:since"
ALERTS_ANNOUNCED = PREFIX + "ops:alerts:announced"
ALERTS_CHECK_LOCK = PREFIX + "ops:alerts:check"


def stats_minute(minute: int) -> str:
    """Hash: counter name -> count during one minute (unix time // 60); expires after ~2 hours."""
    return f"{PREFIX}stats:m:{minute}"


# Charts (store/buckets.py, store/rollup.py): a week of per-minute buckets.
CHART_ROLLED = PREFIX + "chart:rolled"  # the last minute (unix time // 60) copied into the buckets
CHART_OUTCOMES_SEEN = PREFIX + "chart:outcomes"  # hash: OUTBOUND_STATS as the last rollup read it


def chart_day(series: str, day: int) -> str:
    """String: one series' per-minute values for one UTC day (unix time // 86400), 4 bytes a minute."""
    return f"{PREFIX}chart:{series}:{day}"


def chart_rollup(minute: int) -> str:
    """Set (NX) by the one worker that rolls up the minutes before `minute`."""
    return f"{PREFIX}chart:lock:{minute}"


def ops_login_backoff(scope: str, key: str) -> str:
    """Hash {n: failed logins, until: when the next try is checked} for one throttle scope:
    "account" (an operator name), "addr" or "pair" (keyed hashes: no client address is stored)."""
    return f"{PREFIX}ops:backoff:{scope}:{key}"


def ops_session(digest: str) -> str:
    """An operator's console session (its id's SHA-256, never the id): the operator's name."""
    return f"{PREFIX}ops:session:{digest}"


def ops_sessions_of(name: str) -> str:
    """Set of the digests of one operator's sessions, so all can be ended at once."""
    return f"{PREFIX}ops:sessions:{name}"


# Sender throttling (pipeline/throttle.py)
INBOX_DEFERRED = PREFIX + "inbox:deferred"  # zset: message id -> when it may be posted


def post_rate(sub_id: int | str, minute: int | str) -> str:
    """Counter: posts one texter made in one minute (unix time // 60)."""
    return f"{PREFIX}rate:posts:{sub_id}:{minute}"


# Worker crash recovery (workers/recovery.py, workers/dequeue.py)
RECOVERY_LOCK = PREFIX + "workers:recovery"  # held by the one watchdog taking over dead workers' jobs
WORKERS_RECOVERED = PREFIX + "workers:recovered"  # zset: dead worker -> its last beat, once taken over


def worker_popped(name: str) -> str:
    """List of RQ job ids a worker has taken off the queues and not yet registered as started."""
    return f"{PREFIX}worker:{name}:popped"


# Send rate, per provider (outbox/pacing.py)
def outbound_pacing(provider: str) -> str:
    """The provider's token bucket: the theoretical arrival time of its next segment (ms)."""
    return f"{PREFIX}out:pacing:{provider}"


def outbound_window(provider: str) -> str:
    """Zset of the provider's calls in flight: "<call id>|<segments>" -> leaves the window at (ms)."""
    return f"{PREFIX}out:window:{provider}"


# Providers' health (outbox/routes.py)
def provider(name: str) -> str:
    """Hash: a provider's health. "failing": since when (unix time) its API refuses with
    retryable errors, with no success since; "reports_failing": since when it reports SMS it
    took as failed with retryable errors, with none sent or delivered since; "down": "1" while
    an operator marks it down; "last_ok": when it last took an SMS; "unreachable": since when
    its API does not answer a probe."""
    return f"{PREFIX}prov:{name}"


def provider_trial(provider: str) -> str:
    """Held for routes.TRIAL_SECONDS once a failed-over provider was given one SMS to try."""
    return f"{PREFIX}prov:{provider}:trial"


def provider_probe(provider: str) -> str:
    """Held for a probe's interval by the worker that probes the provider (one at a time)."""
    return f"{PREFIX}prov:{provider}:probe"


# Message history (store/history.py writes it, ops/history.py reads it). An SMS's own record
# is its `outbound_message` hash; a received text's is `history_inbound`.
def history_inbound(sid: str) -> str:
    """Hash: what became of one received text (times, channel, masked country code, its
    texter's id, the post or command it made); never the number or a direct message's text."""
    return f"{PREFIX}hist:in:{sid}"


def history_index(day: int, name: str) -> str:
    """Zset of one day's (unix time // 86400) history ids under one filter value ("all", "in",
    "out", "p:<provider>", "o:<outcome>", "h:<subscriber id>") -> time in ms; expires with
    the retention (HISTORY_DAYS)."""
    return f"{PREFIX}hist:ix:{day}:{name}"


def history_sms_of(intent: str) -> str:
    """Set: ids of the SMS queued for one intent ("answer:<sid>", "post:<id>"), so a text's
    timeline finds the SMS it caused."""
    return f"{PREFIX}hist:sms:{intent}"
