"""The HTTP client `twilio.rest.Client` sends through: kept-alive http.client connections
(gateway/providers/kept_alive.py) instead of twilio's own `requests`-based one, a third of
its CPU per call. `twilio.rest.Client` takes any `twilio.http.HttpClient`; this one builds
the request as `TwilioHttpClient` does and logs nothing (a request carries a phone number).
A ClientPool lends each Client, and so its Transport, to one thread at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.http import HttpClient
from twilio.http.response import Response

from gateway.providers import kept_alive

_JSON = ("application/json", "application/scim+json")


class Transport(HttpClient):  # type: ignore[misc]  # twilio ships no type hints for it
    def __init__(
        self,
        timeout: float,
        logger: logging.Logger,
        proxies: Mapping[str, str] | None = None,
        ca_bundle: str | None = None,
    ) -> None:
        super().__init__(logger, False, timeout)
        self._conns = kept_alive.Connections(timeout, proxies, ca_bundle)

    def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Make the request Twilio's client asks for (as `TwilioHttpClient.request` does,
        redirects never followed) and return its answer; kept_alive.NotSent or NoAnswer
        when none came."""
        if params:  # none for sending an SMS: its fields go in the body
            parts = urlsplit(url)
            query = "&".join(q for q in (parts.query, urlencode(_present(params), doseq=True)) if q)
            url = parts._replace(query=query).geturl()
        sent_headers = dict(headers or {})
        body = None
        if data is not None:
            if sent_headers.get("Content-Type") in _JSON:
                body = json.dumps(data).encode()
            else:
                body = urlencode(_present(data), doseq=True).encode()
                sent_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if auth is not None:
            sent_headers["Authorization"] = kept_alive.basic_auth(*auth)
        answer = self._conns.request(method, url, body, sent_headers, timeout)
        response = Response(answer.status, answer.body.decode("utf-8", errors="replace"), answer.headers)
        self._test_only_last_response = response
        return response

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._conns.close()


def _present(fields: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields that have a value (as `requests` leaves out the ones that are None)."""
    return {k: v for k, v in (fields or {}).items() if v is not None}
