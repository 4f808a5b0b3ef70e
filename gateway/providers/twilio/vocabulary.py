"""Twilio's words, in one table each: its message statuses, its error codes, and the opt-out
keywords it answers itself. Each is translated here into Kabootar's neutral records
(`gateway.providers.records`); nothing outside this package knows a Twilio code.

Error codes: https://www.twilio.com/docs/api/errors. Like nyaruka/courier's table,
throttling and trouble at Twilio retry, a recipient's opt-out or a number no SMS can
reach do not.
"""

from __future__ import annotations

from gateway.providers.records import (
    DELIVERED,
    FAILED,
    INVALID_NUMBER,
    OPTED_OUT,
    PERMANENT,
    RETRY,
    SENT,
    UNDELIVERED,
)

# Twilio's message statuses, as ours: anything Twilio reports means it has taken the SMS.
STATUSES = {
    "accepted": SENT,
    "scheduled": SENT,
    "queued": SENT,
    "sending": SENT,
    "sent": SENT,
    "delivered": DELIVERED,
    "read": DELIVERED,
    "partially_delivered": DELIVERED,
    "undelivered": UNDELIVERED,
    "failed": FAILED,
    "canceled": FAILED,
}

# code -> (what it means for us, what it says to an operator)
ERRORS: dict[int, tuple[str, str]] = {
    20429: (RETRY, "too many requests"),
    21611: (RETRY, "the sender's outgoing queue is full"),
    30001: (RETRY, "queue overflow"),
    14107: (RETRY, "rate limit exceeded"),
    21610: (OPTED_OUT, "recipient unsubscribed (sent STOP)"),
    21211: (INVALID_NUMBER, "invalid 'To' number"),
    21612: (INVALID_NUMBER, "'To' cannot be reached by SMS"),
    21614: (INVALID_NUMBER, "'To' is not a mobile number"),
    30005: (INVALID_NUMBER, "unknown destination handset"),
    30006: (INVALID_NUMBER, "landline or unreachable carrier"),
    21408: (PERMANENT, "region not enabled on the account"),
    21602: (PERMANENT, "body required"),
    21606: (PERMANENT, "'From' cannot send SMS"),
    21617: (PERMANENT, "body too long"),
    30002: (PERMANENT, "account suspended"),
    30003: (PERMANENT, "unreachable handset (off or out of coverage)"),
    30004: (PERMANENT, "message blocked by the recipient or carrier"),
    30007: (PERMANENT, "filtered by the carrier (spam)"),
    30008: (PERMANENT, "unknown error"),
}

# Twilio answers these itself (its standard opt-out keywords, REVOKE and OPTOUT since 2025),
# so Kabootar must not.
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})


def outcome(code: int | None, http_status: int = 400) -> str:
    """What an error answer from Twilio means for us: HTTP 429 and 5xx retry whatever the
    code; otherwise the code's entry, and a code we do not know is permanent."""
    if http_status == 429 or http_status >= 500:
        return RETRY
    known = ERRORS.get(code or http_status)
    return known[0] if known else PERMANENT


def describe(code: str) -> str:
    """What a Twilio error code (or an HTTP status its API answered) means, in a few words."""
    if code.isdecimal() and len(code) <= 6:
        known = ERRORS.get(int(code))
        if known:
            return known[1]
        if 400 <= int(code) < 600:
            return f"HTTP {code} from the Twilio API"
    return ""


def answers_itself(keyword: str) -> bool:
    """Whether Twilio confirms this opt-out keyword to the texter on its own."""
    return keyword.upper() in OPT_OUT_KEYWORDS
