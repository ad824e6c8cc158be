"""Search-result snippets: the best window of the original text, HTML-escaped, with the matches in <mark>.

Computed here from the analyzer's offsets rather than by the engine, so marks are right on Japanese text and the same
for every engine (DESIGN §2). The text is escaped first and the marks added afterwards, so neither markup in the text
nor a literal "<mark>" in it can reach the page (RELIABILITY T17).

It runs for every hit shown, so Sudachi (about 2 µs a character) never sees the whole body: candidate windows come
from plain substring search of the terms' normalized surfaces and forms, and only the chosen window is tokenized,
for the matches that substrings cannot see (附属 in the text for 付属 in the query, inflected verbs, readings).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import NamedTuple

from indexer.analysis.analyzer import Analyzer, QueryTerm, get_analyzer
from indexer.analysis.normalize import Normalized, is_mark

ELLIPSIS = "…"
# When no substring of any term occurs, this many leading characters are tokenized to look for token matches.
FALLBACK_CHARS = 1000
# Characters tokenized on each side of a window, so that the words at its edges are cut as in the full text.
TOKEN_CONTEXT = 10
_SENTENCE_ENDS = frozenset("。．！？!?\n")
_NON_SPACE = re.compile(r"\S")


class _Hit(NamedTuple):
    start: int  # original text
    end: int
    term: int  # index into the terms


def make_snippet(text: str, terms: Sequence[QueryTerm], max_chars: int = 120) -> str:
    """About ``max_chars`` characters of ``text`` around the most matches, escaped, matches in ``<mark>``."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, not {max_chars}")
    analyzer = get_analyzer()
    norm = analyzer.normalize(text)
    hits = _substring_hits(norm, terms)
    if hits:
        start, end = _window(text, hits, max_chars)
        n_start, n_end = norm.to_normalized(start), norm.to_normalized(end)
        hits += _token_hits(
            analyzer, norm, terms, max(0, n_start - TOKEN_CONTEXT), min(len(norm.text), n_end + TOKEN_CONTEXT)
        )
    else:
        hits = _token_hits(analyzer, norm, terms, 0, min(len(norm.text), FALLBACK_CHARS))
        if hits:
            start, end = _window(text, hits, max_chars)
        else:
            start, end = _trim(text, 0, _cluster_end(text, min(len(text), max_chars)))
    return _render(text, start, end, hits)


def _substring_hits(norm: Normalized, terms: Sequence[QueryTerm]) -> list[_Hit]:
    """Occurrences of each term's surface, and of its form when it is a single word (申込 → 申し込み)."""
    hits: list[_Hit] = []
    haystack = norm.text
    for index, term in enumerate(terms):
        needles = {term.surface}
        if len(term.c) == 1:
            needles.add(term.c[0])
        if len(term.a) == 1:
            needles.add(term.a[0])
        for needle in needles:
            if not needle or needle.isspace():
                continue
            found = haystack.find(needle)
            while found != -1:
                start, end = norm.span_to_original(found, found + len(needle))
                hits.append(_Hit(start, end, index))
                found = haystack.find(needle, found + len(needle))
    return hits


def _token_hits(
    analyzer: Analyzer, norm: Normalized, terms: Sequence[QueryTerm], start: int, end: int
) -> list[_Hit]:
    """Token matches in normalized ``[start, end)``: each term's C forms, A forms and (kana terms) readings, in order."""
    wanted = frozenset(f for term in terms for f in (*term.c, *term.a, *(term.r if term.kana else ())))
    if not wanted:
        return []
    words, units = analyzer._token_spans(norm.text, start, end, wanted)
    unit_forms = [u.form for u in units]
    readable = [u for u in units if u.reading is not None]
    readings = [u.reading for u in readable]
    hits: list[_Hit] = []
    for index, term in enumerate(terms):
        for pattern, forms, spans in (
            (term.c, [w.form for w in words], words),
            (term.a, unit_forms, units),
            (term.r if term.kana else (), readings, readable),
        ):
            for first, last in _sequence_matches(pattern, forms):
                s, e = norm.span_to_original(spans[first].start, spans[last].end)
                hits.append(_Hit(s, e, index))
    return hits


def _sequence_matches(pattern: tuple[str, ...], forms: Sequence[str | None]) -> list[tuple[int, int]]:
    """(first, last) indexes of each occurrence of ``pattern`` as consecutive items of ``forms``."""
    size = len(pattern)
    if not size:
        return []
    head = pattern[0]
    return [
        (i, i + size - 1)
        for i in range(len(forms) - size + 1)
        if forms[i] == head and tuple(forms[i : i + size]) == pattern
    ]


def _window(text: str, hits: list[_Hit], max_chars: int) -> tuple[int, int]:
    """The window of about ``max_chars`` with the most distinct terms, then the most hits, earliest on a tie."""
    hits.sort()
    counts: dict[int, int] = {}
    best = (-1, -1)
    best_range = (0, 1)
    j = 0
    for i, hit in enumerate(hits):
        while j < len(hits) and (j == i or hits[j].end <= hit.start + max_chars):
            counts[hits[j].term] = counts.get(hits[j].term, 0) + 1
            j += 1
        score = (sum(1 for n in counts.values() if n), j - i)
        if score > best:
            best, best_range = score, (i, j)
        counts[hit.term] -= 1
    chosen = hits[best_range[0] : best_range[1]]
    first = chosen[0].start
    last = max(h.end for h in chosen)
    start = _start_before(text, first, max(0, max_chars - (last - first)), max_chars)
    return _trim(text, start, _cluster_end(text, min(len(text), start + max_chars)))


def _start_before(text: str, first: int, slack: int, max_chars: int) -> int:
    """Where to start a window whose first match is at ``first``: the latest sentence start within reach, else a
    little context before the match."""
    reach = min(slack, max_chars // 3)
    floor = first - reach
    for i in range(first - 1, max(floor, 0) - 1, -1):
        if text[i] in _SENTENCE_ENDS:
            return i + 1
    if floor <= 0:
        return 0
    start = first - min(reach, max_chars // 6)
    while start > 0 and is_mark(text[start]):
        start -= 1
    return start


def _cluster_end(text: str, end: int) -> int:
    """``end`` moved back so that it does not separate a character from its marks."""
    while 0 < end < len(text) and is_mark(text[end]):
        end -= 1
    return end


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _render(text: str, start: int, end: int, hits: list[_Hit]) -> str:
    marks: list[list[int]] = []
    for hit in sorted(hits):
        s, e = max(hit.start, start), min(hit.end, end)
        if s >= e:
            continue
        if marks and s <= marks[-1][1]:
            marks[-1][1] = max(marks[-1][1], e)
        else:
            marks.append([s, e])
    out = [ELLIPSIS] if _NON_SPACE.search(text, 0, start) else []
    cursor = start
    for s, e in marks:
        out.append(html.escape(text[cursor:s], quote=True))
        out.append(f"<mark>{html.escape(text[s:e], quote=True)}</mark>")
        cursor = e
    out.append(html.escape(text[cursor:end], quote=True))
    if _NON_SPACE.search(text, end):
        out.append(ELLIPSIS)
    return "".join(out)

