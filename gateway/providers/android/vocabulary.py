"""The words of SMS Gateway for Android (capcom6's "sms-gate" app), in one table each: its
webhook events, and the failure reasons its `sms:failed` reports carry. Each is
translated here into Kabootar's neutral records (`gateway.providers.records`).

The reasons are Android's own `SmsManager` result codes, as the app words them
("RESULT_ERROR_NO_SERVICE (Failed because service is currently unavailable)"), or the
app's refusal of a number ("Invalid phone number"). The code before the parenthesis is
kept as the label an operator sees; what it means for us is decided here.
"""

from __future__ import annotations

import re

from android_sms_gateway.enums import WebhookEvent

from gateway.providers.records import (
    DELIVERED,
    FAILED,
    INVALID_NUMBER,
    PERMANENT,
    RETRY,
    SENT,
)

RECEIVED = WebhookEvent.SMS_RECEIVED.value
# The events that report on an SMS we sent: (our status, its failure code). `sms:failed`
# carries its code in the report's reason; a cancelled SMS never left.
REPORTS = {
    WebhookEvent.SMS_SENT.value: (SENT, ""),
    WebhookEvent.SMS_DELIVERED.value: (DELIVERED, ""),
    WebhookEvent.SMS_FAILED.value: (FAILED, ""),
    WebhookEvent.SMS_CANCELLED.value: (FAILED, "CANCELLED"),
}

# failure reason code -> (what it means for us, what it says to an operator)
FAILURES: dict[str, tuple[str, str]] = {
    "RESULT_ERROR_GENERIC_FAILURE": (RETRY, "the carrier refused it (often: no credit on the SIM)"),
    "RESULT_ERROR_RADIO_OFF": (RETRY, "the phone's radio is off (flight mode)"),
    "RESULT_ERROR_NO_SERVICE": (RETRY, "the phone has no signal"),
    "RESULT_RADIO_NOT_AVAILABLE": (RETRY, "the phone's radio is not available"),
    "RESULT_NETWORK_ERROR": (RETRY, "a network error on the phone"),
    "RESULT_ERROR_LIMIT_EXCEEDED": (RETRY, "the phone's sending queue is full"),
    "RESULT_NO_MEMORY": (RETRY, "the phone is out of memory"),
    "RESULT_NO_RESOURCES": (RETRY, "the phone is out of resources"),
    "RESULT_SYSTEM_ERROR": (RETRY, "a system error on the phone"),
    "RESULT_MODEM_ERROR": (RETRY, "a modem error on the phone"),
    "RESULT_INTERNAL_ERROR": (RETRY, "an internal error on the phone"),
    "RESULT_SMS_BLOCKED_DURING_EMERGENCY": (RETRY, "blocked during an emergency call"),
    "RESULT_NETWORK_REJECT": (PERMANENT, "the network rejected it"),
    "RESULT_ERROR_FDN_CHECK_FAILURE": (PERMANENT, "the SIM allows only fixed numbers (FDN)"),
    "RESULT_ERROR_SHORT_CODE_NOT_ALLOWED": (PERMANENT, "short codes are not allowed"),
    "RESULT_ERROR_SHORT_CODE_NEVER_ALLOWED": (PERMANENT, "short codes are never allowed"),
    "RESULT_INVALID_SMSC_ADDRESS": (PERMANENT, "the SIM's message centre number is wrong"),
    "RESULT_INVALID_SMS_FORMAT": (PERMANENT, "the SMS format is not valid"),
    "RESULT_ENCODING_ERROR": (PERMANENT, "the text could not be encoded"),
    "RESULT_ERROR_NULL_PDU": (PERMANENT, "the phone built no message"),
    "RESULT_INVALID_ARGUMENTS": (INVALID_NUMBER, "the phone refused the number"),
    "RESULT_OPERATION_NOT_ALLOWED": (PERMANENT, "the phone does not allow sending"),
    "RESULT_CANCELLED": (PERMANENT, "cancelled on the phone"),
    "INVALID_PHONE_NUMBER": (INVALID_NUMBER, "not a valid phone number"),
    "INVALID_PHONE_NUMBER_TYPE": (INVALID_NUMBER, "not a mobile number"),
    "CANCELLED": (PERMANENT, "cancelled before it was sent"),
}
# Longest first, so "Invalid phone number type" is not read as "Invalid phone number".
_BY_LENGTH = sorted(FAILURES, key=len, reverse=True)


def failure_code(reason: str) -> str:
    """The code of a failure reason (a result code, or the app's words as one), or
    "UNKNOWN". Only codes we know come out: a reason is free text that may carry the
    recipient's number ("Invalid phone number +98…"), and the code is stored, shown on the
    console and used as a metrics label."""
    words = re.sub(r"[^A-Za-z0-9]+", "_", reason).strip("_").upper() + "_"
    return next((code for code in _BY_LENGTH if words.startswith(code + "_")), "UNKNOWN")


def outcome(code: str) -> str:
    """What a failure (by its code) means for us; a reason we do not know is permanent."""
    known = FAILURES.get(code)
    return known[0] if known else PERMANENT


def describe(code: str) -> str:
    """What a failure code means, in a few words ("" when unknown)."""
    known = FAILURES.get(code)
    return known[1] if known else ""


def report_outcome(event: str, code: str) -> str:
    """The neutral outcome of a report event: DELIVERED, a failure's outcome, or "" (not final)."""
    status = REPORTS.get(event, ("", ""))[0]
    if status == DELIVERED:
        return DELIVERED
    return outcome(code) if status == FAILED else ""
