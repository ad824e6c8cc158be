"""Search-result snippets: the best window of the original text, HTML-escaped, matches in <mark>.

Computed here from the analyzer's offsets rather than by the engine, so marks are right on Japanese
text and the same for every engine (DESIGN §2). The text is escaped first and the marks added
afterwards, so neither markup in the text nor a literal "<mark>" in it can reach the page
(RELIABILITY T17).

It runs for every hit shown, so Sudachi (2–3 µs a character here) never sees the whole body: candidate
windows come from plain substring search of the terms' normalized surfaces and forms, and only the
chosen window is tokenized, for the matches that substrings cannot see (附属 in the text for 付属 in
the query, inflected verbs, readings).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from itertools import chain

from indexer.analysis.analyzer import Analyzer, QueryTerm, get_analyzer
from indexer.analysis.normalize import Normalized

ELLIPSIS = "…"
# When no substring of any term occurs, up to this many leading characters are tokenized to look for
# token matches, a block at a time (cut after a sentence end where possible), stopping at the first
# block that has one. That is skipped when no term is in hiragana and those characters share no kanji,
# katakana or Latin character with the terms' surfaces and forms (the hit matched in another field,
# the title say): 附属 and 付属 share 属, but 呑む and 飲む share nothing, so a text that spells a
# query's word only in such a variant is shown unmarked.
FALLBACK_CHARS = 1000
FALLBACK_BLOCK = 250
# A hiragana term (としょかん) is found in kanji text by reading only, which no substring or shared character
# can rule out, so every hit of such a query would tokenize; katakana shares characters with most Japanese text.
# For a kana term only the first block is tokenized (a quarter of the cost); a katakana term also needs a
# shared character first, like a kanji term.
KANA_FALLBACK_CHARS = FALLBACK_BLOCK
# Characters tokenized on each side of a window, so that the words at its edges are cut as in the full text.
TOKEN_CONTEXT = 8
_SENTENCE_ENDS = frozenset("。．！？!?\n")
_NON_SPACE = re.compile(r"\S")
_HIRAGANA_OR_LONG_VOWEL = re.compile("[\u3041-\u309f\u30fc]")
_HIRAGANA = re.compile("[\u3041-\u309f]")
_KANJI = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3005]")


# (start, end, index of the term) in normalized text; plain tuples, as there can be hundreds per call.
_Hit = tuple[int, int, int]
# Index of a kana term in the query's terms -> spellings found for it by tokenizing (make_snippet).
Learned = dict[int, set[str]]
MAX_LEARNED = 8


def make_snippet(
    text: str,
    terms: Sequence[QueryTerm],
    max_chars: int | None = 120,
    learned: Learned | None = None,
    as_words: Callable[[], bool] | None = None,
    normalized: Normalized | None = None,
) -> str:
    """About ``max_chars`` characters of ``text`` around the most matches, escaped, matches in ``<mark>``;
    ``None``: all of it (a title). The count is of the normalized text, which NFKC may make longer (… is ...).

    ``learned``, shared by the snippets of one result page, collects how kana terms are spelled in the texts
    (としょかん → 図書館, found by tokenizing); later texts then find those spellings as plain substrings instead
    of tokenizing their beginnings again.

    ``as_words()``, when given, tells whether any term occurs in ``text`` as indexed words (the search
    index knows). A text in which no substring of any term occurs is tokenized only if one does: tokenizing
    finds what substrings cannot (附属 for 付属, 手の平 for 手のひら), but its first thousand characters cost
    3 to 4 ms, and most such texts belong to a hit found by its title, where it would find nothing.

    ``normalized``: ``text`` already normalized (a body's, stored with the index), so it is not done again.
    """
    if max_chars is not None and max_chars < 1:
        raise ValueError(f"max_chars must be positive, not {max_chars}")
    analyzer = get_analyzer()
    norm = normalized if normalized is not None else analyzer.normalize(text)
    size = len(norm.text)
    if max_chars is None:
        max_chars = max(size, 1)
    hits = _substring_hits(norm.text, terms, learned)
    if hits:
        start, end = _window(norm.text, hits, max_chars)
        # Sudachi is about half of a snippet's cost; it is only needed for a term no substring shows in the window,
        # and only if one of those could be there (a record found by some of the words shares nothing with the
        # others, most of the time).
        shown = {index for hit_start, _, index in hits if start <= hit_start < end}
        around = (max(0, start - TOKEN_CONTEXT), min(size, end + TOKEN_CONTEXT))
        missing = [term for index, term in enumerate(terms) if index not in shown]
        if missing and _may_match(missing, norm.text[around[0] : around[1]]):
            found = _token_hits(analyzer, norm.text, terms, *around)
            _learn(learned, norm.text, terms, found)
            hits += found
    else:
        hits = _first_token_hits(analyzer, norm.text, terms, as_words)
        _learn(learned, norm.text, terms, hits)
        start, end = _window(norm.text, hits, max_chars) if hits else (0, min(size, max_chars))
    return _render(text, norm, start, end, hits)


def _learn(learned: Learned | None, text: str, terms: Sequence[QueryTerm], hits: list[_Hit]) -> None:
    if learned is None:
        return
    for start, end, index in hits:
        # One character (市 for し) would also match inside other words, where Sudachi reads it otherwise.
        if terms[index].kana and end - start > 1:
            spellings = learned.setdefault(index, set())
            if len(spellings) < MAX_LEARNED:
                spellings.add(text[start:end])


def _substring_hits(text: str, terms: Sequence[QueryTerm], learned: Learned | None = None) -> list[_Hit]:
    """Occurrences of each term's surface, and of its form when it is a single word (申込 → 申し込み), and of
    the spellings learned for it from earlier texts."""
    hits: list[_Hit] = []
    for index, term in enumerate(terms):
        needles = {term.surface, *(learned.get(index, ()) if learned else ())}
        if term.kana and len(term.r) == 1:
            needles.add(term.r[0])  # ヌイグルミ for ぬいぐるみ: the reading is a spelling too
        if len(term.c) == 1:
            needles.add(term.c[0])
        if len(term.a) == 1:
            needles.add(term.a[0])
        for needle in needles:
            if not needle or needle.isspace():
                continue
            size = len(needle)
            found = text.find(needle)
            while found != -1:
                hits.append((found, found + size, index))
                found = text.find(needle, found + size)
    return hits


def _first_token_hits(
    analyzer: Analyzer, text: str, terms: Sequence[QueryTerm], as_words: Callable[[], bool] | None
) -> list[_Hit]:
    """Token matches of the first block of the text's beginning that has any."""
    kana = any(term.kana for term in terms)
    limit = min(len(text), KANA_FALLBACK_CHARS if kana else FALLBACK_CHARS)
    if not _may_match(terms, text[:limit]) or (as_words is not None and not as_words()):
        return []
    start = 0
    while start < limit:
        end = min(limit, start + FALLBACK_BLOCK)
        if end < limit:
            sentence_end = max(
                text.rfind("。", start + FALLBACK_BLOCK // 2, end), text.rfind("\n", start, end)
            )
            if sentence_end >= start + FALLBACK_BLOCK // 2:
                end = sentence_end + 1
        if hits := _token_hits(analyzer, text, terms, start, end):
            return hits
        start = end
    return []


def _may_match(terms: Sequence[QueryTerm], text: str) -> bool:
    """False when no token of ``text`` is likely to match any of ``terms``: ``text`` shares no kanji, katakana or
    Latin character with their surfaces and forms. A hiragana term is matched by reading, in any spelling, so it
    may always match, unless it is one dictionary word whose normalized form has kanji (ぬいぐるみ → 縫い包み,
    こども → 子供): its other spellings share those (子ども), or are shown unmarked, like 呑む for 飲む."""
    hints: set[str] = set()
    for term in terms:
        forms: tuple[str, ...] = (term.surface, *term.c, *term.a)
        if term.kana and _HIRAGANA.search(term.surface):
            if len(term.c) != 1 or not _KANJI.search(term.c[0]):
                return True
            forms = term.c
        hints.update(ch for form in forms for ch in form)
    return any(ch in text for ch in hints if ch.isalnum() and not _HIRAGANA_OR_LONG_VOWEL.match(ch))


def _token_hits(
    analyzer: Analyzer, text: str, terms: Sequence[QueryTerm], start: int, end: int
) -> list[_Hit]:
    """Token matches in ``text[start:end]``: each term's C forms, A forms and (kana terms) readings,
    in order."""
    wanted = frozenset(
        f
        for term in terms
        for f in (*term.c, *term.a, *((*term.r, *chain.from_iterable(term.r_splits)) if term.kana else ()))
    )
    if not wanted:
        return []
    words, units = analyzer._token_spans(text, start, end, wanted)
    word_forms = [w[0] for w in words]
    unit_forms = [u[0] for u in units]
    readable = [(reading, s, e) for _, reading, s, e in units if reading is not None]
    readings = [reading for reading, _, _ in readable]
    hits: list[_Hit] = []
    for index, term in enumerate(terms):
        by_reading = [(r, readings, readable) for r in (term.r, *term.r_splits)] if term.kana else []
        for pattern, forms, spans in ((term.c, word_forms, words), (term.a, unit_forms, units), *by_reading):
            hits.extend(
                (spans[first][-2], spans[last][-1], index) for first, last in _matches(pattern, forms)
            )
    return hits


def _matches(pattern: tuple[str, ...], forms: list[str | None]) -> list[tuple[int, int]]:
    """(first, last) indexes of each occurrence of ``pattern`` as consecutive items of ``forms``."""
    if not pattern or pattern[0] not in forms:
        return []
    size = len(pattern)
    found = []
    i = forms.index(pattern[0])
    while True:
        if size == 1 or tuple(forms[i : i + size]) == pattern:
            found.append((i, i + size - 1))
        try:
            i = forms.index(pattern[0], i + 1)
        except ValueError:
            return found


def _window(text: str, hits: list[_Hit], max_chars: int) -> tuple[int, int]:
    """The window of about ``max_chars`` with the most distinct terms, then the most hits, earliest
    on a tie."""
    hits.sort()
    counts: dict[int, int] = {}
    distinct = 0
    best = (-1, -1)
    first = last = 0
    j = 0
    for i, (hit_start, _, term) in enumerate(hits):
        while j < len(hits) and (j == i or hits[j][1] <= hit_start + max_chars):
            seen = counts.get(hits[j][2], 0)
            distinct += seen == 0
            counts[hits[j][2]] = seen + 1
            j += 1
        if (distinct, j - i) > best:
            best = (distinct, j - i)
            first, last = i, j
        counts[term] -= 1
        distinct -= counts[term] == 0
    first, last = hits[first][0], max(h[1] for h in hits[first:last])
    start = _start_before(text, first, max(0, max_chars - (last - first)), max_chars)
    end = min(len(text), start + max_chars)
    if end - start < max_chars and start > 0:
        # The text ends inside the window: spend the rest on what comes before, from a sentence start.
        floor = max(0, end - max_chars)
        start = next((i for i in range(floor, start) if i == 0 or text[i - 1] in _SENTENCE_ENDS), start)
    return start, end


def _start_before(text: str, first: int, slack: int, max_chars: int) -> int:
    """Where a window whose first match is at ``first`` starts: the latest sentence start within reach, else a
    little context before the match."""
    reach = min(slack, max_chars // 3)
    floor = max(0, first - reach)
    for i in range(first - 1, floor - 1, -1):
        if text[i] in _SENTENCE_ENDS:
            return i + 1
    if floor == 0:
        return 0
    return first - min(reach, max_chars // 6)


def _render(text: str, norm: Normalized, n_start: int, n_end: int, hits: list[_Hit]) -> str:
    """The original text behind normalized ``[n_start, n_end)``, trimmed, escaped, hits marked."""
    start, end = norm.to_original(n_start), norm.to_original(n_end)
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    marks: list[list[int]] = []
    for hit_start, hit_end, _ in sorted(hits):
        if hit_end <= n_start or hit_start >= n_end:
            continue
        s, e = norm.span_to_original(hit_start, hit_end)
        s, e = max(s, start), min(e, end)
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
