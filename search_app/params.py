"""Request parameters → `Query`, shared by the HTML pages and the JSON API so both read them identically."""

from __future__ import annotations

from datetime import datetime, time

from werkzeug.datastructures import MultiDict

from indexer.engines.base import SORT_ORDERS
from indexer.search import MAX_PAGE, MAX_PAGE_SIZE, Query, QueryError
from schemas import JST

MAX_QUERY_PARAM_CHARS = 1000
FILTER_PARAMS = ("kind", "category", "organization", "region", "provenance", "year")
DEFAULT_PAGE_SIZE = 10


def _integer(args: MultiDict[str, str], name: str, default: int, label: str, upper: int) -> int:
    raw = args.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"{label}（{name}）は 1〜{upper} の整数で指定してください") from None
    return value


def _date(args: MultiDict[str, str], name: str, label: str, end_of_day: bool) -> datetime | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise QueryError(f"{label}（{name}）は 2026-04-01 のような日付で指定してください") from None
    if len(raw) == 10 and end_of_day:
        parsed = datetime.combine(parsed.date(), time(23, 59, 59))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=JST)


def _values(args: MultiDict[str, str], name: str) -> tuple[str, ...]:
    """Repeated parameters (kind=a&kind=b) or comma-separated ones (kind=a,b), blanks dropped, order kept."""
    values: list[str] = []
    for raw in args.getlist(name):
        for value in raw.split(","):
            value = value.strip()
            if value and value not in values:
                values.append(value)
    return tuple(values)


def query_from_args(args: MultiDict[str, str]) -> Query:
    """Build and validate a Query; raises QueryError with a Japanese message naming the parameter."""
    text = args.get("q", "")
    if len(text) > MAX_QUERY_PARAM_CHARS:
        raise QueryError(f"検索語が長すぎます（{MAX_QUERY_PARAM_CHARS} 文字まで）")
    sort = args.get("sort", "").strip() or "relevance"
    if sort not in SORT_ORDERS:
        raise QueryError(f"並び順（sort）は {', '.join(SORT_ORDERS)} のいずれかで指定してください")
    query = Query(
        text=text,
        kind=_values(args, "kind"),
        category=_values(args, "category"),
        organization=_values(args, "organization"),
        region=_values(args, "region"),
        provenance=_values(args, "provenance"),
        year=_values(args, "year"),
        date_from=_date(args, "from", "期間の開始", end_of_day=False),
        date_to=_date(args, "to", "期間の終了", end_of_day=True),
        sort=sort,  # type: ignore[arg-type]
        page=_integer(args, "page", 1, "ページ", MAX_PAGE),
        size=_integer(args, "size", DEFAULT_PAGE_SIZE, "件数", MAX_PAGE_SIZE),
    )
    query.validate()
    return query
