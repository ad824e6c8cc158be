"""The analyzer tests run against one pinned dictionary; facts such as 附属 → 付属 are facts about it."""

from __future__ import annotations

import html
import importlib.metadata
import re

import pytest
from hypothesis import strategies as st

from indexer.analysis import Analyzer, FieldTokens, QueryTerm, get_analyzer

SUDACHIPY_VERSION = "0.6.11"
DICTIONARY_VERSION = "20260428"  # sudachidict_core


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    installed = importlib.metadata.version("sudachidict_core")
    assert installed == DICTIONARY_VERSION, (
        f"these tables were written for sudachidict_core {DICTIONARY_VERSION}"
    )
    assert importlib.metadata.version("SudachiPy") == SUDACHIPY_VERSION
    return get_analyzer()


def contains(stream: list[str] | tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """``pattern`` occurs as consecutive tokens of ``stream``: how an engine's phrase query matches."""
    size = len(pattern)
    return size > 0 and any(tuple(stream[i : i + size]) == pattern for i in range(len(stream) - size + 1))


def finds(term: QueryTerm, doc: FieldTokens) -> set[str]:
    """The fields in which ``term`` matches ``doc``."""
    return {key for key in "carb" if contains(getattr(doc, key), getattr(term, key))}


# Text for hypothesis: arbitrary characters, surrogates included, mixed with the ones that need care.
TRICKY = [
    *"ｶﾞﾟ゛゜\u3099\u309a〜～~⁓∼‐‑‒–—―−-ーｰ㈱…İΣ\u1100\u1161\u11a8\u3000\u00a0\t\r\n\x00\x1c\u2028<>&\"'",
    *["\ud800", "\udfff", "\u0301", "😀", "👍🏽", "葛\U000e0100", "Ａ\u0301", "ＡＢＣ", "ｺｰﾌﾟ", "ﾃﾞｰﾀ"],
    *[
        "東京都庁",
        "図書館",
        "附属",
        "申込",
        "とうきょう",
        "コ",
        "ヒ",
        "コーヒー",
        "の",
        "。",
        "<mark>",
        "&amp;",
    ],
]
texts = st.lists(st.sampled_from(TRICKY) | st.text(st.characters(exclude_categories=()), max_size=8)).map(
    "".join
)


MARK = re.compile(r"</?mark>")


def check_snippet(text: str, snippet: str) -> None:
    assert MARK.sub("", snippet).count("<") == 0 and MARK.sub("", snippet).count(">") == 0
    assert re.fullmatch(r"(?:[^<]|<mark>[^<]+</mark>)*", snippet)  # marks are balanced, not nested, not empty
    shown = html.unescape(MARK.sub("", snippet))
    candidates = {
        shown,
        shown.removeprefix("…"),
        shown.removesuffix("…"),
        shown.removeprefix("…").removesuffix("…"),
    }
    assert any(c in text for c in candidates)
