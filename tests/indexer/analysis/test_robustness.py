"""Any str goes in, nothing raises, and every token is one the engines can take (hypothesis)."""

import pytest
from hypothesis import given, settings

from indexer.analysis import make_snippet

from .conftest import check_snippet, texts


def check_tokens(tokens) -> None:
    for token in tokens:
        assert token and token == token.lower()
        assert not any(ch.isspace() for ch in token)


@settings(deadline=None)
@given(texts)
def test_any_text_analyzes(analyzer, text):
    streams = analyzer.analyze(text)
    for key, joined in streams.joined().items():
        tokens = getattr(streams, key)
        check_tokens(tokens)
        assert joined.split(" ") == tokens if tokens else joined == ""


@settings(deadline=None)
@given(texts)
def test_any_text_is_a_query(analyzer, text):
    for term in [*analyzer.query_terms(text), analyzer.phrase(text)]:
        for stream in (term.c, term.a, term.r, term.b):
            check_tokens(stream)


@pytest.mark.slow
def test_a_megabyte_of_anything(analyzer):
    line = "東京都庁\x00\ud800😀\x07ｶﾞ〜<mark>\u3000\n"  # 19 characters
    text = (line * 60_000)[:1_000_000]
    streams = analyzer.analyze(text)
    assert streams.c == ["東京都庁", "蛾", "mark"] * 52_631 + ["東京都庁", "蛾"]
    check_snippet(text, make_snippet(text, analyzer.query_terms("都庁 ガ")))


@pytest.mark.parametrize("text", ["\u0301" * 100_000, "ｶ" + "ﾞ" * 50_000, "\ud800" * 50_000, "\x00" * 50_000])
def test_long_runs_without_a_place_to_cut(analyzer, text):
    streams = analyzer.analyze(text)
    check_tokens(streams.c)
    assert len(streams.b) == len(analyzer.normalize(text).text) - 1
