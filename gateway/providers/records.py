"""The neutral records every SMS provider translates to and from.

A provider module reads its own webhooks into these (a text received, a report on an
SMS we sent) and turns its API's answers into `SendResult` or `SendError`; the rest of
Kabootar knows only these, never a provider's field names, statuses or error codes.
A provider's error code travels with the record as an opaque label for the console
(`code`); what Kabootar does about it is decided by the neutral `outcome`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

# What became of an SMS we asked a provider to send, after an error or a delivery report.
DELIVERED = "delivered"
RETRY = "retry"  # throttled, or the provider in trouble: try again later
OPTED_OUT = "opted_out"  # the recipient told the carrier or the provider STOP
INVALID_NUMBER = "invalid_number"  # no SMS can reach this number
PERMANENT = "permanent"  # any other refusal that trying again will not change
OUTCOMES = (DELIVERED, RETRY, OPTED_OUT, INVALID_NUMBER, PERMANENT)

# Our statuses for an SMS a provider reports on; a provider maps its own names to these.
SENT = "sent"  # the provider has taken it
UNDELIVERED = "undelivered"  # the carrier could not deliver it
FAILED = "failed"  # the provider could not send it


# The code a SendError carries when no answer came at all (no connection, or none in time).
NO_ANSWER = "0"


class MalformedWebhook(ValueError):
    """A webhook lacks what every one of its kind has; the message is safe to show."""


@dataclass(frozen=True)
class InboundText:
    """A text as a provider delivered it; `sender` is the plain number in E.164 (the provider
    module refuses anything else) and never leaves memory.

    `message_id` is unique per text at its provider (a repeat of the same delivery
    carries the same id), so it is what makes processing exactly-once."""

    message_id: str
    sender: str
    body: str
    media: tuple[str, ...] = ()
    received_at: float = field(default_factory=time.time)
    channel: str = ""  # the provider it came through ("twilio", "android"): answers go back the same way
    # The provider's channel within it, when the sender's address named one (Twilio's
    # "whatsapp:+98…" is `sender` "+98…" and prefix "whatsapp"): answers go back that way too.
    prefix: str = ""


@dataclass(frozen=True)
class DeliveryReport:
    """A provider's word on an SMS we sent: its own id for it, our status, and on failure
    the provider's error code (a label) and what it means for us."""

    provider_id: str
    status: str  # SENT, DELIVERED, UNDELIVERED or FAILED
    code: str = ""
    outcome: str = ""  # one of OUTCOMES when the report is final, else ""


@dataclass(frozen=True)
class SendResult:
    """A provider took an SMS: its id for it, and the segments it counted (0: not said)."""

    provider_id: str
    segments: int = 0


class SendError(Exception):
    """A provider did not take an SMS. `outcome` says what to do (one of OUTCOMES but
    DELIVERED); `code` is the provider's error code or HTTP status, a label for the console.

    `outcome_unknown` means the request may have reached the provider (the answer never
    came): the caller must not simply resend. `message` never holds a phone number.
    """

    def __init__(self, code: str, outcome: str, message: str, outcome_unknown: bool = False) -> None:
        super().__init__(f"error {code}: {message}")
        self.code = code
        self.outcome = outcome
        self.message = message
        self.outcome_unknown = outcome_unknown

    @property
    def retryable(self) -> bool:
        return self.outcome == RETRY


class Sender(Protocol):
    """What the outbox sends through: one SMS to one number; `message_id` is ours, so the
    provider's reports on it can name it."""

    def send(self, to: str, body: str, message_id: str) -> SendResult: ...
