"""Sending SMS through Twilio's REST API (or whatever TWILIO_API_BASE_URL points at: the
built-in simulator, or any mock of Twilio's OpenAPI spec), with `twilio.rest.Client` over
our own HTTP transport (transport.py over kept_alive.py: a third of `requests`' CPU per call).

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
from twilio.rest import Client

from gateway.config import Config
from gateway.phones import redact
from gateway.providers.kept_alive import NoAnswer, NotSent
from gateway.providers.pool import ClientPool
from gateway.providers.records import NO_ANSWER, RETRY, SendError, SendResult
from gateway.providers.twilio import vocabulary, webhooks
from gateway.providers.twilio.transport import Transport

API_TIMEOUT_SECONDS = 15.0


def classify(http_status: int, code: int | None, message: str = "") -> SendError:
    """The SendError for an HTTP error answer from Twilio's API (`code`: Twilio's, if it gave one)."""
    outcome = vocabulary.outcome(code, http_status)
    label = str(code or http_status)
    return SendError(label, outcome, redact(message or vocabulary.describe(label) or "error"))


class TwilioSender:
    """Sends SMS through Twilio's REST API (or whatever TWILIO_API_BASE_URL points at), from
    several threads at once: each send borrows a `twilio.rest.Client` from a pool."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._from = config.twilio_from
        self._service = config.twilio_messaging_service_sid
        self._pool: ClientPool[Client] = ClientPool(self._new_client, _close)

    def _new_client(self) -> Client:
        base_url = self._config.twilio_api_base_url.rstrip("/")
        # The environment's proxy (NO_PROXY honoured) and CA settings, read once here.
        http = Transport(
            timeout=API_TIMEOUT_SECONDS,
            logger=logging.getLogger("gateway.providers.twilio.http"),
            proxies=requests.utils.get_environ_proxies(base_url),
            ca_bundle=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None,
        )
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
        except NotSent as e:
            raise SendError(NO_ANSWER, RETRY, f"could not connect: {e}") from None
        except NoAnswer as e:
            raise SendError(NO_ANSWER, RETRY, f"no answer: {e}", outcome_unknown=True) from None
        return SendResult(provider_id=msg.sid or "", segments=int(msg.num_segments or 0))


def _close(client: Client) -> None:
    if isinstance(client.http_client, Transport):
        client.http_client.close()


@functools.lru_cache(maxsize=4)
def sender_for(config: Config) -> TwilioSender:
    """The process's sender for `config` (one HTTP connection pool, reused by every job)."""
    return TwilioSender(config)
