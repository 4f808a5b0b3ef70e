"""HTTP over kept-alive connections of the standard library's http.client, one per host.

`requests` costs about three times the CPU of a plain http.client call (0.97 against 0.30
ms per POST, measured on the 2-core VM), and the calls made per SMS (Kabootar's to Twilio,
the simulators' reports back) are what an unpaced fan-out spends its CPU on. A
`Connections` belongs to one thread at a time (no lock): it keeps one connection per
(scheme, host), reaches it through a proxy when given one (a forward proxy for http, a
CONNECT tunnel for https), and checks TLS certificates against certifi's CAs (as `requests`
does) or the bundle given.

Its failures say what a sender must know: `NotSent` when no connection could be made (the
request certainly never left), `NoAnswer` when it may have been taken (it was sent, or
being sent, and no answer came back). Neither carries more than the error's type: a
request may hold a phone number.
"""

from __future__ import annotations

import base64
import http.client
import select
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import certifi


class NotSent(Exception):
    """No connection could be made: the request never left."""


class NoAnswer(Exception):
    """The request was sent (or partly) and no answer came back: it may have been taken."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def basic_auth(user: str, password: str) -> str:
    """An Authorization (or Proxy-Authorization) header's value for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _proxy_auth(proxy: SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    return {"Proxy-Authorization": basic_auth(proxy.username, proxy.password or "")}


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether a kept-alive connection was closed by the server while idle: then it is
    readable (its end of file) before anything was asked. Reused, it would fail the next
    request after sending it, leaving the outcome unknown for nothing."""
    if conn.sock is None:
        return True
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return bool(readable)


class Connections:
    def __init__(
        self, timeout: float, proxies: Mapping[str, str] | None = None, ca_bundle: str | None = None
    ):
        self._timeout = timeout
        self._proxies = dict(proxies or {})
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
            if https:  # a CONNECT tunnel through the proxy, TLS to the host inside it
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
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """Send one request and read its answer (redirects are not followed)."""
        wait = self._timeout if timeout is None else timeout
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.scheme == "http" and self._proxy(parts) is not None:
            target = f"{parts.scheme}://{parts.netloc}{target}"
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
            conn.request(method.upper(), target, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise NoAnswer(type(e).__name__) from e
        if response.will_close:
            conn.close()
        else:
            self._conns[key] = conn
        return Answer(response.status, dict(response.getheaders()), data)

    def close(self) -> None:
        """Close the kept-alive connections."""
        while self._conns:
            self._conns.popitem()[1].close()
