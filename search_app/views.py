"""Citizens' pages: home, search results, record pages; and the zero-result report for curators.

Everything works without JavaScript: facets, removable conditions, sorting and pagination are plain links built
from the validated `Query`, so a shared or bookmarked URL shows the same page. `static/app.js` only adds
suggestions as you type and opens the filters on wide screens.

Templates are autoescaped `.html` files. The only markup that enters them from data is a hit's `title_html` and
`snippet`, which `make_snippet` escapes before it adds `<mark>` (T17); `hit_view` is the one place that trusts
them, and tests/search_app/test_views.py lints for any other `Markup(` or `|safe`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
from datetime import datetime
from difflib import SequenceMatcher
from typing import Any
from urllib.parse import urlencode, urlsplit

import jaconv
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from indexer.engines.base import EngineError
from indexer.library import Library
from indexer.query import DROPPED_WORDS, OR_WORDS, QUOTES
from indexer.search import MAX_PAGE, Hit, Query, QueryError, Results
from schemas import (
    JST,
    KIND_LABELS,
    KIND_MODELS,
    PROVENANCE_LABELS,
    SEVERITY_LABELS,
    RecordBase,
    category_label,
    is_category,
    load_taxonomy,
)
from search_app import get_library, searchlog
from search_app.auth.policy import EDITORS, PUBLIC, access
from search_app.notices import active_urgent_notices, pinned_notices
from search_app.params import DEFAULT_PAGE_SIZE, FILTER_PARAMS, MAX_QUERY_PARAM_CHARS, query_from_args

bp = Blueprint("search", __name__)


# --- labels -----------------------------------------------------------------------------------------------------

# Facet name in the engine → request parameter and its label, in the order the filters are shown.
FACETS: tuple[tuple[str, str, str], ...] = (
    ("kind", "kind", "種別"),
    ("categories", "category", "カテゴリ"),
    ("provenance", "provenance", "情報源"),
    ("organization", "organization", "発信元"),
    ("region", "region", "地域"),
    ("year", "year", "公開年"),
)
PARAM_LABELS = {param: label for _, param, label in FACETS} | {
    "q": "キーワード",
    "from": "開始日",
    "to": "終了日",
}
SORT_LABELS = {"relevance": "関連度順", "newest": "新しい順", "event": "開催日順"}

FIELD_LABELS = {
    "organization": "発信元",
    "region": "地域",
    "categories": "カテゴリ",
    "tags": "タグ",
    "published_at": "公開日",
    "updated_at": "更新日",
    "maker": "メーカー",
    "product": "製品",
    "jan_codes": "JANコード",
    "jan_code": "JANコード",
    "model_numbers": "型番",
    "lot_numbers": "ロット番号",
    "hazard": "危険の内容",
    "action": "対応のお願い",
    "severity": "重要度",
    "urgent": "緊急",
    "valid_until": "掲載期限",
    "contact": "問い合わせ先",
    "reported_by": "報告した店舗",
    "allergens": "アレルゲン",
    "price_yen": "価格",
    "organizer": "主催",
    "starts_at": "開始",
    "ends_at": "終了",
    "period": "日時",
    "place": "会場",
    "address": "住所",
    "audience": "対象",
    "fee": "参加費",
    "application_deadline": "申込締切",
    "facility_type": "施設の種類",
    "phone": "電話",
    "opening_hours": "利用時間",
    "latitude": "緯度",
    "longitude": "経度",
    "about_record_id": "関連する記録",
    "shop_code": "店舗コード",
    "accepts_points": "地域ポイント",
    "points_rule": "ポイントのルール",
    "shop_ids": "参加店舗",
    "site": "サイト",
    "fetched_at": "取得日時",
}
KIND_FIELD_LABELS = {("shop", "opening_hours"): "営業時間", ("campaign", "period"): "期間"}
# Shown elsewhere on the record page (heading, badges, the provenance box), or internal to the crawlers.
NOT_LISTED = frozenset(
    {"id", "kind", "title", "body", "url", "source", "external_id", "status", "provenance", "verified_at"}
)
COMMON_FIELDS = ("organization", "region", "categories", "tags", "published_at", "updated_at")
DATE_FIELDS = frozenset(
    {
        "published_at",
        "updated_at",
        "valid_until",
        "starts_at",
        "ends_at",
        "application_deadline",
        "fetched_at",
    }
)
RECORD_LINK_FIELDS = frozenset({"about_record_id", "shop_ids"})

# What a hit shows besides its badges, per kind; "period" joins starts_at and ends_at.
HIT_SUMMARY: dict[str, tuple[str, ...]] = {
    "notice": ("maker", "product", "severity", "valid_until"),
    "product": ("maker", "price_yen", "allergens"),
    "program": ("period", "place", "fee", "application_deadline"),
    "facility": ("address", "opening_hours", "phone"),
    "shop": ("address", "opening_hours", "accepts_points"),
    "campaign": ("period", "organizer"),
    "page": ("site",),
}

WEEKDAYS = "月火水木金土日"
RELATED_COUNT = 5
RELATED_WORDS = 8
SUGGESTION_COUNT = 3
ZERO_RESULT_QUERIES = 100


def field_label(kind: str, name: str) -> str:
    return KIND_FIELD_LABELS.get((kind, name), FIELD_LABELS[name])


def param_value_label(param: str, value: str) -> str:
    if param == "kind":
        return KIND_LABELS.get(value, value)
    if param == "category":
        return category_label(value) if is_category(value) else value
    if param == "provenance":
        return PROVENANCE_LABELS.get(value, value)
    if param == "year":
        return f"{value}年"
    return value


# --- dates --------------------------------------------------------------------------------------------------------


def _as_datetime(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if value is None:
        return None
    return value.astimezone(JST) if value.tzinfo else value


@bp.app_template_filter("jdate")
def format_date(value: datetime | str | None) -> str:
    """2026年3月2日（月）, in Japan time."""
    when = _as_datetime(value)
    if when is None:
        return ""
    return f"{when.year}年{when.month}月{when.day}日（{WEEKDAYS[when.weekday()]}）"


@bp.app_template_filter("jdatetime")
def format_datetime(value: datetime | str | None) -> str:
    """The date, and the time unless it is midnight: a record given a plain date is stored as midnight."""
    when = _as_datetime(value)
    if when is None:
        return ""
    if (when.hour, when.minute) == (0, 0):
        return format_date(when)
    return f"{format_date(when)} {when.hour}:{when.minute:02d}"


def format_period(starts: datetime | str | None, ends: datetime | str | None) -> str:
    start, end = _as_datetime(starts), _as_datetime(ends)
    if start is None:
        return ""
    if end is None or end == start:
        return format_datetime(start)
    if end.date() == start.date():
        return f"{format_datetime(start)}〜{end.hour}:{end.minute:02d}"
    return f"{format_datetime(start)}〜{format_datetime(end)}"


# --- field values ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldValue:
    text: str
    href: str | None = None


@dataclass(frozen=True, slots=True)
class FieldView:
    label: str
    values: list[FieldValue]


def format_value(name: str, value: Any) -> str:
    """One scalar value as a citizen reads it."""
    if name in DATE_FIELDS:
        return format_datetime(value)
    if name == "severity":
        return SEVERITY_LABELS.get(value, str(value))
    if name == "price_yen":
        return f"{int(value):,}円"
    if name == "accepts_points":
        return "使えます" if value in (True, "true") else "使えません"
    if isinstance(value, bool) or value in ("true", "false"):
        return "はい" if value in (True, "true") else "いいえ"
    return str(value)


def _record_link(library: Library, record_id: str) -> FieldValue:
    row = library.get_record(record_id)
    if row is None or row.status != "published":
        return FieldValue(record_id)
    return FieldValue(row.title, url_for("search.record", record_id=record_id))


def record_fields(library: Library, data: dict[str, Any]) -> list[FieldView]:
    """Every field of the record's kind that has a value, kind-specific fields first, with Japanese labels."""
    kind = data["kind"]
    specific = [name for name in KIND_MODELS[kind].model_fields if name not in RecordBase.model_fields]
    views: list[FieldView] = []
    for name in (*specific, *COMMON_FIELDS):
        value = data.get(name)
        if name in NOT_LISTED or value in (None, "", []):
            continue
        items = value if isinstance(value, list) else [value]
        if name == "categories":
            values = [
                FieldValue(category_label(c), url_for("search.search", category=c))
                for c in items
                if is_category(c)
            ]
        elif name in RECORD_LINK_FIELDS:
            values = [_record_link(library, record_id) for record_id in items]
        else:
            values = [FieldValue(format_value(name, item)) for item in items]
        views.append(FieldView(field_label(kind, name), values))
    return views


def safe_link(url: str | None) -> str | None:
    """Only http(s) links are rendered: the schema guarantees it for stored records; this keeps it true here."""
    if url and urlsplit(url).scheme.lower() in ("http", "https"):
        return url
    return None


# --- hits ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HitView:
    hit: Hit
    title_html: Markup
    snippet: Markup
    summary: list[tuple[str, str]]
    url: str


def hit_summary(hit: Hit) -> list[tuple[str, str]]:
    details = hit.details
    summary: list[tuple[str, str]] = []
    for name in HIT_SUMMARY.get(hit.kind, ()):
        if name == "period":
            text = format_period(details.get("starts_at"), details.get("ends_at"))
        else:
            text = format_value(name, details[name]) if details.get(name) else ""
        if text:
            summary.append((field_label(hit.kind, name), text))
    return summary


def hit_view(hit: Hit) -> HitView:
    # The one place that trusts markup from data: make_snippet escapes the text and then adds <mark> (T17).
    return HitView(
        hit=hit,
        title_html=Markup(hit.title_html),
        snippet=Markup(hit.snippet),
        summary=hit_summary(hit),
        url=url_for("search.record", record_id=hit.id),
    )


# --- links that change the current search ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchLinks:
    """URLs of the current search with one thing changed; any change but paging starts again at page 1."""

    query: Query
    dates: tuple[tuple[str, str], ...]  # ("from"/"to", the date as given), already validated

    @classmethod
    def of(cls, query: Query, args: Any) -> SearchLinks:
        return cls(
            query, tuple((name, args[name].strip()) for name in ("from", "to") if args.get(name, "").strip())
        )

    def params(self) -> dict[str, list[str]]:
        params: dict[str, list[str]] = {"q": [self.query.text] if self.query.text.strip() else []}
        for name in FILTER_PARAMS:
            params[name] = list(getattr(self.query, name))
        for name, value in self.dates:
            params[name] = [value]
        if self.query.sort != "relevance":
            params["sort"] = [self.query.sort]
        if self.query.size != DEFAULT_PAGE_SIZE:
            params["size"] = [str(self.query.size)]
        return params

    def url(self, params: dict[str, list[str]], page: int = 1) -> str:
        values: dict[str, Any] = {**params, "page": page if page > 1 else None}
        return url_for("search.search", **values)

    def page(self, number: int) -> str:
        return self.url(self.params(), number)

    def adding(self, param: str, value: str) -> str:
        params = self.params()
        params[param] = [*params.get(param, []), value]
        return self.url(params)

    def removing(self, param: str, value: str | None = None) -> str:
        """Without that value of `param`, or without `param` at all when no value is given."""
        params = self.params()
        params[param] = [v for v in params.get(param, []) if value is not None and v != value]
        return self.url(params)

    def sorted_by(self, sort: str) -> str:
        params = self.params()
        params["sort"] = [sort] if sort != "relevance" else []
        return self.url(params)

    def with_text(self, text: str, keep_filters: bool = True) -> str:
        params = (
            self.params()
            if keep_filters
            else {name: v for name, v in self.params().items() if name in ("sort", "size")}
        )
        params["q"] = [text]
        return self.url(params)

    def filters(self) -> list[tuple[str, str]]:
        """(parameter, value) of every condition but the keyword."""
        return [
            (name, value)
            for name, values in self.params().items()
            if name in PARAM_LABELS and name != "q"
            for value in values
        ]

    def hidden_fields(self, *replaced: str) -> list[tuple[str, str]]:
        """What a form on the page resubmits besides its own inputs (`replaced`, the keyword by default): the
        other conditions and the order stay, and the results start again at page 1."""
        replaced = replaced or ("q",)
        return [
            (name, value) for name, values in self.params().items() if name not in replaced for value in values
        ]

    def date_values(self) -> dict[str, str]:
        """The from/to dates as `<input type="date">` shows them (YYYY-MM-DD), whatever form the URL gave."""
        values = {}
        for name, when in (("from", self.query.date_from), ("to", self.query.date_to)):
            if when is not None:
                values[name] = when.astimezone(JST).date().isoformat()
        return values

    def feed(self) -> str:
        params = {name: values for name, values in self.params().items() if name not in ("sort", "size")}
        query = urlencode([(name, value) for name, values in params.items() for value in values])
        return f"{request.script_root}/search.atom" + (f"?{query}" if query else "")


@dataclass(frozen=True, slots=True)
class Condition:
    label: str
    value: str
    remove_url: str


@dataclass(frozen=True, slots=True)
class FacetLink:
    label: str
    count: int
    selected: bool
    url: str


@dataclass(frozen=True, slots=True)
class FacetGroup:
    param: str
    label: str
    values: list[FacetLink]


@dataclass(frozen=True, slots=True)
class PageLink:
    number: int | None  # None: a gap (…)
    url: str = ""
    current: bool = False


def conditions(links: SearchLinks) -> list[Condition]:
    found = []
    if links.query.text.strip():
        found.append(Condition(PARAM_LABELS["q"], links.query.text.strip(), links.removing("q")))
    for param, value in links.filters():
        found.append(
            Condition(PARAM_LABELS[param], param_value_label(param, value), links.removing(param, value))
        )
    return found


def facet_groups(links: SearchLinks, results: Results) -> list[FacetGroup]:
    groups = []
    for facet, param, label in FACETS:
        selected = set(getattr(links.query, param))
        values = [
            FacetLink(
                value.label,
                value.count,
                value.value in selected,
                links.removing(param, value.value)
                if value.value in selected
                else links.adding(param, value.value),
            )
            for value in results.facets.get(facet, [])
        ]
        if values:
            groups.append(FacetGroup(param, label, values))
    return groups


def page_count(results: Results) -> int:
    return min(MAX_PAGE, -(-results.total // results.query.size))


def page_links(links: SearchLinks, results: Results) -> list[PageLink]:
    """First, last and the two pages either side of the current one, with gaps between."""
    last = page_count(results)
    current = results.query.page
    numbers = sorted({1, last, *range(max(1, current - 2), min(last, current + 2) + 1)})
    pages: list[PageLink] = []
    for number in numbers:
        if pages and pages[-1].number is not None and number - pages[-1].number > 1:
            pages.append(PageLink(None))
        pages.append(PageLink(number, links.page(number), number == current))
    return pages


# --- help for a search that found nothing ------------------------------------------------------------------------

# Token fields whose terms can be offered as spellings: normalized words and sub-words, and kana readings.
SPELLING_FIELDS = ("title_c", "title_a", "meta_c", "meta_a", "title_r", "meta_r")
MIN_PREFIX_CHARS = 2
_MARKED = re.compile(r"<mark>(.*?)</mark>", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Alternative:
    label: str
    url: str
    count: int


def _count(library: Library, query: Query) -> int:
    return library.search(replace(query, page=1, size=1)).total


def _words(text: str) -> list[str]:
    """The plain words of a query (no operators, phrases or exclusions), which spellings can replace."""
    return [
        word
        for word in text.split()
        if word not in OR_WORDS
        and word not in DROPPED_WORDS
        and not word.startswith("-")
        and word[0] not in QUOTES
    ]


def _spelling_candidates(library: Library, word: str) -> list[str]:
    """Indexed words and readings that start like `word` (as typed, and in katakana), most similar first.

    The prefix is shortened from the end until something is found: typos and okurigana are likeliest there.
    """
    norm = library.analyzer.normalize(word).text.lower()
    forms = list(dict.fromkeys([norm, jaconv.hira2kata(norm)]))
    found: dict[str, int] = {}
    for form in forms:
        for size in range(len(form), max(MIN_PREFIX_CHARS, len(form) // 2) - 1, -1):
            for field in SPELLING_FIELDS:
                for term, frequency in library.engine.suggest(field, form[:size], limit=5):
                    if term not in forms:
                        found[term] = max(frequency, found.get(term, 0))
            if found:
                break

    def similarity(term: str) -> tuple[float, int]:
        return max(SequenceMatcher(None, form, term).ratio() for form in forms), found[term]

    return sorted(found, key=similarity, reverse=True)[:SUGGESTION_COUNT]


def _spelling_in_records(library: Library, candidate: str) -> str:
    """How the records write a candidate: readings (ボウサイ) and folded forms (sb) become 防災, SB."""
    for hit in library.search(Query(text=candidate, size=1)).hits:
        for markup in (hit.title_html, hit.snippet):
            if marked := _MARKED.search(markup):
                return html.unescape(marked.group(1))
    return candidate


def spelling_suggestions(library: Library, links: SearchLinks) -> list[Alternative]:
    """The query with one misspelled word replaced, for replacements that find something."""
    words = links.query.text.split()
    suggestions: dict[str, Alternative] = {}
    for word in _words(links.query.text):
        if _count(library, Query(text=word)) > 0:
            continue  # the records use this word: it is not the one to correct
        for candidate in _spelling_candidates(library, word):
            spelling = _spelling_in_records(library, candidate)
            text = " ".join(spelling if w == word else w for w in words)
            if text in suggestions:
                continue
            count = _count(library, replace(links.query, text=text))
            if count:
                suggestions[text] = Alternative(text, links.with_text(text), count)
    return list(suggestions.values())[:SUGGESTION_COUNT]


def looser_queries(library: Library, links: SearchLinks) -> list[Alternative]:
    """Searches with a condition or a word fewer that find something, with their counts."""
    query = links.query
    candidates: list[tuple[str, Query, str]] = []
    filters = links.filters()
    if filters:
        unfiltered = Query(text=query.text, sort=query.sort, size=query.size)
        candidates.append(
            ("絞り込み条件をすべて外す", unfiltered, links.with_text(query.text, keep_filters=False))
        )
    if len(filters) > 1:
        for param, value in filters:
            looser = _without(query, param, value)
            label = f"「{PARAM_LABELS[param]}: {param_value_label(param, value)}」を外す"
            candidates.append((label, looser, links.removing(param, value)))
    words = query.text.split()
    if len(words) > 1:
        for word in words:
            text = " ".join(w for w in words if w != word)
            candidates.append((f"「{word}」を除いて探す", replace(query, text=text), links.with_text(text)))
    alternatives = []
    for label, looser, url in candidates:
        if count := _count(library, looser):
            alternatives.append(Alternative(label, url, count))
    return alternatives


def _without(query: Query, param: str, value: str) -> Query:
    if param == "from":
        return replace(query, date_from=None)
    if param == "to":
        return replace(query, date_to=None)
    kept: dict[str, Any] = {param: tuple(v for v in getattr(query, param) if v != value)}
    return replace(query, **kept)


# --- pages ----------------------------------------------------------------------------------------------------------


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {
        "KIND_LABELS": KIND_LABELS,
        "PROVENANCE_LABELS": PROVENANCE_LABELS,
        "SEVERITY_LABELS": SEVERITY_LABELS,
        "suggest_url": f"{request.script_root}/api/v1/suggest",
        "search_feed_url": f"{request.script_root}/search.atom",
        "notices_feed_url": f"{request.script_root}/notices.atom",
        "opensearch_url": f"{request.script_root}/opensearch.xml",
    }


@bp.get("/")
@access(PUBLIC)
def index() -> str | Response:
    if request.args.get("q"):
        # The first search page answered /?q=…; links to it land on the results.
        args: dict[str, Any] = request.args.to_dict(flat=False)
        return redirect(url_for("search.search", **args))
    library = get_library(current_app)
    try:
        newest = [hit_view(hit) for hit in library.search(Query(sort="newest", size=5)).hits]
    except EngineError:
        newest = []  # the notices and categories come from the database and still help
    taxonomy = load_taxonomy()
    return render_template(
        "home.html",
        notices=active_urgent_notices(library),
        newest=newest,
        categories=[(root, taxonomy.children(root.id)) for root in taxonomy.roots],
    )


@bp.get("/search")
@access(PUBLIC)
def search() -> tuple[str, int]:
    library = get_library(current_app)
    try:
        query = query_from_args(request.args)
    except QueryError as exc:
        text = request.args.get("q", "")
        # Retrying keeps the words, and drops every other parameter, unless the words were what was wrong.
        retry = url_for("search.search", q=text or None) if len(text) <= MAX_QUERY_PARAM_CHARS else None
        return render_template("search.html", error=str(exc), text=text, retry_url=retry), 400
    links = SearchLinks.of(query, request.args)
    results = current_app.extensions["result_cache"].search(library, query)  # EngineError: errors.py's 503 page
    searchlog.log_search(library, query, results)
    zero = results.total == 0
    taxonomy = load_taxonomy()
    return render_template(
        "search.html",
        text=query.text,
        query=query,
        results=results,
        links=links,
        hits=[hit_view(hit) for hit in results.hits],
        pinned=pinned_notices(library, query, terms=results.terms),
        conditions=conditions(links),
        facets=facet_groups(links, results),
        sorts=[(sort, label, links.sorted_by(sort)) for sort, label in SORT_LABELS.items()],
        pages=page_links(links, results),
        last_page=page_count(results),
        spellings=spelling_suggestions(library, links) if zero and query.text.strip() else [],
        looser=looser_queries(library, links) if zero else [],
        categories=taxonomy.roots if zero else [],
        search_feed_url=links.feed(),
    ), 200


@bp.get("/records/<record_id>")
@access(PUBLIC)
def record(record_id: str) -> tuple[str, int]:
    library = get_library(current_app)
    row = library.get_record(record_id)
    if row is None or row.status != "published":
        abort(404, description="この記録は存在しないか、公開が終わっています。")
    data = row.data
    try:
        related = related_records(library, row.id, row.title)
    except EngineError:
        related = []  # the record itself comes from the database and is still worth showing
    urgent = row.kind == "notice" and any(notice["id"] == row.id for notice in active_urgent_notices(library))
    return render_template(
        "record.html",
        row=row,
        data=data,
        fields=record_fields(library, data),
        source_url=safe_link(data.get("url")),
        urgent=urgent,
        related=related,
    ), 200


def related_records(library: Library, record_id: str, title: str) -> list[HitView]:
    """Records sharing the most words with the title: its content words joined by OR, itself left out."""
    words: list[str] = []
    for term in library.analyzer.query_terms(title):
        # Characters the query syntax reads as operators are dropped, so each word stays a plain word.
        word = "".join(ch for ch in term.surface if ch not in QUOTES).lstrip("-")
        if len(word) > 1 and word not in words and word.upper() not in OR_WORDS | DROPPED_WORDS:
            words.append(word)
    if not words:
        return []
    results = library.search(Query(text=" OR ".join(words[:RELATED_WORDS]), size=RELATED_COUNT + 1))
    return [hit_view(hit) for hit in results.hits if hit.id != record_id][:RELATED_COUNT]


@bp.get("/admin/zero-results")
@access(*EDITORS)
def zero_results() -> tuple[str, int, dict[str, str]]:
    """Most frequent searches that found nothing, for curators (editors, admins) to fill the gaps."""
    no_store = {"Cache-Control": "no-store"}
    queries = searchlog.zero_result_queries(get_library(current_app), ZERO_RESULT_QUERIES)
    return render_template("admin_zero_results.html", queries=queries), 200, no_store


@bp.get("/healthz")
@access(PUBLIC)
def healthz() -> dict[str, str]:
    return {"status": "ok"}
