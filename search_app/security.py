"""Security headers on every response (T18), and a development server that names no version.

The headers are fixed when the app is created, from its final configuration; a view that needs a different
policy sets the header itself and it is kept. HSTS is sent in production: when the app's preferred scheme is
https, or when `LIBRARY_FLASK_HSTS=true` (for a TLS-terminating proxy in front of a plain-http app).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response
from werkzeug.serving import WSGIRequestHandler

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; "
    "script-src 'self'; "
    "style-src 'self'; "
    "img-src 'self'; "
    "object-src 'none'; "
    "base-uri 'none'; "
    "frame-ancestors 'none'; "
    "form-action 'self'"
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
HSTS = "max-age=31536000; includeSubDomains"
SERVER = "social-library"

# Media types that are text, so a missing charset would leave the browser to guess (UTF-7 and Shift_JIS sniffing).
_TEXT_SUBTYPES = ("json", "xml", "javascript")


def security_headers(config: dict[str, Any]) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Permissions-Policy": PERMISSIONS_POLICY,
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP level 2
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if config.get("PREFERRED_URL_SCHEME") == "https" or config.get("HSTS"):
        headers["Strict-Transport-Security"] = HSTS
    return headers


def is_text_type(mimetype: str) -> bool:
    main, _, sub = mimetype.partition("/")
    return main == "text" or any(sub == name or sub.endswith("+" + name) for name in _TEXT_SUBTYPES)


def _add_headers(headers: dict[str, str]) -> Callable[[Response], Response]:
    def add(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if (
            response.mimetype
            and is_text_type(response.mimetype)
            and "charset" not in response.mimetype_params
        ):
            response.mimetype_params["charset"] = "utf-8"
        return response

    return add


class RequestHandler(WSGIRequestHandler):
    """Werkzeug's development server (`library serve`) without "Werkzeug/x.y Python/x.y" in its Server header.

    The server writes that header itself, whatever the app sends, so the fix is the server's request handler:
    pass `request_handler=RequestHandler` to `run_simple`. gunicorn, in production, sends a bare "gunicorn".
    """

    def version_string(self) -> str:
        return SERVER


def init_app(app: Flask) -> None:
    app.after_request(_add_headers(security_headers(app.config)))
