"""Character normalization shared by indexing, querying and highlighting, with a map back to the
original text.

The same function runs on documents and on queries, so a fold made here can never make the two disagree;
the map lets highlights be placed on the original characters (DESIGN §2).

First, one rule with context, on the original characters:

0. a hyphen or minus (- ‐ ‑ − － ﹣) right after a katakana letter → ー, unless a Latin letter, a digit,
   a kanji or another dash follows. It recovers コ−ヒ− and ｺ-ﾋ- (legacy CP932 text types the long-vowel
   mark as a minus or a hyphen), which Sudachi would split into コ / - / ヒ, and leaves ページ-3,
   セット-A, 10-20 and アメリカ-日本 alone. Dashes (― —) are not touched: メール――それは is prose. A
   hyphen between katakana words (ワン-ツー) is folded too, alike in documents and queries, so it costs
   the split into two words, not a match.

Then per *cluster* (a base character plus the marks that follow it), in this order:

1. lone surrogates → U+FFFD: Sudachi (Rust) cannot take them; broken decoders make them.
2. ゛ ゜ (U+309B/C) after a base → combining U+3099/A: NFKC alone turns か゛ into か, a space and a mark.
3. NFKC: full-width and half-width alphanumerics, half-width katakana (ｺｰﾌﾟ → コープ), ㈱ → (株), …
4. lowercase: ＡＢＣ, ABC and abc match.
5. the wave dashes 〜 U+301C, ～ U+FF5E, ⁓ U+2053, ∼ U+223C → ~, so a search for any of them matches
   all of them (RELIABILITY T15).
6. the dashes ‐ ‑ ‒ – — ― − (U+2010–2015, U+2212) → -, look-alikes typed for one another.
7. every other whitespace character → space, U+2028/9 → newline: the engines split on whitespace and do
   not agree on which characters are whitespace.

Clusters keep NFKC from composing across them, so each character maps back to exactly the original
characters it came from.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

WAVE_DASHES = "\u301c\uff5e\u2053\u223c"
DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_LINE_SEPARATORS = "\u2028\u2029"
# Not category M, but they belong to the character before them: half-width and spacing (han)dakuten, and the
# Hangul vowel and final jamo that NFKC composes with the jamo before them.
_EXTRA_MARKS = re.compile("[\uff9e\uff9f\u309b\u309c\u1160-\u11ff\ud7b0-\ud7ff]")
_SPACING_TO_COMBINING = str.maketrans({"\u309b": "\u3099", "\u309c": "\u309a"})


def _fold_table() -> dict[int, str]:
    table: dict[int, str] = {ord(ch): "~" for ch in WAVE_DASHES}
    table.update({ord(ch): "-" for ch in DASHES})
    # Every whitespace character is below U+3001 (U+3000 is the last one).
    table.update({cp: " " for cp in range(0x3001) if chr(cp).isspace() and chr(cp) not in " \n"})
    table.update({ord(ch): "\n" for ch in _LINE_SEPARATORS})
    table.update({cp: "\ufffd" for cp in range(0xD800, 0xE000)})
    return table


_FOLD = _fold_table()
# (is a mark, normalized form) of the characters met outside the stable class; bounded.
_CHARS: dict[str, tuple[bool, str]] = {}
_CHARS_LIMIT = 8192
# str.replace per distinct character is quadratic on text made of many distinct ones; past this many,
# the runs do all the work.
_REPLACE_BUDGET = 64
_HYPHENS = "-\u2010\u2011\u2212\uff0d\ufe63"
_LONG_VOWEL_HYPHEN = re.compile(
    f"([\u30a1-\u30fa\uff66-\uff9f])[{_HYPHENS}]"
    f"(?![{_HYPHENS}{DASHES}0-9A-Za-z\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\u3400-\u4dbf\u4e00-\u9fff])"
)
_KATAKANA = re.compile("[\u30a1-\u30fa\uff66-\uff9f]")  # the letters rule 0 looks behind a hyphen for


def is_mark(ch: str) -> bool:
    """True for a character that belongs to the cluster of the character before it."""
    return unicodedata.category(ch)[0] == "M" or _EXTRA_MARKS.match(ch) is not None


def _is_stable(ch: str) -> bool:
    """A character that every step above leaves alone."""
    return (
        ord(ch) not in _FOLD
        and not is_mark(ch)
        and unicodedata.normalize("NFKC", ch) == ch
        and ch.lower() == ch
    )


# CJK ideographs are always stable (tests check it); the other ranges are where most text lives and are
# scanned once.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
_CJK_ASTRAL = "\U00020000-\U0002a6df\U0002a700-\U0002ebef\U00030000-\U0003134f"
_SCANNED = [(0x0000, 0x024F), (0x2000, 0x2BFF), (0x3000, 0x30FF), (0x1F000, 0x1FAFF)]


def _stable_class() -> str:
    ranges: list[list[int]] = []
    for low, high in _SCANNED:
        for cp in range(low, high + 1):
            if _is_stable(chr(cp)):
                if ranges and ranges[-1][1] == cp - 1:
                    ranges[-1][1] = cp
                else:
                    ranges.append([cp, cp])
    return (
        "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges) + _CJK + _CJK_ASTRAL
    )


_STABLE_CLASS = _stable_class()
# Maximal runs of characters that need per-cluster work; everything between them is copied as is.
_UNSTABLE_RUN = re.compile(f"[^{_STABLE_CLASS}]+")
_UNSTABLE_CHAR = re.compile(f"[^{_STABLE_CLASS}]")


@dataclass(frozen=True)
class Normalized:
    """Normalized text and where each of its characters came from.

    The map is kept as segments (``_seg_norm[k]``, ``_seg_orig[k]``): from normalized position
    ``_seg_norm[k]`` on, character ``i`` came from original ``_seg_orig[k] + i - _seg_norm[k]``. Text that
    normalizes one character to one character has a single segment, so the map costs nothing until
    ``origin`` is asked for.
    """

    text: str
    original_length: int
    _seg_norm: list[int] = field(repr=False, compare=False)
    _seg_orig: list[int] = field(repr=False, compare=False)

    @cached_property
    def origin(self) -> list[int]:
        """``origin[i]``: the original index of normalized character ``i``, and a sentinel at the end:
        ``origin[len(text)]`` is the original length."""
        result: list[int] = []
        bounds = self._seg_norm[1:] + [len(self.text) + 1]
        for start, stop, orig in zip(self._seg_norm, bounds, self._seg_orig, strict=True):
            result.extend(range(orig, orig + stop - start))
        return result

    def stored(self, original: str) -> dict[str, Any]:
        """A compact form to keep beside `original` (a search index's payload); `from_stored` gives this back.
        Most text keeps its length, so the map is one segment and is left out; so is a text that did not change."""
        stored: dict[str, Any] = {}
        if self.text != original:
            stored["text"] = self.text
        if len(self._seg_norm) > 1:
            stored["map"] = [self._seg_norm, self._seg_orig]
        return stored

    @classmethod
    def from_stored(cls, original: str, stored: dict[str, Any]) -> Normalized:
        seg_norm, seg_orig = stored.get("map", ([0], [0]))
        return cls(stored.get("text", original), len(original), list(seg_norm), list(seg_orig))

    def to_original(self, i: int) -> int:
        if len(self._seg_norm) == 1:
            return i  # nothing changed length
        k = bisect_right(self._seg_norm, i) - 1
        return self._seg_orig[k] + i - self._seg_norm[k]

    def span_to_original(self, start: int, end: int) -> tuple[int, int]:
        """The original characters behind normalized ``[start, end)``, whole clusters (㈱ for 株 in (株))."""
        first = self.to_original(start)
        if end <= start:
            return first, first
        last = self.to_original(end - 1)
        n = len(self.text)
        while end < n and self.to_original(end) <= last:
            end += 1
        return first, max(self.to_original(end), last + 1)

    def to_normalized(self, p: int) -> int:
        """The first normalized position whose character comes from original position ``p`` or later."""
        seg_orig = self._seg_orig
        k = bisect_right(seg_orig, p) - 1
        while k > 0 and seg_orig[k - 1] == seg_orig[k] == p:
            k -= 1  # an expanded cluster: its first character
        if seg_orig[k] == p:
            return self._seg_norm[k]
        i = self._seg_norm[k] + p - seg_orig[k]
        if k + 1 < len(seg_orig):
            i = min(i, self._seg_norm[k + 1])
        return i


def normalize(text: str) -> Normalized:
    normalized, seg_norm, seg_orig = _normalize(text, with_map=True)
    return Normalized(normalized, len(text), seg_norm, seg_orig)


def normalize_text(text: str) -> str:
    """``normalize(text).text`` without building the map (the index-time path)."""
    return _normalize(text, with_map=False)[0]


def folded_text(text: str) -> str:
    """``normalize_text`` with runs of whitespace as one space, trimmed: how typed text and names are compared
    (ＳＡＭＰＬＥ電機 and sample電機 are one; so are "防災　訓練" and "防災 訓練")."""
    return " ".join(normalize_text(text).split())


def _char(ch: str) -> tuple[bool, str]:
    """Whether ``ch`` is a mark, and its normalized form as a cluster of its own."""
    info = _CHARS.get(ch)
    if info is None:
        info = (is_mark(ch), unicodedata.normalize("NFKC", ch).lower().translate(_FOLD))
        if len(_CHARS) < _CHARS_LIMIT:
            _CHARS[ch] = info
    return info


def _one_to_one(ch: str) -> str | None:
    """The stable character that ``ch`` normalizes to wherever it stands, if there is one (（ → (,
    U+3000 → space, Ａ → a). A mark may follow it: NFKC makes the same cluster of ｶﾞ as of カﾞ."""
    mark, out = _char(ch)
    if mark or len(out) != 1 or out == ch or _UNSTABLE_CHAR.match(out):
        return None
    return out


def _unstable_runs(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The text with one-to-one characters already folded, and the (start, end) runs that still need work.

    Folding them with str.replace (C speed, positions unchanged) leaves a handful of runs in Japanese
    text, where most of the unstable characters are full-width punctuation and spaces.
    """
    distinct = set(_UNSTABLE_CHAR.findall(text))
    if len(distinct) > _REPLACE_BUDGET:
        return text, [run.span() for run in _UNSTABLE_RUN.finditer(text)]
    positions: list[int] = []
    for ch in distinct:
        if (folded := _one_to_one(ch)) is not None:
            text = text.replace(ch, folded)
            continue
        found = text.find(ch)
        while found != -1:
            positions.append(found)
            found = text.find(ch, found + 1)
    positions.sort()
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and runs[-1][1] == p:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return text, runs


def long_vowel_hyphens(text: str) -> str:
    """Rule 0: hyphens and minus signs typed for ー after katakana, as ー (one character for one)."""
    # str.find runs at C speed and most hyphens follow no katakana (dates, URLs, codes): the regex, which costs
    # about 8 ns a character of every body highlighted, runs only when one does.
    for hyphen in _HYPHENS:
        at = text.find(hyphen, 1)
        while at != -1:
            if _KATAKANA.match(text, at - 1):
                return _LONG_VOWEL_HYPHEN.sub("\\1ー", text)
            at = text.find(hyphen, at + 1)
    return text


def _normalize(text: str, *, with_map: bool) -> tuple[str, list[int], list[int]]:
    original_length = len(text)
    text = long_vowel_hyphens(text)
    text, runs = _unstable_runs(text)
    parts: list[str] = []
    seg_norm = [0]
    seg_orig = [0]
    n = 0  # normalized length so far
    pos = 0  # original position copied up to

    def linear(at_norm: int, at_orig: int) -> None:
        if at_orig - at_norm != seg_orig[-1] - seg_norm[-1]:
            seg_norm.append(at_norm)
            seg_orig.append(at_orig)

    for start, end in runs:
        if start > pos and _char(text[start])[0]:
            start -= 1  # the stable character before a mark is the base of its cluster
        if start > pos:
            parts.append(text[pos:start])
            if with_map:
                linear(n, pos)
            n += start - pos
        pos = end
        chars = [_char(ch) for ch in text[start:end]]
        if not any(mark for mark, _ in chars):
            for i, (_, out) in enumerate(chars, start):  # every character is a cluster of its own
                parts.append(out)
                if with_map:
                    if len(out) == 1:
                        linear(n, i)
                    else:
                        for k in range(len(out)):  # every character of an expansion → the one it came from
                            seg_norm.append(n + k)
                            seg_orig.append(i)
                n += len(out)
            continue
        i = start
        while i < end:
            j = i + 1
            while j < end and chars[j - start][0]:
                j += 1
            cluster = text[i:j]
            if j - i > 1:
                cluster = cluster[0] + cluster[1:].translate(_SPACING_TO_COMBINING)
            out = unicodedata.normalize("NFKC", cluster).lower().translate(_FOLD)
            parts.append(out)
            if with_map:
                if len(out) == j - i:
                    linear(n, i)
                else:
                    # every character of an expansion or a contraction → the start of the cluster
                    for k in range(len(out)):
                        seg_norm.append(n + k)
                        seg_orig.append(i)
            n += len(out)
            i = j
    if pos < original_length:
        parts.append(text[pos:])
        if with_map:
            linear(n, pos)
        n += original_length - pos
    if with_map and seg_orig[-1] + n - seg_norm[-1] != original_length:
        seg_norm.append(n)  # the sentinel after a trailing expansion
        seg_orig.append(original_length)
    return "".join(parts), seg_norm, seg_orig
