"""Every Redis key and queue name Kabootar uses. Nothing else spells "kb:".

Keys that name a subscriber use its numeric id or the keyed hash of its number,
never the number itself.
"""

PREFIX = "kb:"

# RQ queues, highest priority first: a worker drains them in this order.
QUEUE_INBOUND = "kb-inbound"  # drain jobs that turn stored texts into posts
QUEUE_REPLIES = "kb-replies"  # answers to a texter's own command, direct messages
QUEUE_FANOUT = "kb-fanout"  # bulk: a post to its followers
QUEUES = (QUEUE_INBOUND, QUEUE_REPLIES, QUEUE_FANOUT)

# Inbound pipeline
INBOX = PREFIX + "inbox"  # list of MessageSids waiting to become posts
INBOX_DRAIN_SCHEDULED = PREFIX + "inbox:drain-scheduled"  # set while a drain job is queued or running
INBOX_CLAIMS = PREFIX + "inbox:claims"  # zset: claim token -> time it was taken


def inbound_message(sid: str) -> str:
    """Hash holding one received text until it is posted (the number only encrypted)."""
    return f"{PREFIX}in:{sid}"


def seen_message(sid: str) -> str:
    """MessageSid dedupe marker: "0" while queued, then the id of the post it made."""
    return f"{PREFIX}seen:{sid}"


def inbox_claim(token: str) -> str:
    """List of MessageSids one drain job has taken from the inbox and not yet finished."""
    return f"{PREFIX}inbox:claim:{token}"


# Subscribers (texters)
SUBSCRIBER_SEQ = PREFIX + "sub:seq"
PHONE_INDEX = PREFIX + "sub:by-phone"  # hash: keyed hash of the number -> subscriber id
HANDLE_INDEX = PREFIX + "sub:by-handle"  # hash: case-folded handle -> subscriber id


def subscriber(sub_id: int | str) -> str:
    """Hash: handle, encrypted number, bio, flags."""
    return f"{PREFIX}sub:{sub_id}"


# Posts
POST_SEQ = PREFIX + "post:seq"
TIMELINE_ALL = PREFIX + "tl:all"  # zset of post ids scored by id


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
