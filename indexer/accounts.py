"""Accounts in the store, without the web: creating one and issuing its single-use invitation.

Shared by `library users` (the first admin of a new install has no one to invite them) and the web app's admin
pages (search_app.auth). Passwords are never set here: an invited user chooses one on the web, where the
password policy and hashing live.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from indexer.store import UserRow
from indexer.store.curation import Role
from indexer.store.models import utcnow

INVITE_LIFETIME = timedelta(days=7)


def normalize_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email).strip().lower()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def find_by_email(db: Session, email: str) -> UserRow | None:
    return db.scalar(select(UserRow).where(UserRow.email == normalize_email(email)))


def create_account(
    db: Session,
    *,
    email: str,
    display_name: str,
    role: Role | str,
    password_hash: str | None = None,
    scope_categories: list[str] | None = None,
    scope_organizations: list[str] | None = None,
    shop_id: int | None = None,
) -> UserRow:
    """A new account in the caller's transaction; with no password hash it is entered by invitation only."""
    row = UserRow(
        email=normalize_email(email),
        display_name=display_name.strip(),
        role=Role(role).value,
        password_hash=password_hash,
        password_changed_at=utcnow() if password_hash is not None else None,
        scope_categories=list(scope_categories or []),
        scope_organizations=list(scope_organizations or []),
        shop_id=shop_id,
        disabled=False,
        failed_logins=0,
    )
    db.add(row)
    db.flush()
    return row


def issue_invitation(row: UserRow) -> str:
    """A single-use token to set the account's password (invitation or reset); the plaintext is returned once."""
    token = secrets.token_urlsafe(32)
    row.invite_hash = hash_token(token)
    row.invite_expires_at = utcnow() + INVITE_LIFETIME
    return token


def invitation_path(token: str) -> str:
    # In the query string, which the access log leaves out (deploy/gunicorn.conf.py), not in the path.
    return f"/invite?token={token}"


# An ended session's row is kept this long (when it ended is evidence for the audit), then deleted.
ENDED_SESSION_KEPT = timedelta(days=30)
# Sessions that were never logged in (a login form's CSRF token) carry nothing worth keeping past their idle end.
ANONYMOUS_SESSION_KEPT = timedelta(hours=1)


def purge_web_sessions(store: Any) -> int:
    """Delete sessions that can no longer be used: anonymous ones idle for an hour, and any that expired, were
    revoked or went idle more than ENDED_SESSION_KEPT ago. Returns how many rows went."""
    from sqlalchemy import delete, or_

    from indexer.store import WebSessionRow

    now = utcnow()
    ended_before = now - ENDED_SESSION_KEPT
    with store.session() as db:
        result = db.execute(delete(WebSessionRow).where(or_(
            (WebSessionRow.user_id.is_(None)) & (WebSessionRow.last_seen_at < now - ANONYMOUS_SESSION_KEPT),
            WebSessionRow.expires_at < ended_before,
            WebSessionRow.revoked_at < ended_before,
            WebSessionRow.last_seen_at < ended_before,
        )))
        return result.rowcount or 0


def list_accounts(db: Session) -> list[dict[str, Any]]:
    return [
        {"id": row.id, "email": row.email, "display_name": row.display_name, "role": row.role,
         "disabled": row.disabled, "invited": row.password_hash is None}
        for row in db.scalars(select(UserRow).order_by(UserRow.id))
    ]
