"""Who is looking: the operator's session (or HTTP Basic for Prometheus), the client's
address (for rate limits), and CSRF checks.

Sessions are Flask's signed cookies (HttpOnly, SameSite=Lax, Secure behind https, set in
create_app); an operator's session lasts `SESSION_SECONDS` and ends as soon as the
account is removed. CSRF tokens are Flask-WTF's, checked here for every state-changing
request of the console, so the rest of the app needs no CSRF machinery of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import abort, current_app, request, session
from flask_wtf.csrf import ValidationError, validate_csrf

from gateway.ops import accounts
from gateway.runtime import Runtime

SESSION_USER = "ops_user"
SESSION_AT = "ops_at"
SESSION_SECONDS = 12 * 3600


def client_address() -> str:
    """Who is asking, for rate limits and lockouts: the connection's address, or behind
    TRUSTED_PROXIES=n proxies, the n-th X-Forwarded-For entry from the right.

    Only entries our own proxies appended count: anything to their left the client wrote
    itself, so a guesser cannot escape a lockout by making up addresses (and with no
    proxy configured, X-Forwarded-For is ignored altogether)."""
    address = request.remote_addr or "unknown"
    hops = Runtime.of(current_app).config.trusted_proxies
    if hops > 0:
        forwarded = [a.strip() for a in ",".join(request.headers.getlist("X-Forwarded-For")).split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= hops:
            address = forwarded[-hops]
    return address[:64]


def client_key(purpose: str) -> str:
    """A keyed hash of the client's address for one purpose ("login", "web-reply"):
    enough to count requests by, useless to anyone reading Redis (no address is stored)."""
    secret = current_app.config["SECRET_KEY"].encode()
    message = f"{purpose}:{client_address()}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:24]


def log_in(name: str) -> None:
    """Start a fresh session for `name` (a new cookie: nothing carried over from before)."""
    session.clear()
    session[SESSION_USER] = name.strip().lower()
    session[SESSION_AT] = int(time.time())


def log_out() -> None:
    session.pop(SESSION_USER, None)
    session.pop(SESSION_AT, None)


def session_operator() -> str | None:
    """The logged-in operator, or None."""
    name = session.get(SESSION_USER)
    started = session.get(SESSION_AT, 0)
    if not isinstance(name, str) or not isinstance(started, int) or time.time() - started > SESSION_SECONDS:
        return None
    if not accounts.exists(Runtime.of(current_app).redis, name):
        return None
    return name


def basic_operator() -> str | None:
    """An operator named by HTTP Basic credentials (how Prometheus logs in), or None.

    Wrong credentials count towards the same lockout as the login form."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username or auth.password is None:
        return None
    result = accounts.verify(Runtime.of(current_app).redis, auth.username, auth.password, client_address())
    return auth.username.strip().lower() if result.ok else None


def check_csrf() -> None:
    """Refuse (400) a form or API call without this session's CSRF token."""
    token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken") or ""
    try:
        validate_csrf(token)
    except ValidationError as e:
        abort(400, f"{e} Reload the page and try again.")
