"""Drain the outbox into the engine: read each changed record's current state, write it versioned, mark done.

Reading the record's current state (not the outbox row's revision) makes a drain idempotent and order-free:
any number of duplicate or late deliveries converge on the newest revision (T25, T26).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from indexer.analysis import Analyzer
from indexer.documents import build_document
from indexer.engines.base import EngineError, EngineUnavailable, SearchEngine
from indexer.store import RecordRow, Store, claim_batch, mark_done, mark_failed

log = logging.getLogger(__name__)

DRAIN_BATCH = 500

# (record id, revision, status, data) as committed in the store.
RecordState = tuple[str, int, str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class DrainReport:
    indexed: int = 0
    removed: int = 0
    failed: int = 0
    batches: int = 0


def load_state(session: Session, record_ids: Iterable[str]) -> list[RecordState]:
    ids = sorted(set(record_ids))
    if not ids:
        return []
    rows = session.execute(
        select(RecordRow.id, RecordRow.revision, RecordRow.status, RecordRow.data).where(RecordRow.id.in_(ids))
    ).all()
    return [(row.id, row.revision, row.status, row.data) for row in rows]


def apply_state(engine: SearchEngine, analyzer: Analyzer, states: list[RecordState]) -> tuple[int, int]:
    """Write records to the engine as of `states`; returns (upserted, removed). Only published ones are searchable."""
    upserts = [build_document(data, revision, analyzer) for _, revision, status, data in states if status == "published"]
    removals = [(record_id, revision) for record_id, revision, status, _ in states if status != "published"]
    return engine.upsert(upserts), engine.delete(removals)


def drain(
    store: Store, engine: SearchEngine, analyzer: Analyzer, batch_size: int = DRAIN_BATCH, max_batches: int | None = None
) -> DrainReport:
    indexed = removed = failed = batches = 0
    while max_batches is None or batches < max_batches:
        with store.session() as session:
            claimed = claim_batch(session, batch_size)
            outbox_ids = [row.id for row in claimed]
            states = load_state(session, (row.record_id for row in claimed))
        if not outbox_ids:
            break
        batches += 1
        # Analysis and engine writes run outside the transaction: on SQLite it would hold every writer back.
        # Another drainer may take the same rows meanwhile; versioned writes make that harmless.
        try:
            upserted, deleted = apply_state(engine, analyzer, states)
        except EngineUnavailable as exc:
            # An outage is nobody's fault: the rows wait, uncounted, so they are not dead-lettered (T28).
            log.warning("engine unavailable, %d outbox rows wait for it: %s", len(outbox_ids), exc)
            failed += len(outbox_ids)
            break
        except EngineError as exc:
            log.warning("outbox drain failed, %d rows kept for the next drain: %s", len(outbox_ids), exc)
            with store.session() as session:
                for outbox_id in outbox_ids:
                    mark_failed(session, outbox_id, str(exc))
            failed += len(outbox_ids)
            break
        with store.session() as session:
            mark_done(session, outbox_ids)
        indexed += upserted
        removed += deleted
    return DrainReport(indexed=indexed, removed=removed, failed=failed, batches=batches)
