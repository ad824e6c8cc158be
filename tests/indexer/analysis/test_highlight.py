"""Snippets: escaped original text with the matches in <mark>, around the best window."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.analysis import make_snippet
from indexer.analysis.highlight import FALLBACK_CHARS, KANA_FALLBACK_CHARS, TOKEN_CONTEXT
from indexer.analysis.normalize import Normalized, normalize

from .conftest import check_snippet, texts

LEAD = "この文章は前置きです。" * 10
TAIL = "後書きの文章が続きます。" * 10


@pytest.mark.parametrize(
    ("text", "query", "snippet"),
    [
        ("附属図書館の利用案内", "付属", "<mark>附属</mark>図書館の利用案内"),  # the C form, not the spelling
        ("申し込みはこちら", "申込", "<mark>申し込み</mark>はこちら"),
        ("ｺｰﾌﾟの店舗", "コープ", "<mark>ｺｰﾌﾟ</mark>の店舗"),  # half-width in the text, mapped back
        ("ﾃﾞｰﾀﾍﾞｰｽ", "データ", "<mark>ﾃﾞｰﾀ</mark>ﾍﾞｰｽ"),
        ("㈱ＡＢＣ商事", "abc", "㈱<mark>ＡＢＣ</mark>商事"),
        ("㈱ABC", "株", "<mark>㈱</mark>ABC"),  # a part of an expanded character marks all of it
        ("ＣＯ・ＯＰ", "co・op", "<mark>ＣＯ・ＯＰ</mark>"),
        ("CO・OPの宅配", "こーぷ", "<mark>CO・OP</mark>の宅配"),  # by reading
        ("東京都庁の展望室", "都庁", "東京<mark>都庁</mark>の展望室"),
        ("東京都庁の展望室", "とうきょう", "<mark>東京</mark>都庁の展望室"),  # an A unit, by reading
        ("ヌイグルミの回収", "ぬいぐるみ", "<mark>ヌイグルミ</mark>の回収"),  # the reading as a spelling
        ("子どもの遊び場", "こども", "<mark>子ども</mark>の遊び場"),  # shares 子 with the normalized 子供
        ("東京都庁", "東京 都庁", "<mark>東京都庁</mark>"),  # adjacent marks merge
        (
            "ビールを飲んだ。",
            "呑む",
            "ビールを<mark>飲ん</mark>だ。",
        ),  # an inflected verb in another spelling
        ("ビールを呑んだ。", "飲む", "ビールを呑んだ。"),  # no character in common: not looked for (speed)
        ("ポケモンゴープラスプラス発売", "ゴープラス", "ポケモン<mark>ゴープラス</mark>プラス発売"),
        ("コ−ヒ−を飲む", "コーヒー", "<mark>コ−ヒ−</mark>を飲む"),
        ("価格は10〜20円です", "10～20", "価格は<mark>10</mark>〜<mark>20</mark>円です"),
        ("非公開の会議", "公開", "非<mark>公開</mark>の会議"),
        (
            "<script>alert('申込')</script>",
            "申し込み",
            "&lt;script&gt;alert(&#x27;<mark>申込</mark>&#x27;)&lt;/script&gt;",
        ),
        ("株式会社<mark>テスト</mark>", "テスト", "株式会社&lt;mark&gt;<mark>テスト</mark>&lt;/mark&gt;"),
        ("関係のない本文", "図書館", "関係のない本文"),
        ("あいうえお" * 30, "図書館", "あいうえお" * 24 + "…"),
        (
            LEAD + "市立図書館の開館時間は九時からです。" + TAIL,
            "図書館 開館",
            "…市立<mark>図書館</mark>の<mark>開館</mark>時間は九時からです。" + TAIL[:102] + "…",
        ),
        (  # the text ends inside the window: what comes before fills it, from a sentence start
            LEAD * 2 + "東京に行く。",
            "とうきょう",
            "…" + LEAD + "<mark>東京</mark>に行く。",
        ),
        (LEAD + "東京に行く。", "東京", LEAD + "<mark>東京</mark>に行く。"),  # the whole text fits
    ],
)
def test_snippets(analyzer, text, query, snippet):
    assert make_snippet(text, analyzer.query_terms(query)) == snippet


def test_phrase_marks_the_whole_phrase(analyzer):
    assert (
        make_snippet("価格は10〜20円です", [analyzer.phrase("10～20")]) == "価格は<mark>10〜20</mark>円です"
    )


def test_the_window_with_the_most_terms_wins(analyzer):
    text = "図書館" + "。関係のない話" * 30 + "。市立図書館の開館時間。" + "。関係のない話" * 30
    snippet = make_snippet(text, analyzer.query_terms("図書館 開館"), max_chars=40)
    assert snippet == "…市立<mark>図書館</mark>の<mark>開館</mark>時間。" + "。関係のない話" * 4 + "。…"


@pytest.mark.parametrize("title", ["表示確認 …お知らせ…", "ﾘｺｰﾙ㍿のお知らせ﹏", "お知らせ⑴⑵⑶ ㍻"])
def test_a_whole_text_is_never_cut_where_nfkc_makes_it_longer(analyzer, title):
    """A title is marked whole: … (one character) is ... after NFKC, so a window of len(title) would cut it."""
    marked = make_snippet(title, analyzer.query_terms("お知らせ"), max_chars=None)
    assert "<mark>" in marked and marked.replace("<mark>", "").replace("</mark>", "") == title


def test_max_chars_must_be_positive(analyzer):
    with pytest.raises(ValueError):
        make_snippet("本文", analyzer.query_terms("本文"), max_chars=0)


def test_sudachi_sees_only_the_window(analyzer, monkeypatch):
    """Speed by construction (benchmarks/analysis_speed.py has the figures): a 5,000-character body is
    searched as a string, and only the chosen window, or the first blocks of the beginning, tokenized."""
    body = (
        "市立図書館の開館時間は午前九時から午後五時まで（月曜休館）です。　ＩＴ講座の申込は窓口へ……" * 120
    )[:5000]
    found, not_found = analyzer.query_terms("申込 講座"), analyzer.query_terms("付属")
    variant = analyzer.query_terms("申し込み 講座")  # 申し込み appears only as the variant 申込
    body = body.replace("館", "属")
    nothing_shared = analyzer.query_terms("野球")
    tokenized: list[int] = []
    tokenize = analyzer._tokenized

    def counting(norm):
        tokenized.append(len(norm))
        return tokenize(norm)

    monkeypatch.setattr(analyzer, "_tokenized", counting)
    make_snippet(body, found)
    assert tokenized == []  # every term is a substring in the window: no tokenizing at all
    make_snippet(body, variant)
    assert tokenized == [120 + 2 * TOKEN_CONTEXT]
    tokenized.clear()
    make_snippet(body, not_found)  # no substring, but 属 is there: the first blocks, up to 1,000 characters
    assert sum(tokenized) == FALLBACK_CHARS
    tokenized.clear()
    make_snippet(body, nothing_shared)  # nothing in common: no token can match
    assert tokenized == []


def test_kana_queries_tokenize_only_the_first_block(analyzer, monkeypatch):
    """A hiragana word can be in kanji text only by reading: each hit without a substring match tokenizes,
    so only the first block of its beginning is looked at."""
    body = ("駅前の公民館で講座があります。" * 200)[:5000]
    hiragana, katakana, tokyo = (
        analyzer.query_terms(text) for text in ("としょかん", "ボランティア", "とうきょう")
    )
    tokenized: list[int] = []
    tokenize = analyzer._tokenized

    def counting(norm):
        tokenized.append(len(norm))
        return tokenize(norm)

    monkeypatch.setattr(analyzer, "_tokenized", counting)
    assert make_snippet(body, hiragana) == body[:120] + "…"
    assert 0 < sum(tokenized) <= KANA_FALLBACK_CHARS < FALLBACK_CHARS
    tokenized.clear()
    assert make_snippet(body, katakana) == body[:120] + "…"
    assert tokenized == []  # katakana sharing no character with the text: nothing to tokenize
    tokenized.clear()
    late = "前置きの文章です。" * 40 + "東京に行く。"
    assert "<mark>東京</mark>" not in make_snippet(late, tokyo)  # past the first block
    assert "<mark>東京</mark>" in make_snippet(late[-60:], tokyo)


def test_a_result_page_learns_how_a_kana_term_is_spelled(analyzer, monkeypatch):
    """The first text that shows としょかん as 図書館 teaches the spelling: the next texts find it as a substring,
    without tokenizing, and mark it the same way."""
    terms = analyzer.query_terms("としょかん")
    first, second = "市立図書館の案内です。", "本日は中央図書館が休館です。"
    tokenized: list[int] = []
    tokenize = analyzer._tokenized

    def counting(norm):
        tokenized.append(len(norm))
        return tokenize(norm)

    monkeypatch.setattr(analyzer, "_tokenized", counting)
    learned: dict[int, set[str]] = {}
    assert make_snippet(first, terms, learned=learned) == "市立<mark>図書館</mark>の案内です。"
    assert learned == {0: {"図書館"}} and tokenized
    tokenized.clear()
    assert make_snippet(second, terms, learned=learned) == "本日は中央<mark>図書館</mark>が休館です。"
    assert tokenized == []
    # Without the shared spellings the same snippet is made by tokenizing.
    assert make_snippet(second, terms) == "本日は中央<mark>図書館</mark>が休館です。" and tokenized


def test_a_window_is_not_tokenized_for_words_that_cannot_be_in_it(analyzer, monkeypatch):
    # A record found by some of the words (a relaxed search): the others share no character with the window.
    terms = analyzer.query_terms("図書館 野球")
    plush = analyzer.query_terms("図書館 ぬいぐるみ")
    tokenized: list[int] = []
    tokenize = analyzer._tokenized

    def counting(norm):
        tokenized.append(len(norm))
        return tokenize(norm)

    monkeypatch.setattr(analyzer, "_tokenized", counting)
    assert make_snippet("市立図書館の開館時間", terms) == "市立<mark>図書館</mark>の開館時間"
    assert tokenized == []
    assert make_snippet("市立図書館で野球の本", terms) == "市立<mark>図書館</mark>で<mark>野球</mark>の本"
    assert tokenized == []  # both are substrings
    make_snippet("市立図書館の球技", terms)  # 球 is shared: a variant of 野球 might be there
    assert tokenized
    tokenized.clear()
    # A hiragana word of the dictionary needs a kanji of its normalized form (縫い包み) to be worth reading for.
    assert make_snippet("市立図書館の開館時間", plush) == "市立<mark>図書館</mark>の開館時間"
    assert tokenized == []


def test_a_text_without_the_terms_as_words_is_not_tokenized(analyzer, monkeypatch):
    """`as_words` is the index's answer to "does this text hold a term as words?": asked only for a text that
    no substring matches but that shares a character with the terms, and only then worth tokenizing."""
    terms = analyzer.query_terms("付属")
    variant, unrelated, plain = "病院の附属施設です。", "金属の器具があります。", "病院の付属施設です。"
    tokenized: list[int] = []
    asked: list[str] = []
    tokenize = analyzer._tokenized

    def counting(norm):
        tokenized.append(len(norm))
        return tokenize(norm)

    def answer(text: str, holds: bool):
        def as_words() -> bool:
            asked.append(text)
            return holds

        return as_words

    monkeypatch.setattr(analyzer, "_tokenized", counting)
    assert make_snippet(unrelated, terms, as_words=answer(unrelated, False)) == unrelated
    assert asked == [unrelated] and tokenized == []  # 属 is shared, but the index says 付属 is not there
    assert make_snippet(variant, terms, as_words=answer(variant, True)) == "病院の<mark>附属</mark>施設です。"
    assert tokenized
    asked.clear()
    assert make_snippet(plain, terms, as_words=answer(plain, False)) == "病院の<mark>付属</mark>施設です。"
    assert make_snippet("野球の本", terms, as_words=answer("野球の本", True)) == "野球の本"
    assert asked == []  # a substring found it, or nothing is shared: the index is not asked


@settings(deadline=None)
@given(texts, texts, st.integers(min_value=1, max_value=200))
def test_snippets_never_raise_and_are_always_escaped(analyzer, text, query, max_chars):
    check_snippet(text, make_snippet(text, analyzer.query_terms(query), max_chars))
    check_snippet(text, make_snippet(text, [analyzer.phrase(query)], max_chars))


@settings(deadline=None, max_examples=30)
@given(st.sampled_from(["<mark>", "</mark>", "<script>", "&amp;", '"', "'", "ﾄｼｮｶﾝ", "。", "\n"]) | texts)
def test_hostile_text_around_a_match(analyzer, noise):
    text = f"{noise}図書館{noise}<b>としょかん</b>{noise}"
    check_snippet(text, make_snippet(text, analyzer.query_terms("図書館 としょかん")))


@given(texts, texts)
def test_a_body_normalized_at_index_time_gives_the_same_snippet(analyzer, text, query):
    terms = analyzer.query_terms(query)
    stored = Normalized.from_stored(text, normalize(text).stored(text))
    assert make_snippet(text, terms, 60, normalized=stored) == make_snippet(text, terms, 60)
