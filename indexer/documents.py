"""A stored record becomes the one document every engine indexes.

This function is the allowlist of T08: only the fields named here can ever reach an index.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from indexer.analysis import Analyzer, get_analyzer
from indexer.engines.base import FORMS, IndexDocument
from schemas import SEARCHABLE_TEXT_FIELDS, category_label, is_category

# Kind-specific facts shown with a hit (beside the searchable ones), without a database round trip.
DISPLAY_FIELDS: dict[str, tuple[str, ...]] = {
    "notice": ("severity", "urgent", "valid_until", "contact"),
    "product": ("price_yen",),
    "program": ("starts_at", "ends_at", "fee", "application_deadline", "contact"),
    "facility": ("phone", "opening_hours"),
    "shop": ("phone", "opening_hours", "accepts_points"),
    "campaign": ("starts_at", "ends_at"),
}
EVENT_FIELD = {"program": "starts_at", "campaign": "starts_at"}


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return None


def _text(value: Any) -> str:
    if value is None or value == [] or value == "":
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "、".join(str(item) for item in value)
    return str(value)


def _meta_text(record: dict[str, Any]) -> str:
    """Searchable text besides title and body: kind-specific fields, organization, tags, category labels."""
    kind = record["kind"]
    parts = [_text(record.get(name)) for name in SEARCHABLE_TEXT_FIELDS.get(kind, ())]
    parts.append(_text(record.get("organization")))
    parts.append(_text(record.get("region")))
    parts.extend(_text(tag) for tag in record.get("tags") or [])
    parts.extend(category_label(c) for c in record.get("categories") or [] if is_category(c))
    return "\n".join(part for part in parts if part)


def build_document(record: dict[str, Any], revision: int, analyzer: Analyzer | None = None) -> IndexDocument:
    analyzer = analyzer or get_analyzer()
    kind = record["kind"]
    tokens: dict[str, str] = {}
    for group, text in (("title", record["title"]), ("meta", _meta_text(record)), ("body", record.get("body") or "")):
        joined = analyzer.analyze(text).joined()
        for form in FORMS:
            tokens[f"{group}_{form}"] = joined[form]
    details = {
        name: _text(record.get(name))
        for name in SEARCHABLE_TEXT_FIELDS.get(kind, ()) + DISPLAY_FIELDS.get(kind, ())
        if _text(record.get(name))
    }
    event_field = EVENT_FIELD.get(kind)
    return IndexDocument(
        id=record["id"],
        revision=revision,
        kind=kind,
        title=record["title"],
        body=record.get("body") or "",
        url=record.get("url"),
        provenance=record["provenance"],
        organization=record.get("organization"),
        region=record.get("region"),
        categories=tuple(record.get("categories") or ()),
        published_at=_when(record.get("published_at")) or _when(record.get("updated_at")),
        event_at=_when(record.get(event_field)) if event_field else None,
        verified_at=_when(record.get("verified_at")),
        details=details,
        tokens=tokens,
    )
