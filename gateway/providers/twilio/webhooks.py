"""Twilio's webhooks: their signatures, and their forms read into neutral records.

Twilio signs each webhook with the account's auth token over the full URL it called
plus the sorted POST fields. Behind a TLS proxy the URL we see is not the one Twilio
called, so the URL is rebuilt from PUBLIC_URL plus the request's path and query.

Two webhooks: a text received (`SMS_PATH`, read by `parse_text`) and a status callback
for an SMS we sent (`STATUS_PATH`, read by `parse_report`). Our StatusCallback URL
carries our message id (`?m=<id>`, see `status_callback_url`), so a callback settles
its message even when the worker that sent it died before recording Twilio's answer.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Mapping

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from gateway import phones
from gateway.config import Config
from gateway.providers.records import (
    DELIVERED,
    FAILED,
    PERMANENT,
    UNDELIVERED,
    DeliveryReport,
    InboundText,
    MalformedWebhook,
)
from gateway.providers.twilio import vocabulary

CHANNEL = "twilio"
SMS_PATH = "/twilio/sms"
STATUS_PATH = "/twilio/status"
MAX_MEDIA = 10  # Twilio sends at most 10 media items per MMS
# The answer to every accepted text: empty TwiML, "received, nothing to send back".
EMPTY_TWIML = str(MessagingResponse()).encode()
_ERROR_CODE = re.compile(r"[1-9][0-9]{0,5}")  # a Twilio error code in a status callback


class SignatureChecker:
    def __init__(self, auth_token: str, public_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        self._public_url = public_url.rstrip("/")

    def url_for(self, full_path: str) -> str:
        """The URL Twilio called, from our public URL and the request's path + query."""
        return self._public_url + (full_path.rstrip("?") if full_path.endswith("?") else full_path)

    def is_valid(self, full_path: str, form: Mapping[str, str], signature: str) -> bool:
        if not signature:
            return False
        # werkzeug names a multipart field whose header it cannot read None; Twilio never
        # sends one, and the validator would fail sorting None among the names (a 500).
        if any(not isinstance(name, str) for name in form):
            return False
        url = self.url_for(full_path)
        # The common case first: one HMAC over exactly our URL. `validate` then covers
        # Twilio's variants (the URL with and without an explicit port) at twice the cost.
        expected = self._validator.compute_signature(url, form)
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return True
        return bool(self._validator.validate(url, form, signature))

    def sign(self, full_path: str, form: Mapping[str, str]) -> str:
        """The signature Twilio would send (the simulator and tests use it)."""
        return str(self._validator.compute_signature(self.url_for(full_path), dict(form)))


@functools.lru_cache(maxsize=4)
def checker(config: Config) -> SignatureChecker:
    """The signature checker for `config`'s auth token and public URL (made once)."""
    return SignatureChecker(config.twilio_auth_token, config.public_url)


def sign_url(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """Twilio's signature for a request to the full `url` (the simulator's callbacks use it)."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(form)))


def status_callback_url(public_url: str, message_id: str) -> str:
    """The StatusCallback URL for our SMS `message_id`."""
    return f"{public_url}{STATUS_PATH}?m={message_id}"


def parse_text(form: Mapping[str, str]) -> InboundText:
    """A received text from its webhook's fields (MessageSid, From, Body, NumMedia, MediaUrl<n>)."""
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    address = (form.get("From") or "").strip()
    if not sid or not address:
        raise MalformedWebhook("MessageSid and From are required")
    if len(sid) > 64 or not sid.isascii() or not sid.isprintable():
        raise MalformedWebhook("MessageSid is not a Twilio message id")
    # "whatsapp:+98…" is the same person as "+98…"; the prefix says how to answer them.
    prefix, written = phones.split_prefix(address)
    sender = phones.to_e164(written)  # Twilio writes E.164: no region guesses
    if sender is None:
        raise MalformedWebhook("From is not a phone number")  # never quoted: it may be one
    try:
        num_media = min(int(form.get("NumMedia") or 0), MAX_MEDIA)
    except ValueError:
        raise MalformedWebhook("NumMedia is not a number") from None
    media = tuple(url for n in range(max(num_media, 0)) if (url := form.get(f"MediaUrl{n}", "").strip()))
    return InboundText(
        message_id=sid,
        sender=sender,
        body=form.get("Body") or "",
        media=media,
        channel=CHANNEL,
        prefix=prefix,
    )


def parse_report(form: Mapping[str, str]) -> DeliveryReport | None:
    """A status callback's report; None when MessageSid or MessageStatus is missing. A
    status we do not know reads as "" (the outbox then leaves the message as it is)."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    theirs = form.get("MessageStatus") or form.get("SmsStatus") or ""
    if not sid or not theirs:
        return None
    status = vocabulary.STATUSES.get(theirs.lower(), "")
    # Twilio's codes are a few ASCII digits; str.isdigit() also passes "²" and 5,000-digit
    # strings, which int() then refuses wherever the code is read back (the console).
    code = form.get("ErrorCode", "").strip()
    code = code if _ERROR_CODE.fullmatch(code) else ""
    return DeliveryReport(provider_id=sid[:64], status=status, code=code, outcome=_outcome(status, code))


def _outcome(status: str, code: str) -> str:
    if status == DELIVERED:
        return DELIVERED
    if status in (UNDELIVERED, FAILED):
        return vocabulary.outcome(int(code)) if code else PERMANENT
    return ""
