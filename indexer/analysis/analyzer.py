"""The one Japanese analyzer (DESIGN §2): SudachiPy over normalized text, identical at index and query time.

Engines receive whitespace-separated token streams per text field and index them with positions:

- ``c``: mode C normalized forms (附属 → 付属, 呑む → 飲む), the main field;
- ``a``: mode A normalized forms, the sub-words of each C word (東京都庁 → 東京 都庁), so 都庁 finds it;
- ``r``: katakana readings of the A units, so a kana query (とうきょう) finds 東京;
- ``b``: character bigrams, for substring (中間一致) queries and words Sudachi does not know.

Index time drops only whitespace and punctuation (補助記号); particles stay so that phrases match. Query time also
drops particles and auxiliaries (助詞, 助動詞). Prefixes, suffixes and 記号 stay content words: 非, 未, 的, 性 and
.net carry meaning, and a frequent one such as 御 only costs a low-weight term.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jaconv
from sudachipy import Dictionary, Morpheme, MorphemeList, SplitMode, Tokenizer
from sudachipy.errors import SudachiError

from indexer.analysis.normalize import Normalized, is_mark, normalize, normalize_text

DICTIONARY_PACKAGE = "sudachidict_core"
DICTIONARY_VERSION = "20260428"
INSTALL_COMMAND = f"pip install 'SudachiDict-core=={DICTIONARY_VERSION}'"
# Bump when a change here changes any token, so that indexes built with the old rules get rebuilt.
ANALYSIS_VERSION = 1

# Sudachi refuses inputs over 49,149 UTF-8 bytes; 8,192 characters are at most 32 KiB.
CHUNK_CHARS = 8192
# Distinct dictionary words remembered (a few hundred bytes each); the cache is cleared when it is full.
WORD_CACHE_LIMIT = 200_000

_UNINDEXED_POS = ("空白", "補助記号")
_QUERY_STOP_POS = ("空白", "補助記号", "助詞", "助動詞")
# Word ids of dictionary entries fix their forms, readings and splits, so those are cached by id. OOV words
# (0xF…) and the words Sudachi joins from pieces (numbers 0xFFFFFFFF, katakana runs 0x0FFFFFFF) are not entries.
_JOINED_KATAKANA_ID = 0x0FFFFFFF
_OOV_IDS = 0xF0000000

_KANA = re.compile(r"[\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fc-\u30fe]+")
_READING = re.compile(r"[\u30a1-\u30fa\u30fc]+")
_ASCII_DIGIT = re.compile(r"[0-9]")


class AnalyzerUnavailable(RuntimeError):
    """The Sudachi dictionary cannot be loaded; the message says how to install it."""


@dataclass(frozen=True)
class FieldTokens:
    """The four token streams of one text field; no token contains whitespace, all are lowercase."""

    c: list[str]
    a: list[str]
    r: list[str]
    b: list[str]

    def joined(self) -> dict[str, str]:
        return {"c": " ".join(self.c), "a": " ".join(self.a), "r": " ".join(self.r), "b": " ".join(self.b)}


@dataclass(frozen=True)
class QueryTerm:
    """One search term. Each stream is matched as a phrase (consecutive tokens) in the field of the same name."""

    surface: str  # normalized
    c: tuple[str, ...]
    a: tuple[str, ...]
    r: tuple[str, ...]
    b: tuple[str, ...]
    kana: bool


class _Word(NamedTuple):
    """What one mode C morpheme contributes to the streams."""

    c: str
    a: tuple[str, ...]
    r: tuple[str, ...]
    readings: tuple[str | None, ...]  # aligned with ``a``; None where the reading is not indexed
    pos: int


class Span(NamedTuple):
    """A C word in normalized text."""

    form: str
    start: int
    end: int


class Unit(NamedTuple):
    """An A unit in normalized text."""

    form: str
    reading: str | None
    start: int
    end: int


_MISSING = object()


def bigrams(text: str) -> list[str]:
    """Character bigrams over each run of non-whitespace characters; a one-character run is its own token."""
    out: list[str] = []
    for run in text.split():
        if len(run) == 1:
            out.append(run)
        else:
            out.extend(map(str.__add__, run[:-1], run[1:]))
    return out


def is_kana(text: str) -> bool:
    return _KANA.fullmatch(text) is not None


def _token(form: str) -> str:
    """A stream token: lowercase (dictionary forms such as CO・OP are not), whitespace inside replaced by _."""
    form = form.lower()
    if form.isprintable() and " " not in form:
        return form
    return "_".join(form.split())


def _open_dictionary(package: str = DICTIONARY_PACKAGE) -> Dictionary:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise AnalyzerUnavailable(f"Sudachi の辞書 {package} がありません。インストール: {INSTALL_COMMAND}")
    path = Path(spec.origin).parent / "resources" / "system.dic"
    if not path.is_file():
        raise AnalyzerUnavailable(f"Sudachi の辞書ファイル {path} がありません。再インストール: {INSTALL_COMMAND}")
    try:
        return Dictionary(dict=str(path))
    except SudachiError as exc:
        raise AnalyzerUnavailable(f"Sudachi の辞書 {path} を開けません ({exc})。再インストール: {INSTALL_COMMAND}") from exc


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """(offset, piece) under CHUNK_CHARS, cut after a newline, 。 or space when there is one, never inside a cluster."""
    start = 0
    n = len(text)
    while n - start > CHUNK_CHARS:
        limit = start + CHUNK_CHARS
        floor = start + CHUNK_CHARS // 2
        cut = max(text.rfind("\n", floor, limit), text.rfind("。", floor, limit), text.rfind(" ", floor, limit)) + 1
        if cut <= floor:
            cut = limit
            while cut > start + 1 and is_mark(text[cut]):
                cut -= 1
        yield start, text[start:cut]
        start = cut
    if start < n:
        yield start, text[start:]


class Analyzer:
    """One per process (``get_analyzer()``): one Dictionary, a Tokenizer per thread, a shared word cache."""

    def __init__(self, dictionary_package: str = DICTIONARY_PACKAGE) -> None:
        self._dictionary = _open_dictionary(dictionary_package)
        self._local = threading.local()
        self._words: dict[int, _Word | None] = {}
        pos_names = []
        while (pos := self._dictionary.pos_of(len(pos_names))) is not None:
            pos_names.append(pos)
        self._unindexed = frozenset(i for i, p in enumerate(pos_names) if p[0] in _UNINDEXED_POS)
        self._query_stop = frozenset(i for i, p in enumerate(pos_names) if p[0] in _QUERY_STOP_POS)
        self._symbol = frozenset(i for i, p in enumerate(pos_names) if p[0] == "記号")
        self._numeral = frozenset(i for i, p in enumerate(pos_names) if p[:2] == ("名詞", "数詞"))
        # Changes whenever tokens may change: store it with an index and rebuild the index when it differs.
        self.version = (
            f"sudachipy-{importlib.metadata.version('SudachiPy')}"
            f"/{dictionary_package}-{importlib.metadata.version(dictionary_package)}/analysis-{ANALYSIS_VERSION}"
        )

    # --- public API -------------------------------------------------------------------------------------------

    def normalize(self, text: str) -> Normalized:
        return normalize(text)

    def analyze(self, text: str) -> FieldTokens:
        """Index-time streams of one field."""
        norm = normalize_text(text)
        c: list[str] = []
        a: list[str] = []
        r: list[str] = []
        c_append, a_extend, r_extend = c.append, a.extend, r.extend
        cached = self._words.get
        for _, morphemes in self._tokenized(norm):
            for m in morphemes:
                word = cached(wid := m.word_id(), _MISSING)
                if word is _MISSING:
                    word = self._word(m, wid)
                if word is not None:
                    c_append(word[0])
                    a_extend(word[1])
                    r_extend(word[2])
        return FieldTokens(c, a, r, bigrams(norm))

    def query_terms(self, text: str) -> list[QueryTerm]:
        """Terms of an unquoted part of a query, one per content word (whitespace separates words too).

        A kana-only word becomes one term whose reading is the whole word, so とうきょう finds 東京 through ``r``;
        a word made only of stop tokens (の, です) becomes one phrase-like term, so the search is not empty.
        """
        terms: list[QueryTerm] = []
        for part in normalize_text(text).split():
            if is_kana(part):
                whole = self._phrase_of_normalized(part)
                terms.append(QueryTerm(part, whole.c, whole.a, (jaconv.hira2kata(part),), whole.b, True))
                continue
            found = False
            for offset, morphemes in self._tokenized(part):
                for m in morphemes:
                    word = self._word_of(m)
                    if word is None or word.pos in self._query_stop:
                        continue
                    found = True
                    surface = part[offset + m.begin() : offset + m.end()]
                    terms.append(QueryTerm(surface, (word.c,), word.a, word.r, tuple(bigrams(surface)), is_kana(surface)))
            if not found:
                terms.append(self._phrase_of_normalized(part))
        return terms

    def phrase(self, text: str) -> QueryTerm:
        """A quoted phrase: every stream in order, exactly as ``analyze`` would index the same text."""
        return self._phrase_of_normalized(normalize_text(text))

    # --- internals shared with highlight ------------------------------------------------------------------------

    def _phrase_of_normalized(self, norm: str) -> QueryTerm:
        streams = self._analyze_normalized(norm)
        surface = " ".join(norm.split())
        return QueryTerm(
            surface,
            tuple(streams.c),
            tuple(streams.a),
            tuple(streams.r),
            tuple(streams.b),
            is_kana(surface.replace(" ", "")),
        )

    def _analyze_normalized(self, norm: str) -> FieldTokens:
        c: list[str] = []
        a: list[str] = []
        r: list[str] = []
        for _, morphemes in self._tokenized(norm):
            for m in morphemes:
                word = self._word_of(m)
                if word is not None:
                    c.append(word.c)
                    a.extend(word.a)
                    r.extend(word.r)
        return FieldTokens(c, a, r, bigrams(norm))

    def _token_spans(self, norm: str, start: int, end: int, wanted: frozenset[str]) -> tuple[list[Span], list[Unit]]:
        """Indexed C words and A units of ``norm[start:end]`` with spans in ``norm``.

        Splitting costs about a microsecond, so a word is split for exact unit spans only when one of its unit
        forms or readings is ``wanted``; the units of other words get the word's span, which no mark will use.
        """
        words: list[Span] = []
        units: list[Unit] = []
        for offset, morphemes in self._tokenized(norm[start:end]):
            base = start + offset
            for m in morphemes:
                word = self._word_of(m)
                if word is None:
                    continue
                s, e = base + m.begin(), base + m.end()
                words.append(Span(word.c, s, e))
                if len(word.a) > 1 and not (wanted.isdisjoint(word.a) and wanted.isdisjoint(word.r)):
                    units.extend(
                        Unit(form, reading, base + u.begin(), base + u.end())
                        for form, reading, u in zip(word.a, word.readings, self._units(m), strict=True)
                    )
                else:
                    units.extend(Unit(form, reading, s, e) for form, reading in zip(word.a, word.readings, strict=True))
        return words, units

    def _tokenizer(self) -> Tokenizer:
        try:
            return self._local.tokenizer
        except AttributeError:
            self._local.tokenizer = self._dictionary.create(SplitMode.C)
            return self._local.tokenizer

    def _tokenized(self, norm: str) -> Iterator[tuple[int, MorphemeList]]:
        """Mode C morphemes of normalized text, chunked under Sudachi's input limit, with each chunk's offset."""
        if not norm or norm.isspace():
            return
        tokenizer = self._tokenizer()
        pending = list(_chunks(norm))
        pending.reverse()
        while pending:
            offset, chunk = pending.pop()
            try:
                morphemes = tokenizer.tokenize(chunk)
            except SudachiError:
                # Not seen with chunks this small; halve rather than lose the text. Bigrams index it regardless.
                if len(chunk) < 2:
                    continue
                half = len(chunk) // 2
                while half > 1 and is_mark(chunk[half]):
                    half -= 1
                pending.append((offset + half, chunk[half:]))
                pending.append((offset, chunk[:half]))
                continue
            yield offset, morphemes

    def _word_of(self, m: Morpheme) -> _Word | None:
        wid = m.word_id()
        word = self._words.get(wid, _MISSING)
        if word is _MISSING:
            return self._word(m, wid)
        return word  # type: ignore[return-value]

    def _word(self, m: Morpheme, wid: int) -> _Word | None:
        """Compute (and, for dictionary words, cache) a morpheme's contribution; None when it is not indexed."""
        in_dictionary = wid < _OOV_IDS and wid != _JOINED_KATAKANA_ID
        pos = m.part_of_speech_id()
        word: _Word | None = None
        if pos not in self._unindexed and (c := _token(m.normalized_form())):
            units = self._units(m) if in_dictionary else []
            if len(units) > 1:
                a = tuple(_token(u.normalized_form()) for u in units)
                readings = tuple(self._reading(u, u.part_of_speech_id()) for u in units)
            else:
                a = (c,)
                readings = (self._reading(m, pos),)
            word = _Word(c, a, tuple(filter(None, readings)), readings, pos)
        if in_dictionary:
            if len(self._words) >= WORD_CACHE_LIMIT:
                self._words.clear()
            self._words[wid] = word
        return word

    def _units(self, m: Morpheme) -> list[Morpheme]:
        """The indexed A units of a dictionary word (empty when mode A does not split it)."""
        return [u for u in m.split(SplitMode.A) if u.part_of_speech_id() not in self._unindexed]

    def _reading(self, m: Morpheme, pos: int) -> str | None:
        """The katakana reading to index, or None where Sudachi has none (キゴウ, digit strings, Latin, emoji)."""
        reading = m.reading_form()
        if is_kana(reading):
            reading = jaconv.hira2kata(reading)  # unknown hiragana words "read" as themselves
        if not _READING.fullmatch(reading):
            return None
        if pos in self._symbol and reading == "キゴウ":
            return None
        if pos in self._numeral and _ASCII_DIGIT.search(m.surface()):
            return None  # Sudachi spells digit strings digit by digit: 10 → イチレイ
        return reading


_lock = threading.Lock()
_analyzer: Analyzer | None = None


def get_analyzer() -> Analyzer:
    """The process's Analyzer, created on first use (loading the dictionary takes a moment and ~ 70 MB)."""
    global _analyzer
    if _analyzer is None:
        with _lock:
            if _analyzer is None:
                _analyzer = Analyzer()
    return _analyzer
