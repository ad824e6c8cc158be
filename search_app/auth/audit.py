"""The audit log (T30, ASVS 16.2–16.3): who did what to what, when (UTC), and whether it was allowed.

Each event is one append-only row, written in its own transaction so that a refused or failed action is still
recorded, and one line on the `library.security` logger. CR and LF in user-supplied text are encoded, so a value
cannot forge a second log line (ASVS 16.4.1). Never pass secrets (passwords, keys, session ids) in `detail`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, g, has_request_context, request
from flask_login import current_user
from sqlalchemy import select

from indexer.store import AuditRow
from indexer.store.curation import AuditOutcome

security_log = logging.getLogger("library.security")


def encode_controls(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
    if isinstance(value, dict):
        return {str(key): encode_controls(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encode_controls(item) for item in value]
    return value


def current_actor() -> str:
    if not has_request_context():
        return "system"
    key = g.get("api_key")
    if key is not None:
        return f"shop-key:{key.id}"
    if current_user and current_user.is_authenticated:
        return f"user:{current_user.id}"
    return "anonymous"


def audit(
    action: str,
    target: str = "",
    *,
    outcome: AuditOutcome | str = AuditOutcome.OK,
    actor: str | None = None,
    **detail: Any,
) -> None:
    actor = actor or current_actor()
    target = encode_controls(target)[:512]
    detail = encode_controls(detail)
    if has_request_context():
        detail.setdefault("method", request.method)
    outcome = AuditOutcome(outcome).value
    library = current_app.extensions["library"]
    with library.store.session() as db:
        db.add(AuditRow(actor=actor, action=action, target=target, outcome=outcome, detail=detail))
    level = logging.INFO if outcome == AuditOutcome.OK else logging.WARNING
    security_log.log(level, "audit actor=%s action=%s target=%s outcome=%s", actor, action, target, outcome)


def recent_events(limit: int = 200, *, action_prefix: str | None = None) -> list[AuditRow]:
    library = current_app.extensions["library"]
    with library.store.session(readonly=True) as db:
        statement = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if action_prefix:
            statement = statement.where(AuditRow.action.startswith(action_prefix))
        return list(db.scalars(statement))
