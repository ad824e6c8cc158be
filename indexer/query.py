"""The query syntax users expect, parsed without ever raising (T24).

    words            every word must match (AND)
    "a phrase"       the words in this order («…», 「…」 and “…” also quote)
    -word            exclude
    a OR b           either (also `|`)

Input is NFKC-folded first, so full-width operators (ＯＲ, －, ＂) behave like their ASCII forms. Anything that
does not parse — an unbalanced quote, a dangling OR, stray parentheses — degrades to plain words.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

MAX_QUERY_CHARS = 256
MAX_TERMS = 32
QUOTES = {'"': '"', "「": "」", "“": "”", "『": "』"}
OR_WORDS = {"OR", "|"}
DROPPED_WORDS = {"AND", "NOT", "&&", "(", ")"}


@dataclass(frozen=True, slots=True)
class Term:
    text: str
    phrase: bool = False


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    groups: tuple[tuple[Term, ...], ...] = ()  # AND over groups, OR inside one
    excluded: tuple[Term, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.groups and not self.excluded


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    # Control characters (NUL included) carry no meaning in a query and break some backends.
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text)
    return text[:MAX_QUERY_CHARS]


def _lex(text: str) -> list[tuple[str, bool, bool]]:
    """(text, is_phrase, is_excluded) tokens; OR markers come through as plain words."""
    tokens: list[tuple[str, bool, bool]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        excluded = False
        if ch == "-" and i + 1 < n and not text[i + 1].isspace():
            excluded = True
            i += 1
            ch = text[i]
        closing = QUOTES.get(ch)
        if closing is not None:
            end = text.find(closing, i + 1)
            if end != -1:
                inner = text[i + 1 : end].strip()
                if inner:
                    tokens.append((inner, True, excluded))
                i = end + 1
                continue
            i += 1  # an unbalanced quote is dropped; the rest reads as words
            continue
        start = i
        while i < n and not text[i].isspace() and text[i] not in QUOTES:
            i += 1
        word = text[start:i].strip("-")
        if word:
            tokens.append((word, False, excluded))
    return tokens


def parse_query(text: str) -> ParsedQuery:
    groups: list[list[Term]] = []
    excluded: list[Term] = []
    join_next = False
    for word, phrase, negated in _lex(_clean(text or ""))[: MAX_TERMS * 2]:
        # Operators are upper case only (as on Google), so "or" and "and" stay searchable words.
        if not phrase and word in OR_WORDS:
            join_next = bool(groups)
            continue
        if not phrase and word in DROPPED_WORDS:
            continue
        if not phrase:
            word = word.strip("()")
            if not word:
                continue
        term = Term(word, phrase)
        if negated:
            excluded.append(term)
            join_next = False
        elif join_next:
            groups[-1].append(term)
            join_next = False
        else:
            groups.append([term])
    return ParsedQuery(
        groups=tuple(tuple(group) for group in groups[:MAX_TERMS]),
        excluded=tuple(excluded[:MAX_TERMS]),
    )
