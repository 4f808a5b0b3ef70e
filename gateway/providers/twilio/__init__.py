"""The one Twilio adapter: webhook signatures (inbound) and sending SMS (outbound).

Twilio signs each webhook with the account's auth token over the full URL it called
plus the sorted POST fields. Behind a TLS proxy the URL we see is not the one Twilio
called, so the URL is rebuilt from PUBLIC_URL plus the request's path and query.

Sending goes through `twilio.rest.Client` pointed at TWILIO_API_BASE_URL (Twilio, the
built-in simulator, or any mock of Twilio's OpenAPI spec). Failures come back as one
`SendError` whose `retryable` says what the sender should do, after nyaruka/courier's
table: throttling and server trouble retry, a recipient's opt-out or a bad number do not.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import logging
import os
import queue
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from gateway.config import Config
from gateway.phones import redact


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


def sign_url(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """Twilio's signature for a request to the full `url` (the simulator's callbacks use it)."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(form)))


def empty_twiml() -> str:
    """The TwiML that tells Twilio "received, nothing to send back"."""
    from twilio.twiml.messaging_response import MessagingResponse

    return str(MessagingResponse())


# Twilio error codes (https://www.twilio.com/docs/api/errors) that mean "try again later".
RETRYABLE_CODES = {
    20429: "too many requests",
    21611: "the sender's outgoing queue is full",
    30001: "queue overflow",
    14107: "rate limit exceeded",
}
# The recipient replied STOP to our number: Twilio refuses until they send START.
STOPPED_CODES = {21610: "recipient unsubscribed"}
# Everything else is permanent; the usual ones, for the operators' table.
PERMANENT_CODES = {
    21211: "invalid 'To' number",
    21408: "region not enabled",
    21602: "body required",
    21606: "'From' cannot send SMS",
    21612: "'To' not reachable by SMS",
    21614: "'To' is not a mobile number",
    21617: "body too long",
    30003: "unreachable handset",
    30004: "message blocked",
    30005: "unknown destination",
    30006: "landline or unreachable carrier",
    30007: "filtered as spam",
    30008: "unknown error",
}
API_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class SendResult:
    sid: str
    status: str  # Twilio's: "queued", "accepted", …
    num_segments: int


class SendError(Exception):
    """Twilio did not take the message. `code` is Twilio's error code (or the HTTP status).

    `outcome_unknown` means the request may have reached Twilio (the answer never came):
    the caller must not simply resend. `message` never holds a phone number.
    """

    def __init__(
        self, code: int, http_status: int, retryable: bool, message: str, outcome_unknown: bool = False
    ) -> None:
        super().__init__(f"Twilio error {code} (HTTP {http_status}): {message}")
        self.code = code
        self.http_status = http_status
        self.retryable = retryable
        self.message = message
        self.outcome_unknown = outcome_unknown

    @property
    def stopped(self) -> bool:
        """The recipient opted out with Twilio (STOP): mark them stopped."""
        return self.code in STOPPED_CODES


def classify(http_status: int, code: int | None, message: str = "") -> SendError:
    """The SendError for an HTTP error answer from Twilio's API."""
    code = code or http_status
    retryable = http_status == 429 or http_status >= 500 or code in RETRYABLE_CODES
    described = STOPPED_CODES.get(code) or PERMANENT_CODES.get(code) or RETRYABLE_CODES.get(code)
    return SendError(code, http_status, retryable, redact(message or described or "error"))


def _never_reached(e: requests.RequestException) -> bool:
    """Whether the request certainly never got to Twilio (no connection was made)."""
    if isinstance(e, requests.ConnectTimeout):
        return True
    reason = e.args[0] if e.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, ConnectTimeoutError)


class TwilioSender:
    """Sends SMS through Twilio's REST API (or whatever TWILIO_API_BASE_URL points at).

    The sender sends from several threads at once. Each send borrows a `twilio.rest.Client`
    from a pool and gives it back, so its HTTP session keeps the connection alive for the
    next SMS, and there are never more clients than sends at once (send jobs start new
    threads each time: a client per thread would pile up for as long as the worker runs).
    """

    def __init__(self, config: Config) -> None:
        self._config = config
        self._from = config.twilio_from
        self._service = config.twilio_messaging_service_sid
        self._idle: queue.SimpleQueue[Client] = queue.SimpleQueue()

    def _new_client(self) -> Client:
        # A quiet logger: twilio's own logs every request at INFO.
        http_log = logging.getLogger("gateway.twilio.http")
        http_log.setLevel(logging.WARNING)
        base_url = self._config.twilio_api_base_url.rstrip("/")
        # The environment's proxy and CA settings, read once here: requests would otherwise
        # scan os.environ (and look for ~/.netrc) on every call, a tenth of a send's CPU.
        proxies = requests.utils.get_environ_proxies(base_url)
        http = TwilioHttpClient(timeout=API_TIMEOUT_SECONDS, logger=http_log, proxy=proxies or None)
        if http.session is not None:
            http.session.trust_env = False
            ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            http.session.verify = ca_bundle or True
        # environment={}: TWILIO_EDGE/REGION from the process must not rewrite our base URL.
        client = Client(
            self._config.twilio_account_sid,
            self._config.twilio_auth_token,
            http_client=http,
            environment={},
        )
        client.api.base_url = base_url
        return client

    @contextlib.contextmanager
    def _client(self) -> Iterator[Client]:
        try:
            client = self._idle.get_nowait()
        except queue.Empty:
            client = self._new_client()
        try:
            yield client
        finally:
            self._idle.put(client)

    def close(self) -> None:
        """Close the pooled clients' HTTP connections."""
        while True:
            try:
                client = self._idle.get_nowait()
            except queue.Empty:
                return
            session = getattr(client.http_client, "session", None)
            if session is not None:
                session.close()

    def send(self, to: str, body: str, status_callback: str) -> SendResult:
        """Ask Twilio to send `body` to `to`; raises SendError when it does not take it."""
        sender = {"messaging_service_sid": self._service} if self._service else {"from_": self._from}
        try:
            with self._client() as client:
                msg = client.messages.create(to=to, body=body, status_callback=status_callback, **sender)
        except TwilioRestException as e:
            raise classify(e.status, e.code if isinstance(e.code, int) else None, str(e.msg)) from None
        except TwilioServiceException as e:  # the RFC 9457 error shape of newer Twilio APIs
            raise classify(e.status, e.code if isinstance(e.code, int) else None, str(e.title)) from None
        except requests.RequestException as e:
            unknown = not _never_reached(e)
            kind = "no answer" if unknown else "could not connect"
            raise SendError(0, 0, True, f"{kind}: {type(e).__name__}", outcome_unknown=unknown) from None
        return SendResult(
            sid=msg.sid or "", status=msg.status or "queued", num_segments=int(msg.num_segments or 0)
        )


@functools.lru_cache(maxsize=4)
def sender_for(config: Config) -> TwilioSender:
    """The process's sender for `config` (one HTTP connection pool, reused by every job)."""
    return TwilioSender(config)
