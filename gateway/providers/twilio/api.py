"""Sending SMS through Twilio's REST API (or whatever TWILIO_API_BASE_URL points at: the
built-in simulator, or any mock of Twilio's OpenAPI spec), with `twilio.rest.Client`.

Failures come back as one neutral `SendError` whose `outcome` says what the sender should
do (`vocabulary.outcome`): throttling and server trouble retry, a recipient's opt-out or a
bad number do not. A request that may have reached Twilio without an answer coming back
is `outcome_unknown`: the outbox must not simply send it again.
"""

from __future__ import annotations

import functools
import logging
import os

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from gateway.config import Config
from gateway.phones import redact
from gateway.providers.pool import ClientPool
from gateway.providers.records import NO_ANSWER, RETRY, SendError, SendResult
from gateway.providers.twilio import vocabulary, webhooks

API_TIMEOUT_SECONDS = 15.0


def classify(http_status: int, code: int | None, message: str = "") -> SendError:
    """The SendError for an HTTP error answer from Twilio's API (`code`: Twilio's, if it gave one)."""
    outcome = vocabulary.outcome(code, http_status)
    label = str(code or http_status)
    return SendError(label, outcome, redact(message or vocabulary.describe(label) or "error"))


def _never_reached(e: requests.RequestException) -> bool:
    """Whether the request certainly never got to Twilio (no connection was made)."""
    if isinstance(e, requests.ConnectTimeout):
        return True
    reason = e.args[0] if e.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, ConnectTimeoutError)


class TwilioSender:
    """Sends SMS through Twilio's REST API (or whatever TWILIO_API_BASE_URL points at), from
    several threads at once: each send borrows a `twilio.rest.Client` from a pool."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._from = config.twilio_from
        self._service = config.twilio_messaging_service_sid
        self._pool: ClientPool[Client] = ClientPool(self._new_client, _close)

    def _new_client(self) -> Client:
        # A quiet logger: twilio's own logs every request at INFO.
        http_log = logging.getLogger("gateway.providers.twilio.http")
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

    def close(self) -> None:
        """Close the pooled clients' HTTP connections."""
        self._pool.close()

    def send(self, to: str, body: str, message_id: str) -> SendResult:
        """Ask Twilio to send `body` to `to`, reporting on it as our `message_id`; raises
        SendError when it does not take it."""
        sender = {"messaging_service_sid": self._service} if self._service else {"from_": self._from}
        callback = webhooks.status_callback_url(self._config.public_url, message_id)
        try:
            with self._pool.client() as client:
                msg = client.messages.create(to=to, body=body, status_callback=callback, **sender)
        except TwilioRestException as e:
            raise classify(e.status, e.code if isinstance(e.code, int) else None, str(e.msg)) from None
        except TwilioServiceException as e:  # the RFC 9457 error shape of newer Twilio APIs
            raise classify(e.status, e.code if isinstance(e.code, int) else None, str(e.title)) from None
        except requests.RequestException as e:
            unknown = not _never_reached(e)
            kind = "no answer" if unknown else "could not connect"
            raise SendError(
                NO_ANSWER, RETRY, f"{kind}: {type(e).__name__}", outcome_unknown=unknown
            ) from None
        return SendResult(provider_id=msg.sid or "", segments=int(msg.num_segments or 0))


def _close(client: Client) -> None:
    session = getattr(client.http_client, "session", None)
    if session is not None:
        session.close()


@functools.lru_cache(maxsize=4)
def sender_for(config: Config) -> TwilioSender:
    """The process's sender for `config` (one HTTP connection pool, reused by every job)."""
    return TwilioSender(config)
