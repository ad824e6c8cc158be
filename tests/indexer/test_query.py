"""The query syntax: a table of inputs and what they mean, and no input that raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.query import MAX_QUERY_CHARS, MAX_TERMS, ParsedQuery, Term, parse_query


def groups(*alternatives: tuple[str, ...] | str) -> tuple[tuple[Term, ...], ...]:
    result = []
    for group in alternatives:
        group = (group,) if isinstance(group, str) else group
        result.append(tuple(Term(word.strip('"'), word.startswith('"')) for word in group))
    return tuple(result)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("電池 回収", ParsedQuery(groups("電池", "回収"))),
        ("電池　回収", ParsedQuery(groups("電池", "回収"))),  # ideographic space
        ('"モバイル バッテリー" 回収', ParsedQuery(groups('"モバイル バッテリー', "回収"))),
        ("「東京都庁」", ParsedQuery(groups('"東京都庁'))),
        ("電池 -ヒーター", ParsedQuery(groups("電池"), (Term("ヒーター"),))),
        ('-"古い 情報" 電池', ParsedQuery(groups("電池"), (Term("古い 情報", True),))),
        ("電池 OR バッテリー 回収", ParsedQuery(groups(("電池", "バッテリー"), "回収"))),
        ("電池 | バッテリー", ParsedQuery(groups(("電池", "バッテリー")))),
        ("電池 ＯＲ バッテリー", ParsedQuery(groups(("電池", "バッテリー")))),  # full-width operator
        ("電池 －ヒーター", ParsedQuery(groups("電池"), (Term("ヒーター"),))),  # full-width minus
        ("電池 or バッテリー", ParsedQuery(groups("電池", "or", "バッテリー"))),  # lower case is a word
        ("OR 電池 OR", ParsedQuery(groups("電池"))),  # dangling operators are dropped
        ('"電池', ParsedQuery(groups("電池"))),  # unbalanced quote degrades to words
        ("(電池 AND 回収)", ParsedQuery(groups("電池", "回収"))),
        ("NOT", ParsedQuery()),
        ("- -- ---", ParsedQuery()),
        ("", ParsedQuery()),
        ("\x00電池\x00", ParsedQuery(groups("電池"))),
        ("10〜20", ParsedQuery(groups("10〜20"))),
    ],
)
def test_parse_table(text: str, expected: ParsedQuery) -> None:
    assert parse_query(text) == expected


def test_input_is_bounded() -> None:
    parsed = parse_query("語 " * 10_000)
    assert len(parsed.groups) <= MAX_TERMS
    assert sum(len(term.text) for group in parsed.groups for term in group) <= MAX_QUERY_CHARS


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.text(alphabet='"-|() ORNTA電池「」＂－', max_size=60))
def test_never_raises_and_never_yields_empty_terms(text: str) -> None:
    parsed = parse_query(text)
    for group in parsed.groups:
        assert group and all(term.text.strip() for term in group)
    assert all(term.text.strip() for term in parsed.excluded)
