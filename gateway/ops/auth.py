"""Who is looking: the operator's session (or HTTP Basic for scripts), the client's
address (for rate limits and login waits), and CSRF checks.

A session is a random id in Flask's signed cookie (HttpOnly, SameSite=Lax, Secure behind
https, set in create_app) that Redis knows for `sessions.LIFETIME_SECONDS` (sessions.py):
logging out, a new password or removing the account ends it at once. CSRF tokens are
Flask-WTF's, checked here for every state-changing request of the console, so the rest of
the app needs no CSRF machinery of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from flask import abort, current_app, request, session
from flask_wtf.csrf import ValidationError, validate_csrf
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from gateway.ops import accounts, sessions
from gateway.runtime import Runtime

SESSION_ID = "ops_session"
DEVICE_COOKIE = "ops_device"  # a browser an operator logged in from (see backoff)
DEVICE_SECONDS = 365 * 24 * 3600


def client_address() -> str:
    """Who is asking, for rate limits and login waits: the connection's address, or behind
    TRUSTED_PROXIES=n proxies, the n-th X-Forwarded-For entry from the right.

    Only entries our own proxies appended count: anything to their left the client wrote
    itself, so a guesser cannot escape a wait by making up addresses (and with no
    proxy configured, X-Forwarded-For is ignored altogether)."""
    address = request.remote_addr or "unknown"
    hops = Runtime.of(current_app).config.trusted_proxies
    if hops > 0:
        forwarded = [a.strip() for a in ",".join(request.headers.getlist("X-Forwarded-For")).split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= hops:
            address = forwarded[-hops]
    return address[:64]


def _subscriber_line(address: str) -> str:
    """An IPv6 address as its /64: one subscriber's line holds all of them, so counting
    single addresses would give a guesser billions of fresh starts."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else ip)


def client_key(purpose: str) -> str:
    """A keyed hash of the client's address for one purpose ("login", "web-reply"):
    enough to count requests by, useless to anyone reading Redis (no address is stored)."""
    secret = current_app.config["SECRET_KEY"].encode()
    message = f"{purpose}:{_subscriber_line(client_address())}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:24]


def _devices() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="ops-device")


def known_device(name: str) -> str:
    """The id of this browser's device cookie if it was given one for operator `name` (the
    name as typed, compared as accounts stores it), else ""."""
    cookie = request.cookies.get(DEVICE_COOKIE)
    if not cookie:
        return ""
    try:
        held = _devices().loads(cookie, max_age=DEVICE_SECONDS)
    except BadData:  # forged, altered or too old: an unknown device
        return ""
    if not isinstance(held, dict) or held.get("op") != accounts.normal_name(name)[:64]:
        return ""
    return str(held.get("id", ""))


def remember_device(response: Response, name: str) -> None:
    """Give this browser a device cookie for operator `name`, who just logged in with it:
    guessers elsewhere never make them wait on it (see backoff)."""
    token = _devices().dumps({"op": name, "id": secrets.token_urlsafe(16)})
    response.set_cookie(
        DEVICE_COOKIE,
        token,
        max_age=DEVICE_SECONDS,
        path="/ops/login",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Strict",
    )


def log_in(name: str, password: str) -> accounts.LoginResult:
    """Check a login from this client and, when it is right, start a fresh session (a new
    cookie: nothing carried over from before)."""
    runtime = Runtime.of(current_app)
    result = accounts.verify(
        runtime.redis,
        name,
        password,
        client_key("login"),
        runtime.config.ops_login_max_wait,
        device=known_device(name),
    )
    if result.operator:
        session.clear()
        session_id = sessions.start(runtime.redis, result.operator, result.checked)
        if session_id is None:  # the password changed while it was being checked
            return accounts.LoginResult()
        session[SESSION_ID] = session_id
    return result


def log_out() -> None:
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        sessions.end(Runtime.of(current_app).redis, session_id)
    session.clear()


def session_operator() -> str | None:
    """The operator whose live session this request carries, or None."""
    session_id = session.get(SESSION_ID)
    if not isinstance(session_id, str):
        return None
    return sessions.operator(Runtime.of(current_app).redis, session_id)


def basic_login() -> accounts.LoginResult | None:
    """The check of HTTP Basic credentials (how scripts read the figures), or None when the
    request has none. Wrong ones earn the same waits as the login form's."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username or auth.password is None:
        return None
    runtime = Runtime.of(current_app)
    return accounts.verify(
        runtime.redis, auth.username, auth.password, client_key("login"), runtime.config.ops_login_max_wait
    )


def check_csrf() -> None:
    """Refuse (400) a form or API call without this session's CSRF token."""
    token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken") or ""
    try:
        validate_csrf(token)
    except ValidationError as e:
        abort(400, f"{e} Reload the page and try again.")
