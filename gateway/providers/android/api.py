"""Sending SMS through the phone's local server (SMS Gateway for Android), with the vendor's
client (`android_sms_gateway.APIClient`) and HTTP Basic auth.

Each SMS is sent under our own message id (the API takes one: `Message.id`). The phone
refuses a second message with an id it already holds (409 Conflict), so sending again
after an answer that never came is safe: a 409 means the phone has it. That is why a
timeout here is a plain retry, never an "outcome unknown" as it is with Twilio. The
phone's reports (webhooks) name the SMS by the same id.
"""

from __future__ import annotations

import functools
from typing import Any

import requests
from android_sms_gateway import APIClient, Message, TextMessage
from android_sms_gateway.errors import APIError
from android_sms_gateway.http import RequestsHttpClient

from gateway.config import Config
from gateway.phones import redact
from gateway.providers.pool import ClientPool
from gateway.providers.records import NO_ANSWER, PERMANENT, RETRY, SendError, SendResult

API_TIMEOUT_SECONDS = 15.0
# A probe runs in a worker's watchdog, between its heartbeats: it must not hold them up.
PROBE_TIMEOUT_SECONDS = 2.0


class _Session(requests.Session):
    """A session whose every request gives up after `timeout` seconds (the client sets none)."""

    def __init__(self, timeout: float = API_TIMEOUT_SECONDS) -> None:
        super().__init__()
        self.trust_env = False  # a phone on the local network: no proxy in between
        self._timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(*args, **kwargs)


def classify(http_status: int, message: str = "") -> SendError:
    """The SendError for an HTTP error answer from the phone."""
    outcome = RETRY if http_status in (408, 429) or http_status >= 500 else PERMANENT
    return SendError(str(http_status), outcome, redact(message or f"HTTP {http_status} from the phone"))


class AndroidSender:
    """Sends SMS through one phone, from several threads at once (a pool of clients)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._pool: ClientPool[tuple[APIClient, requests.Session]] = ClientPool(self._new_client, _close)

    def _new_client(self, timeout: float = API_TIMEOUT_SECONDS) -> tuple[APIClient, requests.Session]:
        session = _Session(timeout)
        config = self._config
        client = APIClient(
            config.android_gateway_user,
            config.android_gateway_password,
            base_url=config.android_gateway_url,
            http=RequestsHttpClient(session),
        )
        return client, session

    def send(self, to: str, body: str, message_id: str) -> SendResult:
        """Ask the phone to send `body` to `to` as our SMS `message_id`; raises SendError."""
        message = Message(phone_numbers=[to], text_message=TextMessage(body), id=message_id)
        try:
            with self._pool.client() as (client, _):
                state = client.send(message)
        except APIError as e:
            if e.status_code == 409:  # the phone already holds this SMS: an earlier try got through
                return SendResult(provider_id=message_id)
            raise classify(e.status_code or 0, str(e)) from None
        except requests.RequestException as e:
            raise SendError(NO_ANSWER, RETRY, f"no answer from the phone: {type(e).__name__}") from None
        return SendResult(provider_id=state.id or message_id)

    def probe(self) -> bool:
        """Whether the phone's API answers its health check (the app's GET /health)."""
        client, session = self._new_client(PROBE_TIMEOUT_SECONDS)
        try:
            client.health_check()
        except (APIError, requests.RequestException, ValueError, KeyError):
            return False
        finally:
            session.close()
        return True

    def close(self) -> None:
        """Close the pooled clients' HTTP connections."""
        self._pool.close()


def _close(client: tuple[APIClient, requests.Session]) -> None:
    client[1].close()


@functools.lru_cache(maxsize=4)
def sender_for(config: Config) -> AndroidSender:
    """The process's sender for `config`."""
    return AndroidSender(config)
