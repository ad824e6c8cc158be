import json
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.analysis.normalize import (
    _CJK,
    _CJK_ASTRAL,
    _FOLD,
    _LONG_VOWEL_HYPHEN,
    _SPACING_TO_COMBINING,
    DASHES,
    WAVE_DASHES,
    Normalized,
    _is_stable,
    is_mark,
    long_vowel_hyphens,
    normalize,
    normalize_text,
)

from .conftest import texts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ＡＢＣ１２３", "abc123"),  # full-width alphanumerics → ASCII, lowercase
        ("ABC abc", "abc abc"),
        ("ｺｰﾌﾟ", "コープ"),  # half-width katakana with handakuten
        ("ﾃﾞｰﾀﾍﾞｰｽ", "データベース"),
        ("か゛き゜", "がき\u309a"),  # spacing dakuten after a base composes; き゚ has no precomposed form
        ("㈱ＣＯ・ＯＰ", "(株)co・op"),
        ("10〜20～30⁓40∼50~60", "10~20~30~40~50~60"),  # every wave dash (T15)
        ("a‐b‑c‒d–e—f―g−h", "a-b-c-d-e-f-g-h"),
        ("全角\u3000空白\t\r\n改行\u2028", "全角 空白  \n改行\n"),
        ("コ−ヒ−を", "コーヒーを"),  # a minus after katakana is a long-vowel mark
        ("ｺ-ﾋ-", "コーヒー"),
        ("ﾃﾞ-ﾀ", "データ"),
        ("コ－ヒ－", "コーヒー"),
        ("ページ-3 セット-A セット-Ａ データ-ベース", "ページ-3 セット-a セット-a データーベース"),
        ("アメリカ-日本", "アメリカ-日本"),
        ("メール――それは メール—それは", "メール--それは メール-それは"),  # dashes in prose stay dashes
        ("10-20", "10-20"),
        ("\ud800x\udfff", "\ufffdx\ufffd"),  # lone surrogates (Sudachi cannot take them)
        ("", ""),
    ],
)
def test_normalized_text(text, expected):
    assert normalize(text).text == expected
    assert normalize_text(text) == expected


@pytest.mark.parametrize("fold", list(WAVE_DASHES) + ["~"])
def test_all_wave_dashes_normalize_alike(fold):
    assert normalize_text(f"9時{fold}17時") == "9時~17時"


@pytest.mark.parametrize("dash", list(DASHES) + ["-"])
def test_dashes_normalize_alike(dash):
    assert normalize_text(f"03{dash}1234") == "03-1234"


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("ｺｰﾌﾟ", [0, 1, 2, 4]),  # ﾌﾟ (2 characters) → プ
        ("㈱ABC", [0, 0, 0, 1, 2, 3, 4]),  # ㈱ → (株): three characters from one
        ("…だ", [0, 0, 0, 1, 2]),
        ("ﾃﾞｰﾀ", [0, 2, 3, 4]),
        ("ＡＢ", [0, 1, 2]),
        ("İx", [0, 0, 1, 2]),  # lower() expands too
        ("x㈱", [0, 1, 1, 1, 2]),  # the sentinel after a trailing expansion
    ],
)
def test_origin_maps_back(text, origin):
    assert normalize(text).origin == origin


def test_spans_map_back_to_whole_clusters():
    norm = normalize("㈱ｺｰﾌﾟ本店")
    assert norm.text == "(株)コープ本店"
    assert norm.span_to_original(1, 2) == (0, 1)  # 株 → ㈱
    assert norm.span_to_original(3, 6) == (1, 5)  # コープ → ｺｰﾌﾟ
    assert norm.span_to_original(5, 6) == (3, 5)  # プ → ﾌﾟ
    assert norm.to_normalized(1) == 3 and norm.to_normalized(4) == 6  # ﾟ belongs to プ's cluster


def test_ideographs_need_no_work():
    """normalize.py lists the CJK ideograph blocks as stable without checking them one by one at import."""
    blocks = re.findall(r"(.)-(.)", _CJK + _CJK_ASTRAL)
    assert len(blocks) == 5
    for low, high in blocks:
        assert all(_is_stable(chr(cp)) for cp in range(ord(low), ord(high) + 1))


@given(texts)
def test_map_invariants(text):
    norm = normalize(text)
    assert norm.text == normalize_text(text)
    origin = norm.origin
    assert len(origin) == len(norm.text) + 1
    assert origin[-1] == len(text)
    assert origin == sorted(origin) and all(0 <= o <= len(text) for o in origin)
    assert all(norm.to_original(i) == o for i, o in enumerate(origin))
    for i in range(len(norm.text) + 1):
        assert norm.origin[norm.to_normalized(origin[i])] == origin[i]


@given(texts)
def test_normalized_text_is_what_the_engines_expect(text):
    normalized = normalize_text(text)
    assert all(ch in " \n" for ch in normalized if ch.isspace())
    assert not any(0xD800 <= ord(ch) < 0xE000 for ch in normalized)
    assert not set(normalized) & set(WAVE_DASHES + DASHES)


def reference(text: str) -> str:
    """The definition in normalize.py, one cluster at a time, without its shortcuts."""
    clusters: list[str] = []
    for ch in long_vowel_hyphens(text):
        if clusters and is_mark(ch):
            clusters[-1] += ch.translate(_SPACING_TO_COMBINING)
        else:
            clusters.append(ch)
    return "".join(unicodedata.normalize("NFKC", c).lower().translate(_FOLD) for c in clusters)


@given(texts)
def test_shortcuts_change_nothing(text):
    assert normalize_text(text) == reference(text)


@given(st.text(alphabet="コーヒｺﾋ-‐‑−－﹣―A1図 ", max_size=30))
def test_the_hyphen_scan_finds_every_hyphen_the_rule_rewrites(text: str) -> None:
    """long_vowel_hyphens skips the regex when no hyphen follows katakana: the same text as running it always."""
    assert long_vowel_hyphens(text) == _LONG_VOWEL_HYPHEN.sub("\\1ー", text)


@given(texts)
def test_a_stored_normalization_is_the_normalization(text: str) -> None:
    """What an index payload keeps of a body's normalization (build_payload) gives back the same text and map."""
    norm = normalize(text)
    stored = norm.stored(text)
    back = Normalized.from_stored(text, json.loads(json.dumps(stored)))
    assert back.text == norm.text
    assert back.origin == norm.origin
    assert [back.to_normalized(p) for p in range(len(text) + 1)] == [norm.to_normalized(p) for p in range(len(text) + 1)]
    if norm.text == text and norm.origin == list(range(len(text) + 1)):
        assert stored == {}  # nothing to keep for text that normalizing leaves alone
