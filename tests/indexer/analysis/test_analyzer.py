"""Token streams and query terms (DESIGN §2): tables for sudachidict_core 20260428 (conftest.py)."""

import threading

import pytest
from sudachipy import SplitMode

from indexer.analysis import Analyzer, AnalyzerUnavailable, FieldTokens, QueryTerm, get_analyzer
from indexer.analysis import analyzer as analyzer_module
from indexer.analysis.normalize import normalize_text

from .conftest import contains, finds


@pytest.mark.parametrize(
    ("text", "c", "a", "r", "b"),
    [
        (
            "附属の図書館",
            ["付属", "の", "図書館"],
            ["付属", "の", "図書", "館"],
            ["フゾク", "ノ", "トショ", "カン"],
            ["附属", "属の", "の図", "図書", "書館"],
        ),
        ("東京都庁", ["東京都庁"], ["東京", "都庁"], ["トウキョウ", "トチョウ"], ["東京", "京都", "都庁"]),
        ("ＣＯ・ＯＰ", ["co・op"], ["co・op"], ["コープ"], ["co", "o・", "・o", "op"]),
        # 〜 is a symbol: gone from c/a/r, kept in the bigrams; digit strings have no reading (10 → イチレイ)
        ("10〜20", ["10", "20"], ["10", "20"], [], ["10", "0~", "~2", "20"]),
        ("Hello 😀 b", ["ハロー", "b"], ["ハロー", "b"], ["ハロー"], ["he", "el", "ll", "lo", "😀", "b"]),
        ("", [], [], [], []),
        (" \u3000\n\t", [], [], [], []),
    ],
)
def test_streams(analyzer, text, c, a, r, b):
    assert analyzer.analyze(text) == FieldTokens(c, a, r, b)


def test_joined_is_what_the_engine_receives(analyzer):
    assert analyzer.analyze("附属図書館").joined() == {
        "c": "付属 図書館",
        "a": "付属 図書 館",
        "r": "フゾク トショ カン",
        "b": "附属 属図 図書 書館",
    }


@pytest.mark.parametrize(
    "variants",
    [
        ("附属", "付属"),
        ("申し込み", "申込", "申込み"),
        ("ｺｰﾌﾟ", "コープ"),
        ("ＣＯ・ＯＰ", "CO・OP", "co・op"),
        ("呑む", "飲む"),
        ("ＡＢＣ１２３", "ABC123", "abc123"),
        ("10〜20", "10～20", "10~20", "10⁓20", "10∼20"),
        ("ﾃﾞｰﾀﾍﾞｰｽ", "データベース"),
        ("コ−ヒ−", "ｺｰﾋｰ", "コーヒー"),
    ],
)
def test_spelling_variants_share_c_tokens(analyzer, variants):
    streams = [analyzer.analyze(v).c for v in variants]
    assert all(s == streams[0] for s in streams), dict(zip(variants, streams, strict=True))
    assert streams[0]


@pytest.mark.parametrize(
    ("text", "c"),
    [
        ("メール――それは", ["メール", "其れ", "は"]),  # a dash in prose is not a long-vowel mark
        ("コ−ヒ−を飲む", ["コーヒー", "を", "飲む"]),  # a minus after katakana is
        ("ラ-メン", ["ラーメン"]),
        ("すごーーい", ["凄い"]),
        ("徳島（とくしま）", ["徳島"]),  # Sudachi skips a reading in brackets
    ],
)
def test_dashes_and_long_vowels(analyzer, text, c):
    assert analyzer.analyze(text).c == c


@pytest.mark.parametrize(
    ("query", "document", "fields"),
    [
        ("付属", "附属図書館", {"c", "a", "r"}),
        ("申込", "お申し込みはこちら", {"c", "a", "r"}),
        ("コープ", "ｺｰﾌﾟの宅配", {"c", "a", "r", "b"}),
        ("ＣＯ・ＯＰ", "CO・OPの宅配", {"c", "a", "r", "b"}),
        ("とうきょう", "東京の大学", {"r"}),  # a kana query finds kanji by reading
        ("とちょう", "東京都庁", {"a", "r"}),  # Sudachi also knows とちょう as 都庁
        ("こーぷ", "CO・OPの宅配", {"r"}),
        ("都庁", "東京都庁の展望室", {"a", "r", "b"}),  # a sub-word of a mode C word
        ("ゴープラス", "ポケモンゴープラスプラス", {"b"}),  # 中間一致 inside an unknown katakana word
        ("バーバパパーン", "新作バーバパパーンが出た", {"c", "a", "r", "b"}),  # unknown katakana word
        ("ﾊﾞｰﾊﾞﾊﾟﾊﾟｰﾝ", "新作バーバパパーンが出た", {"c", "a", "r", "b"}),
        ("ばーばぱぱーん", "新作バーバパパーンが出た", {"r"}),
        # a kana query read as a whole (ゲットマインド) misses readings split in two (ゲット マインド)
        ("ｹﾞｯﾄﾏｲﾝﾄﾞ", "新作ゲットマインドを発表", {"c", "a", "b"}),
        ("ＡＢＣ", "abcマート", {"a", "r", "b"}),
        ("飲む", "ビールを呑んだ", {"c", "a"}),
    ],
)
def test_a_query_term_finds_the_document(analyzer, query, document, fields):
    (term,) = analyzer.query_terms(query)
    assert finds(term, analyzer.analyze(document)) == fields


def test_kana_query_is_one_term_read_as_a_whole(analyzer):
    assert analyzer.query_terms("こーぷ") == [
        QueryTerm(
            "こーぷ",
            ("こう", "ぷ"),
            ("こう", "ぷ"),
            ("コープ",),
            ("こー", "ーぷ"),
            kana=True,
            r_splits=(("コー", "プ"),),
        )
    ]
    (term,) = analyzer.query_terms("とうきょう")
    assert term.r == ("トウキョウ",) and term.kana
    assert contains(analyzer.analyze("東京").r, term.r)


def reading_found(term: QueryTerm, doc: FieldTokens) -> bool:
    """A kana term matches the document's readings: as a whole, or cut as the index cut them."""
    return any(contains(doc.r, reading) for reading in (term.r, *term.r_splits))


@pytest.mark.parametrize(
    ("query", "document"),
    [
        # Sudachi cuts the kana (と しょ かん) otherwise than the index reads the units of 図書館 (トショ カン).
        ("としょかん", "市立図書館の利用案内"),
        ("こうみんかん", "みなと公民館で講座"),
        ("ちゅうおうとしょかん", "中央図書館の開館時間"),
        ("しやくしょ", "市役所の窓口"),
        ("よぼうせっしゅ", "予防接種のお知らせ"),
        ("ほいくえん", "保育園の入園"),
        ("しょうぼうしょ", "消防署の見学"),
        ("とうきょう", "東京都庁"),  # one unit, read as a whole as before
    ],
)
def test_a_kana_compound_finds_its_kanji_by_reading(analyzer, query, document):
    (term,) = analyzer.query_terms(query)
    assert reading_found(term, analyzer.analyze(document))


def test_the_whole_reading_alone_misses_a_compound(analyzer):
    (term,) = analyzer.query_terms("としょかん")
    assert term.r == ("トショカン",) and analyzer.analyze("図書館").r == ["トショ", "カン"]
    assert ("トショ", "カン") in term.r_splits


@pytest.mark.parametrize(
    ("query", "document"),
    [
        ("としょかん", "図書の貸し出しと館内の案内"),  # both units, but not next to each other
        ("としょかん", "館の図書"),  # the wrong order
        ("しょかん", "市立図書館"),  # only part of a unit's reading
        ("かんとしょ", "市立図書館"),
    ],
)
def test_kana_compound_splits_stay_precise(analyzer, query, document):
    (term,) = analyzer.query_terms(query)
    assert not reading_found(term, analyzer.analyze(document))


@pytest.mark.parametrize("query", ["かき", "ごみ", "こども", "とし", "し", "かん"])
def test_short_kana_queries_have_no_splits(analyzer, query):
    # Two morae or fewer: a split would be one-mora readings next to each other, which match by chance.
    (term,) = analyzer.query_terms(query)
    assert term.r_splits == ()


def test_kana_splits_are_bounded(analyzer):
    # A phrase or a sentence in kana: Sudachi finds its words, no split is tried.
    (long,) = analyzer.query_terms("ちゅうおうとしょかんのかいかんじかん")
    assert long.r_splits == ()
    (term,) = analyzer.query_terms("しんじゅくくやくしょ")
    assert 0 < len(term.r_splits) <= 16 and len(set(term.r_splits)) == len(term.r_splits)
    assert all("".join(split) == term.r[0] and len(split) > 1 for split in term.r_splits)
    assert all(not part.startswith(("ン", "ッ", "ー", "ョ")) for split in term.r_splits for part in split)


def test_query_terms_drop_particles_auxiliaries_and_symbols(analyzer):
    terms = analyzer.query_terms("附属図書館の利用は、無料です！")
    assert [t.surface for t in terms] == ["附属", "図書館", "利用", "無料"]
    library = terms[1]
    assert library == QueryTerm(
        "図書館", ("図書館",), ("図書", "館"), ("トショ", "カン"), ("図書", "書館"), False
    )


def test_prefixes_and_suffixes_stay(analyzer):
    assert [t.c for t in analyzer.query_terms("お茶を田中さんに")] == [("御",), ("茶",), ("田中",), ("さん",)]
    assert [t.c for t in analyzer.query_terms("第3回")] == [("第",), ("3",), ("回",)]


def test_whitespace_separates_words(analyzer):
    surfaces = [t.surface for t in analyzer.query_terms("東京　とちょう  図書館")]
    assert surfaces == ["東京", "とちょう", "図書館"]
    assert [t.surface for t in analyzer.query_terms("東京 の 図書館 ！")] == ["東京", "図書館"]
    assert analyzer.query_terms(" \u3000 ") == []
    assert analyzer.query_terms("") == []


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        ("の", QueryTerm("の", ("の",), ("の",), ("ノ",), ("の",), kana=True)),
        ("です", QueryTerm("です", ("です",), ("です",), ("デス",), ("です",), kana=True)),
        ("は、", QueryTerm("は、", ("は",), ("は",), ("ハ",), ("は、",), kana=False)),
        ("!?", QueryTerm("!?", (), (), (), ("!?",), kana=False)),
    ],
)
def test_a_chunk_of_stop_words_still_searches(analyzer, chunk, expected):
    assert analyzer.query_terms(chunk) == [expected]


def test_phrase_is_the_indexed_streams(analyzer):
    text = "東京都庁の図書館"
    phrase = analyzer.phrase(text)
    streams = analyzer.analyze(text)
    assert phrase == QueryTerm(
        text, tuple(streams.c), tuple(streams.a), tuple(streams.r), tuple(streams.b), False
    )
    assert phrase.c == ("東京都庁", "の", "図書館")
    assert finds(phrase, analyzer.analyze("新しい東京都庁の図書館です")) == {"c", "a", "r", "b"}
    assert finds(analyzer.phrase("都庁の図書"), analyzer.analyze("東京都庁の図書館")) == {"a", "r", "b"}
    assert analyzer.phrase("10～20").b == ("10", "0~", "~2", "20")


def test_long_text_is_cut_where_sudachi_accepts_it(analyzer):
    sentence = "東京都庁の附属図書館は申込制です。"
    one = analyzer.analyze(sentence)
    many = analyzer.analyze(sentence * 3000)  # 51,000 characters, 153 KB
    assert many.c == one.c * 3000 and many.a == one.a * 3000 and many.r == one.r * 3000
    emoji = analyzer.analyze("😀" * 100_000)  # 400 KB without a place to cut
    assert emoji.c == [] and len(emoji.b) == 99_999


def test_a_refused_chunk_is_halved(analyzer, monkeypatch):
    monkeypatch.setattr(analyzer_module, "CHUNK_CHARS", 1_000_000)  # Sudachi refuses inputs over 49,149 bytes
    text = "附属図書館。" * 10_000
    assert analyzer.analyze(text).c == ["付属", "図書館"] * 10_000


def test_one_analyzer_per_process_and_a_tokenizer_per_thread(analyzer):
    assert get_analyzer() is analyzer
    texts = [f"第{i}回の附属図書館の申込は、ｺｰﾌﾟで。" for i in range(200)]
    expected = [analyzer.analyze(t) for t in texts]
    results: dict[int, list[FieldTokens]] = {}
    tokenizers = {}

    def work(n: int) -> None:
        results[n] = [analyzer.analyze(t) for t in texts]
        tokenizers[n] = analyzer._tokenizer()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[n] == expected for n in range(4))
    assert len({id(t) for t in tokenizers.values()}) == 4


def test_missing_dictionary_says_how_to_install_it():
    with pytest.raises(AnalyzerUnavailable, match=r"pip install 'SudachiDict-core==20260428'"):
        Analyzer("sudachidict_missing")


def test_version_names_what_the_tokens_depend_on(analyzer):
    assert analyzer.version == "sudachipy-0.6.11/sudachidict_core-20260428/analysis-1"


def test_word_cache_changes_nothing(analyzer):
    """Forms, readings and splits are cached by dictionary word id; computed afresh they are the same."""
    text = (
        "ｺｰﾋｰとコーヒー、附属と付属、申込と申し込み。東京都庁の図書館で10個と１０個、二十個。ＣＯ・ＯＰのゴープラス！"
        * 2
    )
    tokenizer = analyzer._dictionary.create(SplitMode.C)
    c, a = [], []
    for m in tokenizer.tokenize(normalize_text(text)):
        if m.part_of_speech()[0] in ("空白", "補助記号"):
            continue
        c.append(m.normalized_form().lower())
        units = [u for u in m.split(SplitMode.A) if u.part_of_speech()[0] not in ("空白", "補助記号")]
        a.extend(u.normalized_form().lower() for u in (units if len(units) > 1 else [m]))
    analyzer.analyze(text)  # the second time every dictionary word comes from the cache
    streams = analyzer.analyze(text)
    assert (streams.c, streams.a) == (c, a)
