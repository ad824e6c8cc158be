"""T24's hostile search queries, generated deterministically: the same seed gives the same queries, in order.

Shared by the test that runs them through the library and the HTTP API (tests/search_app/test_hostile_queries.py,
which loads this file by path) and by benchmarks/hostile_queries.py, which times them. Standard library only, and
nothing of ours: the tests and the benchmark import it, never the other way round.

A query is built from pieces of the kinds that break search front ends: unbalanced quotes and brackets (ASCII,
full-width and Japanese 「」『』), the operators of every query syntax (AND/OR/NOT/NEAR, `*`, `?`, `~`, `^`, field
prefixes, ranges, regexes) also in full width, control characters (NUL), lone surrogates, combining marks, bidi
and zero-width characters, characters outside the BMP, SQL and template injection text, markup and highlight
markers, and strings of 10 KiB. Real Japanese words sit between them, so that the engine sees matching terms too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

DEFAULT_COUNT = 10_000
DEFAULT_SEED = 24  # T24
LONG_CHARS = 10 * 1024

WORDS = (
    "図書館", "回収", "モバイルバッテリー", "防災", "みなと", "とうきょう", "としょかん", "ｺｰﾌﾟ", "ＣＯ・ＯＰ",
    "電池", "申し込み", "申込", "附属", "付属", "都庁", "AED", "pb10k", "SB-PB10K-W", "4501234001017", "ごみ",
    "子育て", "おはなし会", "アレルギー", "卵", "避難所", "ポイント", "生協", "リコール", "発火", "𠮷野家",
)  # fmt: skip
OPERATORS = (
    "AND", "OR", "NOT", "NEAR", "NEAR/3", "NEAR(", "ONEAR", "and", "or", "not", "|", "||", "&&", "&", "!",
    "-", "--", "+", "++", "~", "~2", "^", "^10", "*", "**", "?", ":", "::", "=", "title:", "title_c:",
    "body_b:", "_all:", "id:*", "[1 TO 5]", "{* TO *}", "/.*/", "/[a-z]+/", "\\", "\\\\", "^$", "$",
    "ＡＮＤ", "ＯＲ", "ＮＯＴ", "ＮＥＡＲ", "｜", "－", "＋", "＊", "？", "：", "＾", "～", "〜", "・",
)  # fmt: skip
QUOTES = ('"', "'", "`", "「", "」", "『", "』", "“", "”", "«", "»", "＂", "＇", "〝", "〟")
BRACKETS = ("(", ")", "（", "）", "[", "]", "{", "}", "［", "］", "｛", "｝", "<", ">", "＜", "＞", "【", "】")
ODD_CHARACTERS = (
    "\x00", "\x01", "\x08", "\x1b", "\x7f", "\t", "\n", "\r", "\x0b", "\x0c", "\x85", "\u00a0", "\u3000",
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202a", "\u202b", "\u202d", "\u202e", "\u2066",
    "\u2067", "\u2069", "\u200e", "\u200f", "\u2028", "\u2029", "\ud800", "\udbff", "\udc00", "\udfff",
    "\ufffd", "\ufffe", "\uffff", "\U0010ffff", "\U000e0100", "\ufe0f", "\U0001f600", "\U0001f468\u200d\U0001f469",
    "\u0301", "\u0308", "\u20dd", "\u3099", "\u309a", "ｶﾞ", "ﾟ", "\u00ad", "\ue000", "\uf8ff",
)  # fmt: skip
INJECTIONS = (
    "' OR 1=1 --", "'; DROP TABLE records; --", '" OR ""="', "1; SELECT pg_sleep(10)", "%00", "%27", "%s%s%s",
    "{0}", "{{7*7}}", "${7*7}", "${jndi:ldap://127.0.0.1/a}", "<script>alert(1)</script>", "<mark>", "</mark>",
    "&lt;mark&gt;", "<img src=x onerror=alert(1)>", "javascript:alert(1)", "../../etc/passwd", "\\u0000",
    "(a+)+$", "a{1000000}", "(((((((((((((((((((((", ".*.*.*.*.*.*.*.*", "MATCH", "NEAR(a b, 3)",
    '"""""""""', "「「「「「", "*:*", "_id:1", "\\*", "\\\"",
)  # fmt: skip
SEPARATORS = ("", " ", " ", " ", "\u3000", "\t", "  ")
# Strings of exactly LONG_CHARS characters, made by repeating a unit.
LONG_UNITS = (
    "a", "電", "図書館 ", "あ", '"', "(", "-", "OR ", "「", "\x00", "\u0301", "\U0001f600", "ｱ", "* ", "AND ",
    "-図書館 ", "\u202e", "\ud800", "電池 OR ", "「回収」", "NEAR/1 ",
)  # fmt: skip
POOLS = (WORDS, OPERATORS, QUOTES, BRACKETS, ODD_CHARACTERS, INJECTIONS)
POOL_WEIGHTS = (5, 4, 3, 2, 3, 1)


def _long(unit: str) -> str:
    return (unit * (LONG_CHARS // len(unit) + 1))[:LONG_CHARS]


def fixed_queries() -> list[str]:
    """Every piece on its own, each long string, and a few classics: the cases a reader recognizes first."""
    singles = [piece for pool in POOLS for piece in pool]
    classics = [
        "", " ", "\u3000", '"図書館', "図書館\"", "「図書館", "図書館」", "AND OR NOT", "図書館 OR", "OR 図書館",
        "NEAR(図書館 公民館)", "(((図書館", "図書館)))", "図書*", "*図書", "-", "--図書館", "-図書館", "- 図書館",
        "図書\x00館", "＂回収＂", "図書館 ＯＲ 公民館", "－回収", "（図書館）", "\u202e図書館", "図書館" + "\u0301" * 50,
        "-" * 300, "OR " * 300, '"' * 301, "図書館の" * 250, "図書館 " * 150, "「」", '""', "「 」", "-「回収」",
        "電池 -電池", "-電池 -回収 -図書館", "電池 OR OR OR 回収", "| | |", "電池 | 回収", "\ud800電池\udfff",
    ]  # fmt: skip
    return [*singles, *(_long(unit) for unit in LONG_UNITS), *classics]


def _composed(rng: random.Random) -> str:
    pieces = []
    for _ in range(rng.randint(1, 12)):
        pool = rng.choices(POOLS, weights=POOL_WEIGHTS)[0]
        pieces.append(rng.choice(pool))
        pieces.append(rng.choice(SEPARATORS))
    text = "".join(pieces)
    shape = rng.random()
    if shape < 0.02:
        text = _long(text or "a")  # the whole mixture repeated to 10 KiB
    elif shape < 0.06:
        text = text * rng.randint(5, 40)  # a few hundred characters: past the parser's cut
    elif shape < 0.10:
        text = text[: rng.randint(0, len(text))]  # cut anywhere, inside a pair of quotes or a surrogate pair
    return text


def hostile_queries(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> Iterator[str]:
    """`count` distinct hostile query texts: the fixed ones first, then random compositions of the pieces."""
    seen: set[str] = set()
    rng = random.Random(seed)
    produced = 0
    for text in fixed_queries():
        if produced == count:
            return
        if text not in seen:
            seen.add(text)
            produced += 1
            yield text
    while produced < count:
        text = _composed(rng)
        if text not in seen:
            seen.add(text)
            produced += 1
            yield text
