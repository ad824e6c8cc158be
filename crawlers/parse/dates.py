"""Dates and times as Japanese documents write them: 2026年4月1日, 令和8年4月1日, 2026/4/1, 9:00, 午後1時半.

Parsing works on an NFKC copy (full-width digits and colons become ASCII); the documents themselves are
never rewritten. Every regex here is linear: bounded repeats and no nested quantifiers (RELIABILITY T16).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta

from schemas import JST

# Years outside this range are typos or placeholders (0001-01-01, 9999/12/31); refusing them also keeps
# offset arithmetic (24:00, time zones) clear of datetime's limits.
YEARS = range(1868, 3000)
# First year of each era minus one: 令和1年 is 2019. 元年 is the first year.
_ERA_OFFSET = {"令和": 2018, "平成": 1988, "昭和": 1925}
_ERA_LAST_YEAR = {"令和": None, "平成": 31, "昭和": 64}

_JA_DATE = re.compile(
    r"(?:(令和|平成|昭和)\s{0,2}(元|[0-9]{1,2})|([0-9]{4}))\s{0,2}年\s{0,2}([0-9]{1,2})\s{0,2}月\s{0,2}([0-9]{1,2})\s{0,2}日"
)
# "2023-6-30(金曜日)", "4月1日（月・祝）": a weekday after a date, dropped before a whole-value match.
_WEEKDAY_SUFFIX = re.compile(r"\s{0,2}\((?:[月火水木金土日祝・]|曜日|曜){1,6}\)\Z")
_NUMERIC_DATE = re.compile(r"(?<![0-9])([0-9]{4})([/.-])([0-9]{1,2})\2([0-9]{1,2})(?![0-9])")
# A date right after a label that says when the page was published (or, as a weaker hint, updated).
_LABELLED = re.compile(r"(公開|掲載|作成|登録|投稿|発行|更新)(?:日時|日)?\s{0,3}:?\s{0,3}")
_PUBLISH_LABELS = frozenset({"公開", "掲載", "作成", "登録", "投稿", "発行"})
_TIME = re.compile(
    r"(午前|午後)?\s{0,2}([0-9]{1,2})\s{0,2}(?::\s{0,2}([0-9]{2})(?::[0-9]{2})?|時\s{0,2}(?:([0-9]{1,2})\s{0,2}分|(半))?)"
)


def parse_date(text: str) -> date | None:
    """The date a whole cell or attribute holds (surrounding spaces allowed), else None."""
    value = _WEEKDAY_SUFFIX.sub("", unicodedata.normalize("NFKC", text).strip())
    for pattern in (_JA_DATE, _NUMERIC_DATE):
        if (match := pattern.fullmatch(value)) and (found := _date_from(match)):
            return found
    return None


def find_date(text: str) -> date | None:
    """The publication date a page's text states: after a 公開/掲載/… label, else after 更新, else the first
    date at all."""
    value = unicodedata.normalize("NFKC", text)
    updated = None
    for label in _LABELLED.finditer(value):
        found = _date_at(value, label.end())
        if found and label.group(1) in _PUBLISH_LABELS:
            return found
        updated = updated or found
    if updated:
        return updated
    dated = [
        (match.start(), found)
        for pattern in (_JA_DATE, _NUMERIC_DATE)
        for match in pattern.finditer(value)
        if (found := _date_from(match))
    ]
    return min(dated)[1] if dated else None


def parse_time(text: str) -> timedelta | None:
    """A time of day as an offset from midnight (so 24:00 and 25:30, common for closing times, work)."""
    match = _TIME.fullmatch(unicodedata.normalize("NFKC", text).strip())
    if not match:
        return None
    meridiem, hours, minutes_colon, minutes_ji, half = match.groups()
    hour = int(hours)
    minute = int(minutes_colon or minutes_ji or 0) + (30 if half else 0)
    if meridiem == "午後" and hour < 12:
        hour += 12
    if hour > 30 or minute > 59:
        return None
    return timedelta(hours=hour, minutes=minute)


def parse_datetime(text: str) -> datetime | None:
    """An ISO 8601 timestamp (naive ones are Japan time) or a date as ``parse_date`` reads it."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        day = parse_date(value)
        return at_time(day) if day else None
    if parsed.year not in YEARS:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=JST)


def at_time(day: date, offset: timedelta | None = None) -> datetime:
    """``day`` at ``offset`` after midnight, Japan time."""
    return datetime(day.year, day.month, day.day, tzinfo=JST) + (offset or timedelta())


def _date_at(text: str, position: int) -> date | None:
    for pattern in (_JA_DATE, _NUMERIC_DATE):
        if (match := pattern.match(text, position)) and (found := _date_from(match)):
            return found
    return None


def _date_from(match: re.Match[str]) -> date | None:
    if match.re is _JA_DATE:
        era, era_year, year, month, day = match.groups()
        if era:
            number = 1 if era_year == "元" else int(era_year)
            last = _ERA_LAST_YEAR[era]
            if number < 1 or (last is not None and number > last):
                return None
            year_number = _ERA_OFFSET[era] + number
        else:
            year_number = int(year)
    else:
        year, _, month, day = match.groups()
        year_number = int(year)
    if year_number not in YEARS:
        return None
    try:
        return date(year_number, int(month), int(day))
    except ValueError:
        return None
