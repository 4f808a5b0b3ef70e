"""The HTTP client `twilio.rest.Client` sends through: the standard library's http.client.

Twilio's own (`TwilioHttpClient`) goes through `requests`, which costs about three times
the CPU of a plain http.client call (0.97 against 0.30 ms per POST, measured on the 2-core
VM), and an unpaced fan-out is CPU-bound: most of a worker's time per SMS went there.
`twilio.rest.Client` takes any `twilio.http.HttpClient`; this one logs nothing (a request
carries a phone number), keeps one kept-alive
connection per API host (a ClientPool lends each Client to one thread at a time, so it needs
no lock), reaches the API through the proxy the environment names, and checks TLS
certificates against certifi's CAs or the bundle given (REQUESTS_CA_BUNDLE, as before).

Its failures say what api.py must know: `NotSent` when no connection could be made (the
request certainly never reached Twilio), `NoAnswer` when it may have (it was sent, or
being sent, and no answer came back).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import select
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

import certifi
from twilio.http import HttpClient
from twilio.http.response import Response

_JSON = ("application/json", "application/scim+json")


class NotSent(Exception):
    """No connection to the API could be made: the request never left."""


class NoAnswer(Exception):
    """The request was sent (or partly) and no answer came back: it may have been taken."""


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether a kept-alive connection was closed by the server while idle: then it is
    readable (its end of file) before anything was asked. Reused, it would fail the next
    request after sending it, leaving the outcome unknown for nothing."""
    if conn.sock is None:
        return True
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return bool(readable)


class Transport(HttpClient):  # type: ignore[misc]  # twilio ships no type hints for it
    def __init__(
        self,
        timeout: float,
        logger: logging.Logger,
        proxies: Mapping[str, str] | None = None,
        ca_bundle: str | None = None,
    ) -> None:
        super().__init__(logger, False, timeout)
        self._proxies = dict(proxies or {})
        # certifi's CAs by default, as requests (and so twilio's own client) trusts: a
        # container without the system's CA store still reaches Twilio.
        self._tls = ssl.create_default_context(cafile=ca_bundle or certifi.where())
        self._conns: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def _proxy(self, url: SplitResult) -> SplitResult | None:
        found = self._proxies.get(url.scheme) or self._proxies.get("all")
        return urlsplit(found) if found else None

    def _open(self, url: SplitResult, timeout: float) -> http.client.HTTPConnection:
        """A new connection to `url`'s host, through the proxy if there is one: NotSent if
        none can be made."""
        proxy = self._proxy(url)
        https = url.scheme == "https"
        port = url.port or (443 if https else 80)
        conn: http.client.HTTPConnection
        if proxy is None:
            host = url.hostname or ""
            if https:
                conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._tls)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
        else:
            proxy_port = proxy.port or (443 if proxy.scheme == "https" else 80)
            if https:  # a CONNECT tunnel through the proxy, TLS to Twilio inside it
                conn = http.client.HTTPSConnection(
                    proxy.hostname or "", proxy_port, timeout=timeout, context=self._tls
                )
                conn.set_tunnel(url.hostname or "", port, headers=_proxy_auth(proxy))
            else:  # a plain forward proxy: it is sent the whole URL
                conn = http.client.HTTPConnection(proxy.hostname or "", proxy_port, timeout=timeout)
        try:
            conn.connect()
        except OSError as e:  # refused, unreachable, timed out, TLS refused: nothing was sent
            conn.close()
            raise NotSent(type(e).__name__) from e
        return conn

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
        redirects never followed) and return its answer."""
        wait = float(timeout if timeout is not None else self.timeout or 15.0)
        parts = urlsplit(url)
        query = "&".join(q for q in (parts.query, urlencode(_present(params), doseq=True)) if q)
        target = (parts.path or "/") + (f"?{query}" if query else "")
        if parts.scheme == "http" and self._proxy(parts) is not None:
            target = f"{parts.scheme}://{parts.netloc}{target}"
        sent_headers = dict(headers or {})
        body = None
        if data is not None:
            if sent_headers.get("Content-Type") in _JSON:
                body = json.dumps(data).encode()
            else:
                body = urlencode(_present(data), doseq=True).encode()
                sent_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if auth is not None:
            sent_headers["Authorization"] = _basic(*auth)
        key = (parts.scheme, parts.netloc)
        conn = self._conns.pop(key, None)
        if conn is not None and _dropped(conn):
            conn.close()
            conn = None
        if conn is None:
            conn = self._open(parts, wait)
        try:
            if conn.sock is not None:
                conn.sock.settimeout(wait)
            conn.request(method.upper(), target, body=body, headers=sent_headers)
            answer = conn.getresponse()
            text = answer.read().decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise NoAnswer(type(e).__name__) from e
        if answer.will_close:
            conn.close()
        else:
            self._conns[key] = conn
        response = Response(answer.status, text, dict(answer.getheaders()))
        self._test_only_last_response = response
        return response

    def close(self) -> None:
        """Close the kept-alive connections."""
        while self._conns:
            self._conns.popitem()[1].close()


def _present(fields: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields that have a value (as `requests` leaves out the ones that are None)."""
    return {k: v for k, v in (fields or {}).items() if v is not None}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _proxy_auth(proxy: SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    return {"Proxy-Authorization": _basic(proxy.username, proxy.password or "")}
