"""Accounts: the logged-in user as Flask-Login sees it, creating and inviting accounts, and checking a login.

Failed logins count per account; the fifth in a row locks the account for a minute (never permanently: a lock
that an attacker can make permanent is a denial of service), answered with 429 and Retry-After (T22).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from indexer.accounts import (  # noqa: F401  (re-exported for the web views)
    create_account,
    find_by_email,
    hash_token,
    issue_invitation,
    normalize_email,
)
from indexer.store import Store, UserRow
from indexer.store.curation import Role
from indexer.store.models import utcnow
from search_app.auth.passwords import hash_password, needs_rehash, verify_password

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=1)


@dataclass(frozen=True)
class Account:
    """The logged-in user (Flask-Login's user object): a detached, read-only copy of the row."""

    id: int
    email: str
    display_name: str
    role: str
    scope_categories: tuple[str, ...] = ()
    scope_organizations: tuple[str, ...] = ()
    shop_id: int | None = None

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def is_editor(self) -> bool:
        return self.role in (Role.EDITOR, Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @classmethod
    def of(cls, row: UserRow) -> Account:
        return cls(
            id=row.id,
            email=row.email,
            display_name=row.display_name,
            role=row.role,
            scope_categories=tuple(row.scope_categories or ()),
            scope_organizations=tuple(row.scope_organizations or ()),
            shop_id=row.shop_id,
        )


def load_account(store: Store, user_id: str | int) -> Account | None:
    try:
        key = int(user_id)
    except (TypeError, ValueError):
        return None
    with store.session(readonly=True) as db:
        row = db.get(UserRow, key)
        if row is None or row.disabled:
            return None
        return Account.of(row)


def create_user(
    db: Any,
    *,
    email: str,
    display_name: str,
    role: Role | str,
    password: str | None = None,
    scope_categories: list[str] | None = None,
    scope_organizations: list[str] | None = None,
    shop_id: int | None = None,
) -> UserRow:
    """A new account in the caller's transaction; with no password it can only be entered by invitation."""
    return create_account(
        db,
        email=email,
        display_name=display_name,
        role=role,
        password_hash=hash_password(password) if password is not None else None,
        scope_categories=scope_categories,
        scope_organizations=scope_organizations,
        shop_id=shop_id,
    )


def user_count(db: Any) -> int:
    return db.scalar(select(func.count()).select_from(UserRow)) or 0


@dataclass(frozen=True)
class LoginResult:
    account: Account | None = None
    locked_for: int = 0  # seconds until the account accepts a login again


def check_login(store: Store, email: str, password: str, now: datetime | None = None) -> LoginResult:
    """Verify a login and update the account's failure count, lock and (when the parameters are old) hash.

    The argon2 verification runs outside any write transaction (on SQLite a write transaction holds the one
    write lock for everyone). The outcome is then applied to the row read again under a lock (FOR UPDATE on
    PostgreSQL; BEGIN IMMEDIATE serializes SQLite's writers), so parallel wrong guesses each count: five of them
    lock the account whatever their timing (T22).
    """
    now = now or utcnow()
    with store.session(readonly=True) as db:
        row = find_by_email(db, email)
        stored_hash = row.password_hash if row else None
        user_id = row.id if row else None
    # Verified (against a dummy for unknown accounts) before anything else is decided, so every answer costs
    # about one argon2 verification (ASVS 6.3.8).
    matches = verify_password(stored_hash, password)
    if user_id is None:
        return LoginResult()
    with store.session() as db:
        row = db.scalar(select(UserRow).where(UserRow.id == user_id).with_for_update())
        if row is None:
            return LoginResult()
        if row.locked_until is not None and row.locked_until > now:
            return LoginResult(locked_for=max(1, int((row.locked_until - now).total_seconds()) + 1))
        # A password changed between the two transactions: the one verified is no longer the account's.
        if not matches or row.disabled or row.password_hash != stored_hash:
            row.failed_logins += 1
            if row.failed_logins >= MAX_FAILED_LOGINS:
                row.failed_logins = 0
                row.locked_until = now + LOCKOUT
                return LoginResult(locked_for=int(LOCKOUT.total_seconds()))
            return LoginResult()
        row.failed_logins = 0
        row.locked_until = None
        row.last_login_at = now
        if row.password_hash and needs_rehash(row.password_hash):
            row.password_hash = hash_password(password)
        return LoginResult(account=Account.of(row))


def set_password(db: Any, row: UserRow, password: str) -> None:
    row.password_hash = hash_password(password)
    row.password_changed_at = utcnow()
    row.invite_hash = None
    row.invite_expires_at = None
    row.failed_logins = 0
    row.locked_until = None
