"""Character normalization shared by indexing, querying and highlighting, with a map back to the original text.

The same function runs on documents and on queries, so a fold made here can never make the two disagree; the map
lets highlights be placed on the original characters (DESIGN §2).

Per *cluster* (a base character plus the marks that follow it), in this order:

| step | what | why |
|---|---|---|
| 1 | lone surrogates → U+FFFD | Sudachi (Rust) cannot take them; they come from broken decoders |
| 2 | ゛ ゜ (U+309B/C) after a base → combining U+3099/A | NFKC turns the spacing marks into a space plus a mark, so か゛ would become か ゙ |
| 3 | NFKC | full-width ↔ half-width alphanumerics, half-width katakana (ｺｰﾌﾟ → コープ), ㈱ → (株), … |
| 4 | lowercase | ＡＢＣ, ABC and abc match |
| 5 | 〜 U+301C, ～ U+FF5E, ⁓ U+2053, ∼ U+223C → ~ | one wave dash, so a search for any of them matches all (RELIABILITY T15) |
| 6 | ‐ ‑ ‒ – — ― − (U+2010–2015, U+2212) → - | look-alike dashes typed for one another |
| 7 | every other whitespace → space; U+2028/9 → newline | the engines split on whitespace and do not all agree on which characters are whitespace |

Then over the whole text, one context rule:

| 8 | - right after a katakana letter (ァ–ヺ), unless a Latin letter, digit, kanji or another dash follows → ー |
|---|---|

Rule 8 recovers コ−ヒ− and ｺ-ﾋ- (legacy CP932 text types the long-vowel mark as a minus or hyphen), which Sudachi
otherwise splits into コ / - / ヒ. It leaves ページ-3, セット-A, 10-20 and アメリカ-日本 alone. A wrongly folded
hyphen between katakana words (ワン-ツー) is folded the same way in documents and queries, so it only costs the
split into two words, not a match.

Clusters keep NFKC from composing across them, so a character maps to exactly the original characters it came from.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property

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
# Normalized forms of single unstable characters (（, 　, ！ …), the bulk of the per-run work; bounded.
_RUNS: dict[str, str] = {}
_RUNS_LIMIT = 4096
_KATAKANA_DASH = re.compile(r"([\u30a1-\u30fa])-(?![-0-9a-z\u3400-\u4dbf\u4e00-\u9fff])")


def is_mark(ch: str) -> bool:
    """True for a character that belongs to the cluster of the character before it."""
    return unicodedata.category(ch)[0] == "M" or _EXTRA_MARKS.match(ch) is not None


def _is_stable(ch: str) -> bool:
    """A character that every step above leaves alone (ASCII capitals only need a length-preserving lower())."""
    cp = ord(ch)
    return (
        cp not in _FOLD
        and not is_mark(ch)
        and unicodedata.normalize("NFKC", ch) == ch
        and (ch.lower() == ch or "A" <= ch <= "Z")
    )


# CJK ideographs are always stable (tests check it); the other ranges are where most text lives and are scanned once.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
_SCANNED = [(0x0000, 0x024F), (0x2000, 0x2BFF), (0x3000, 0x30FF)]


def _stable_class() -> str:
    ranges: list[list[int]] = []
    for low, high in _SCANNED:
        for cp in range(low, high + 1):
            if _is_stable(chr(cp)):
                if ranges and ranges[-1][1] == cp - 1:
                    ranges[-1][1] = cp
                else:
                    ranges.append([cp, cp])
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges) + _CJK


# Maximal runs of characters that need per-cluster work; everything between them is copied (and lower()ed) as is.
_UNSTABLE_RUN = re.compile(f"[^{_stable_class()}]+")


@dataclass(frozen=True)
class Normalized:
    """Normalized text and where each of its characters came from.

    The map is kept as segments (``_seg_norm[k]``, ``_seg_orig[k]``): from normalized position ``_seg_norm[k]`` on,
    character ``i`` came from original ``_seg_orig[k] + i - _seg_norm[k]``. Text that normalizes one character to one
    character has a single segment, so the map costs nothing until ``origin`` is asked for.
    """

    text: str
    original_length: int
    _seg_norm: list[int] = field(repr=False, compare=False)
    _seg_orig: list[int] = field(repr=False, compare=False)

    @cached_property
    def origin(self) -> list[int]:
        """``origin[i]``: the original index of normalized character ``i``; ``origin[len(text)]`` = original length."""
        result: list[int] = []
        bounds = self._seg_norm[1:] + [len(self.text) + 1]
        for start, stop, orig in zip(self._seg_norm, bounds, self._seg_orig, strict=True):
            result.extend(range(orig, orig + stop - start))
        return result

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


def _normalize(text: str, *, with_map: bool) -> tuple[str, list[int], list[int]]:
    parts: list[str] = []
    seg_norm = [0]
    seg_orig = [0]
    n = 0  # normalized length so far
    pos = 0  # original position copied up to

    def linear(at_norm: int, at_orig: int) -> None:
        if at_orig - at_norm != seg_orig[-1] - seg_norm[-1]:
            seg_norm.append(at_norm)
            seg_orig.append(at_orig)

    for run in _UNSTABLE_RUN.finditer(text):
        start, end = run.span()
        if start > pos and is_mark(text[start]):
            start -= 1  # the stable character before a mark is the base of its cluster
        if start > pos:
            parts.append(text[pos:start].lower())
            if with_map:
                linear(n, pos)
            n += start - pos
        pos = end
        chunk = text[start:end]
        out = _RUNS.get(chunk)
        if out is None and not any(map(is_mark, chunk)):
            # Without marks every character is its own cluster, and NFKC, lower() and the folds of a run equal
            # those of its characters one by one.
            out = unicodedata.normalize("NFKC", chunk).lower().translate(_FOLD)
            if len(chunk) == 1 and len(_RUNS) < _RUNS_LIMIT:
                _RUNS[chunk] = out
        if out is not None and (len(out) == end - start or not with_map):
            parts.append(out)
            if with_map:
                linear(n, start)
            n += len(out)
            continue
        i = start  # marks, or a length change to map: cluster by cluster
        while i < end:
            j = i + 1
            while j < end and is_mark(text[j]):
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
                    for k in range(len(out)):  # every character of an expansion or contraction → the cluster start
                        seg_norm.append(n + k)
                        seg_orig.append(i)
            n += len(out)
            i = j
    if pos < len(text):
        parts.append(text[pos:].lower())
        if with_map:
            linear(n, pos)
        n += len(text) - pos
    if with_map and seg_orig[-1] + n - seg_norm[-1] != len(text):
        seg_norm.append(n)  # the sentinel after a trailing expansion
        seg_orig.append(len(text))
    result = "".join(parts)
    if "-" in result:
        result = _KATAKANA_DASH.sub("\\1ー", result)
    return result, seg_norm, seg_orig
