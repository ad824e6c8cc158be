"""Rate limits (T22), with Flask-Limiter.

| what | limit | key |
|---|---|---|
| login and registration attempts | 20/min | client IP |
| public search (page, API, Atom) | 60/min | client IP |
| suggestions as you type | 300/min | client IP |
| shop API (every SHOP_KEY route) | 120/min | the API key |

Per-account login lockout lives with the account (accounts.py), so it holds across processes without a shared
store. These limits need one counter for all workers: `RATELIMIT_STORAGE_URI` is Redis in production (it
defaults to the broker when that is Redis), `memory://` only for the single-process embedded server. The client
IP is `request.remote_addr`; behind a reverse proxy set `PROXY_HOPS` (LIBRARY_FLASK_PROXY_HOPS) to the exact
number of proxies, so a forged X-Forwarded-For cannot choose its own key. Each 429 is a security log event.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from flask_limiter.util import get_remote_address

from search_app.auth.policy import SHOP_KEY, policy_of

security_log = logging.getLogger("library.security")

View = TypeVar("View", bound=Callable[..., Any])

LOGIN_LIMIT = "20/minute"
SEARCH_LIMIT = "60/minute"
SUGGEST_LIMIT = "300/minute"
SHOP_API_LIMIT = "120/minute"

SEARCH_ENDPOINTS = ("search.search", "api.search", "feeds.search_atom")
SUGGEST_ENDPOINTS = ("api.suggest",)
LOGIN_ENDPOINTS = ("auth.login", "auth.register")


def limited(value: str, *, key: str = "ip", methods: list[str] | None = None) -> Callable[[View], View]:
    """Declare a limit on a view, applied when the app is set up: `@limited("20/hour", key="user")`.

    key: "ip" (client address), "user" (the logged-in account; falls back to the address), "api_key".
    """
    if key not in KEY_FUNCTIONS:
        raise ValueError(f"limited(): unknown key {key!r}")

    def declare(view: View) -> View:
        view._rate_limits = [*getattr(view, "_rate_limits", []), (value, key, methods)]  # type: ignore[attr-defined]
        return view

    return declare


def user_identity() -> str:
    from flask_login import current_user

    if current_user and current_user.is_authenticated:
        return f"user:{current_user.id}"
    return get_remote_address()


def api_key_identity() -> str:
    _, _, token = request.headers.get("Authorization", "").partition(" ")
    # A digest, so the key itself never reaches the limiter's storage.
    return "key:" + hashlib.sha256(token.strip().encode("utf-8", "replace")).hexdigest()[:32]


KEY_FUNCTIONS: dict[str, Callable[[], str]] = {
    "ip": get_remote_address,
    "user": user_identity,
    "api_key": api_key_identity,
}


def _on_breach(limit: RequestLimit) -> None:
    security_log.warning(
        "rate limit exceeded: endpoint=%s limit=%s key=%s", request.endpoint, limit.limit, limit.key
    )


def init_app(app: Flask, broker_url: str | None) -> Limiter:
    """Call after every blueprint is registered: the limits attach to the registered views."""
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        redis_broker = broker_url if broker_url and broker_url.startswith(("redis://", "rediss://")) else None
        app.config["RATELIMIT_STORAGE_URI"] = redis_broker or "memory://"
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "library-ratelimit")
    limiter = Limiter(get_remote_address, app=app, on_breach=_on_breach)

    def limit(endpoints, value: str, *, key_func=get_remote_address, methods=None) -> None:
        for endpoint in endpoints:
            view = app.view_functions.get(endpoint)
            if view is not None:
                app.view_functions[endpoint] = limiter.limit(value, key_func=key_func, methods=methods)(view)

    def too_many(error: RateLimitExceeded) -> Response:
        from search_app.errors import error_response

        current = limiter.current_limit
        retry_after = 60
        if current:
            # reset_at is a whole second, so the raw difference can exceed the window by up to a second.
            window = current.limit.get_expiry()
            retry_after = min(window, max(1, math.ceil(current.reset_at - time.time())))
        return error_response(429, headers={"Retry-After": str(retry_after)})

    app.register_error_handler(RateLimitExceeded, too_many)

    limit(SEARCH_ENDPOINTS, SEARCH_LIMIT)
    limit(SUGGEST_ENDPOINTS, SUGGEST_LIMIT)
    limit(LOGIN_ENDPOINTS, LOGIN_LIMIT, methods=["POST"])
    # One budget per key across the whole shop API (T22: 120/min per key), not one per route.
    shop_limit = limiter.shared_limit(SHOP_API_LIMIT, scope="shop-api", key_func=api_key_identity)
    for endpoint in [e for e in app.view_functions if SHOP_KEY in (policy_of(app, e) or ())]:
        app.view_functions[endpoint] = shop_limit(app.view_functions[endpoint])
    for endpoint, view in list(app.view_functions.items()):
        for value, key, methods in getattr(view, "_rate_limits", ()):
            limit([endpoint], value, key_func=KEY_FUNCTIONS[key], methods=methods)
    app.extensions["rate_limiter"] = limiter
    return limiter
