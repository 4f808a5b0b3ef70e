"""The one Twilio adapter (inbound half): webhook signatures.

Twilio signs each webhook with the account's auth token over the full URL it called
plus the sorted POST fields. Behind a TLS proxy the URL we see is not the one Twilio
called, so the URL is rebuilt from PUBLIC_URL plus the request's path and query.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator


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
        return bool(self._validator.validate(self.url_for(full_path), form, signature))

    def sign(self, full_path: str, form: Mapping[str, str]) -> str:
        """The signature Twilio would send (the simulator and tests use it)."""
        return str(self._validator.compute_signature(self.url_for(full_path), dict(form)))


def empty_twiml() -> str:
    """The TwiML that tells Twilio "received, nothing to send back"."""
    from twilio.twiml.messaging_response import MessagingResponse

    return str(MessagingResponse())
