"""Server-side sessions in the SQL store (T19).

Flask's default session is a signed cookie: logging out cannot revoke a copy of it. Here the cookie holds only a
random id (256 bits); the store keeps its SHA-256, the session's data, and when it was created, last seen and
revoked. So logout, a password change, an admin revoke or disabling an account ends sessions at once, the id
changes on login (fixation), and idle (30 min) and absolute (12 h) lifetimes are enforced on the server.

The cookie is `__Host-` prefixed, Secure, HttpOnly and SameSite=Lax (Strict once an admin is logged in). An
intranet install served over plain http sets LIBRARY_FLASK_SESSION_COOKIE_SECURE=false and gets a cookie named
`library_session` without the prefix (browsers refuse `__Host-` cookies that are not Secure).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import select, update
from werkzeug.datastructures import CallbackDict

from indexer.store import Store, WebSessionRow
from indexer.store.models import utcnow

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_LIFETIME = timedelta(hours=12)
# last_seen_at is written at most this often, so reading pages does not write to the store on every request.
TOUCH_INTERVAL = timedelta(seconds=60)
USER_KEY = "_user_id"  # Flask-Login's key


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


class ServerSession(CallbackDict[str, Any], SessionMixin):
    def __init__(self, initial: dict[str, Any] | None = None, session_id: str | None = None) -> None:
        def on_update(session: ServerSession) -> None:
            session.modified = True

        super().__init__(initial, on_update)
        self.session_id = session_id
        self.new = session_id is None
        self.modified = False
        self.regenerate_requested = False
        self.revoke_requested = False
        self.created_at: datetime | None = None
        self.last_seen_at: datetime | None = None

    def regenerate(self) -> None:
        """Give this session a new id at the next save and revoke the old one (call it on login)."""
        self.regenerate_requested = True
        self.modified = True

    def end(self) -> None:
        """Revoke this session in the store and clear the cookie (logout)."""
        self.clear()
        self.revoke_requested = True
        self.modified = True


def cookie_name(app: Flask) -> str:
    return "__Host-library_session" if app.config.get("SESSION_COOKIE_SECURE", True) else "library_session"


class SqlSessionInterface(SessionInterface):
    def __init__(self, store: Store) -> None:
        self.store = store

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        session_id = request.cookies.get(cookie_name(app))
        if not session_id or len(session_id) > 128:
            return ServerSession()
        now = utcnow()
        with self.store.session(readonly=True) as db:
            row = db.get(WebSessionRow, hash_session_id(session_id))
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                return ServerSession()
            if row.last_seen_at + IDLE_TIMEOUT <= now:
                return ServerSession()
            session = ServerSession(dict(row.data), session_id)
            session.created_at, session.last_seen_at = row.created_at, row.last_seen_at
        return session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        name = cookie_name(app)
        secure = bool(app.config.get("SESSION_COOKIE_SECURE", True))
        now = utcnow()
        if session.revoke_requested or (session.regenerate_requested and session.session_id):
            if session.session_id:
                self._revoke(hash_session_id(session.session_id), now)
            if session.revoke_requested:
                response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="Lax")
                return
            session.session_id = None
        if session.session_id is None:
            if not session:  # nothing worth a row: no cookie for anonymous readers
                return
            session.session_id = secrets.token_urlsafe(32)
            with self.store.session() as db:
                db.add(
                    WebSessionRow(
                        id_hash=hash_session_id(session.session_id),
                        user_id=_user_id(session),
                        data=dict(session),
                        created_at=now,
                        last_seen_at=now,
                        expires_at=now + ABSOLUTE_LIFETIME,
                    )
                )
        elif session.modified:
            with self.store.session() as db:
                db.execute(
                    update(WebSessionRow)
                    .where(WebSessionRow.id_hash == hash_session_id(session.session_id))
                    .values(data=dict(session), user_id=_user_id(session), last_seen_at=now)
                )
        elif session.last_seen_at is None or now - session.last_seen_at >= TOUCH_INTERVAL:
            with self.store.session() as db:
                db.execute(
                    update(WebSessionRow)
                    .where(WebSessionRow.id_hash == hash_session_id(session.session_id))
                    .values(last_seen_at=now)
                )
        else:
            return  # the cookie the browser holds is still right
        # An admin's cookie is never sent on cross-site navigation at all.
        samesite = "Strict" if session.get("_role") == "admin" else "Lax"
        response.set_cookie(
            name,
            session.session_id,
            max_age=int(ABSOLUTE_LIFETIME.total_seconds()),
            path="/",
            secure=secure,
            httponly=True,
            samesite=samesite,
        )
        response.vary.add("Cookie")

    def _revoke(self, id_hash: str, now: datetime) -> None:
        with self.store.session() as db:
            db.execute(
                update(WebSessionRow)
                .where(WebSessionRow.id_hash == id_hash, WebSessionRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )


def _user_id(session: ServerSession) -> int | None:
    value = session.get(USER_KEY)
    return int(value) if value is not None else None


def revoke_user_sessions(store: Store, user_id: int, *, except_id_hash: str | None = None) -> int:
    """End every session of an account (password change, admin revoke, disabled account). Returns how many."""
    with store.session() as db:
        statement = (
            update(WebSessionRow)
            .where(WebSessionRow.user_id == user_id, WebSessionRow.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        if except_id_hash:
            statement = statement.where(WebSessionRow.id_hash != except_id_hash)
        return db.execute(statement).rowcount or 0


def live_sessions(store: Store, user_id: int) -> list[WebSessionRow]:
    now = utcnow()
    with store.session(readonly=True) as db:
        return list(
            db.scalars(
                select(WebSessionRow).where(
                    WebSessionRow.user_id == user_id,
                    WebSessionRow.revoked_at.is_(None),
                    WebSessionRow.expires_at > now,
                    WebSessionRow.last_seen_at > now - IDLE_TIMEOUT,
                )
            )
        )
