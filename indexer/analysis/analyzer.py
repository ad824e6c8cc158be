"""The one Japanese analyzer (DESIGN §2): SudachiPy over normalized text, identical at index and query time.

Engines receive whitespace-separated token streams per text field and index them with positions:

- ``c``: mode C normalized forms (附属 → 付属, 呑む → 飲む), the main field;
- ``a``: mode A normalized forms, the sub-words of each C word (東京都庁 → 東京 都庁), so 都庁 finds it;
- ``r``: katakana readings of the A units, so a kana query (とうきょう) finds 東京;
- ``b``: character bigrams, for substring (中間一致) queries and words Sudachi does not know.

Index time drops only whitespace and punctuation (補助記号); particles stay so that phrases match.
Query time also drops particles and auxiliaries (助詞, 助動詞). Prefixes, suffixes and 記号 stay content
words: 非, 未, 的, 性 and .net carry meaning, and a frequent one such as 御 only costs a low-weight term.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import itertools
import re
import threading
from collections.abc import Iterator
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

import jaconv
from sudachipy import Config, Dictionary, Morpheme, MorphemeList, SplitMode, Tokenizer
from sudachipy.errors import SudachiError

from indexer.analysis.normalize import Normalized, is_mark, normalize, normalize_text

DICTIONARY_PACKAGE = "sudachidict_core"
DICTIONARY_VERSION = "20260428"
INSTALL_COMMAND = f"pip install 'SudachiDict-core=={DICTIONARY_VERSION}'"
# Bump when a change here changes any token, so that indexes built with the old rules get rebuilt.
ANALYSIS_VERSION = 1

# Sudachi refuses inputs over 49,149 UTF-8 bytes; 8,192 characters are at most 32 KiB.
CHUNK_CHARS = 8192
# Distinct dictionary words remembered, about 500 bytes each (the 7,367 livedoor articles have 72,000);
# the cache is cleared when it is full.
WORD_CACHE_LIMIT = 100_000

# Sudachi's default input plugins, except that "-" is no prolonged sound mark: normalization folds the
# dashes of prose (メール――それは) to "-", and Sudachi would read "--" as ー and make メールー of it.
# Hyphens typed for ー after katakana are already ー (normalize.py, rule 0); 〜 and ⁓ are already ~.
_INPUT_PLUGINS = [
    {"class": "com.worksap.nlp.sudachi.DefaultInputTextPlugin"},
    {
        "class": "com.worksap.nlp.sudachi.ProlongedSoundMarkPlugin",
        "prolongedSoundMarks": ["ー", "〰"],
        "replacementSymbol": "ー",
    },
    {
        "class": "com.worksap.nlp.sudachi.IgnoreYomiganaPlugin",
        "leftBrackets": ["(", "（"],
        "rightBrackets": [")", "）"],
        "maxYomiganaLength": 4,
    },
]
_UNINDEXED_POS = ("空白", "補助記号")
_QUERY_STOP_POS = ("空白", "補助記号", "助詞", "助動詞")
# Word ids of dictionary entries fix their forms, readings and splits, so those are cached by id. OOV
# words (0xF…) and the words Sudachi joins from pieces (numbers 0xFFFFFFFF, katakana runs 0x0FFFFFFF)
# are not entries.
_JOINED_KATAKANA_ID = 0x0FFFFFFF
_JOINED_NUMBER_ID = 0xFFFFFFFF
_OOV_IDS = 0xF0000000

_KANA = re.compile(r"[\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fc-\u30fe]+")
# A unit's reading never starts with a small kana, ッ, ン or ー: readings are cut only before other kana.
_NO_READING_START = frozenset("ァィゥェォャュョヮヵヶッンー")
_SMALL_KANA = frozenset("ァィゥェォャュョヮ")  # part of the mora before it
# Splits of a kana query's reading (see _reading_splits): only for words of this many characters or fewer (a
# longer kana run is a phrase or a sentence, whose words Sudachi finds), and at most this many per word.
MAX_SPLIT_READING = 12
MAX_READING_SPLITS = 16
MAX_SPLIT_PIECES = 8
_READING = re.compile(r"[\u30a1-\u30fa\u30fc]+")
_ASCII_DIGIT = re.compile(r"[0-9]")


class AnalyzerUnavailable(RuntimeError):
    """The Sudachi dictionary cannot be loaded; the message says how to install it."""


@dataclasses.dataclass(frozen=True)
class FieldTokens:
    """The four token streams of one text field; no token contains whitespace, all are lowercase."""

    c: list[str]
    a: list[str]
    r: list[str]
    b: list[str]

    def joined(self) -> dict[str, str]:
        return {"c": " ".join(self.c), "a": " ".join(self.a), "r": " ".join(self.r), "b": " ".join(self.b)}


@dataclasses.dataclass(frozen=True)
class QueryTerm:
    """One search term; each stream is matched as a phrase (consecutive tokens) in its field."""

    surface: str  # normalized
    c: tuple[str, ...]
    a: tuple[str, ...]
    r: tuple[str, ...]
    b: tuple[str, ...]
    kana: bool
    # A kana word's reading cut as the index may have cut it into A units (としょかん: トショ カン, the units of
    # 図書館), each matched as a phrase in ``r`` like ``r`` itself; empty for other terms.
    r_splits: tuple[tuple[str, ...], ...] = ()


class _Word(NamedTuple):
    """What one mode C morpheme contributes to the streams."""

    c: str
    a: tuple[str, ...]
    r: tuple[str, ...]
    readings: tuple[str | None, ...]  # aligned with ``a``; None where the reading is not indexed
    pos: int


# What a morpheme that is not indexed (whitespace, punctuation) contributes: nothing.
_SKIP = _Word("", (), (), (), -1)
_C = itemgetter(0)
_A = itemgetter(1)
_R = itemgetter(2)
_word_id = Morpheme.word_id

# (form, start, end) of a C word and (form, reading or None, start, end) of an A unit, in normalized text.
Span = tuple[str, int, int]
Unit = tuple[str, str | None, int, int]


def bigrams(text: str) -> list[str]:
    """Character bigrams over each run of non-whitespace characters; a one-character run is its own token."""
    out: list[str] = []
    for run in text.split():
        if len(run) == 1:
            out.append(run)
        else:
            out += [run[i : i + 2] for i in range(len(run) - 1)]
    return out


def is_kana(text: str) -> bool:
    return _KANA.fullmatch(text) is not None


def _morae(reading: str) -> int:
    return sum(ch not in _SMALL_KANA for ch in reading)


def _reading_splits(reading: str, pieces: list[str]) -> tuple[tuple[str, ...], ...]:
    """Ways the index may have cut a kana word's reading into A-unit readings, besides the whole reading.

    The index reads 図書館 unit by unit (トショ カン), so the whole reading トショカン alone misses it, and
    Sudachi cuts kana text by guesswork (としょかん → と しょ かん). The candidates, in order: Sudachi's
    pieces regrouped in every way (と|しょかん, としょ|かん, と|しょ|かん), then cuts into two or three parts of
    at least two morae each, at places where a reading can start (チュウオウ|トショ|カン). Each is a phrase, so it
    matches only units that stand next to each other and spell the whole reading: a short query (かき, ごみ)
    has no split, and a cut that is no word in the index matches nothing.
    """
    if len(reading) > MAX_SPLIT_READING or _morae(reading) < 3:
        return ()
    found: dict[tuple[str, ...], None] = {}
    if 1 < len(pieces) <= MAX_SPLIT_PIECES and "".join(pieces) == reading:
        for cuts in range(1, 1 << (len(pieces) - 1)):
            split: list[str] = [pieces[0]]
            for i, piece in enumerate(pieces[1:]):
                if cuts >> i & 1:
                    split.append(piece)
                else:
                    split[-1] += piece
            found[tuple(split)] = None
    starts = [i for i in range(1, len(reading)) if reading[i] not in _NO_READING_START]
    for count in (1, 2):
        for cut in itertools.combinations(starts, count):
            bounds = (0, *cut, len(reading))
            split = [reading[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
            if all(_morae(part) >= 2 for part in split):
                found[tuple(split)] = None
    return tuple(itertools.islice(found, MAX_READING_SPLITS))


def _token(form: str) -> str:
    """A stream token: lowercase (dictionary forms such as CO・OP are not), inner whitespace → _."""
    form = form.lower()
    if form.isprintable() and " " not in form:
        return form  # every whitespace character but the space is unprintable
    return "_".join(form.split())


def _open_dictionary(package: str = DICTIONARY_PACKAGE) -> Dictionary:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise AnalyzerUnavailable(f"Sudachi の辞書 {package} がありません。インストール: {INSTALL_COMMAND}")
    path = Path(spec.origin).parent / "resources" / "system.dic"
    if not path.is_file():
        raise AnalyzerUnavailable(
            f"Sudachi の辞書ファイル {path} がありません。再インストール: {INSTALL_COMMAND}"
        )
    try:
        return Dictionary(dict=str(path), config=Config(inputTextPlugin=_INPUT_PLUGINS))
    except SudachiError as exc:
        raise AnalyzerUnavailable(
            f"Sudachi の辞書 {path} を開けません ({exc})。再インストール: {INSTALL_COMMAND}"
        ) from exc


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """(offset, piece) under CHUNK_CHARS, cut after a newline, 。 or space when there is one, never
    inside a cluster."""
    start = 0
    n = len(text)
    while n - start > CHUNK_CHARS:
        limit = start + CHUNK_CHARS
        floor = start + CHUNK_CHARS // 2
        cut = (
            max(text.rfind("\n", floor, limit), text.rfind("。", floor, limit), text.rfind(" ", floor, limit))
            + 1
        )
        if cut <= floor:
            cut = limit
            while cut > floor and is_mark(text[cut]):
                cut -= 1
            if cut == floor:
                cut = limit  # thousands of marks in a row are no cluster worth keeping whole
        yield start, text[start:cut]
        start = cut
    if start < n:
        yield start, text[start:]


class Analyzer:
    """One per process (``get_analyzer()``): one Dictionary, a Tokenizer per thread, a shared word cache."""

    def __init__(self, dictionary_package: str = DICTIONARY_PACKAGE) -> None:
        self._dictionary = _open_dictionary(dictionary_package)
        self._local = threading.local()
        self._words: dict[int, _Word] = {}
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

    # --- public API ---------------------------------------------------------------------------------

    def normalize(self, text: str) -> Normalized:
        """The text every stream is built from, with ``origin`` mapping it back (normalize.py)."""
        return normalize(text)

    def analyze(self, text: str) -> FieldTokens:
        """Index-time streams of one field."""
        return self._analyze_normalized(normalize_text(text))

    def query_terms(self, text: str) -> list[QueryTerm]:
        """Terms of an unquoted part of a query, one per content word (whitespace separates words too).

        A kana-only word becomes one term read as a whole, so とうきょう finds 東京 through ``r``. When
        nothing but stop tokens is left (の, は、), the whole text becomes one phrase-like term, so that
        the search is not empty.
        """
        norm = normalize_text(text)
        terms: list[QueryTerm] = []
        for part in norm.split():
            words = self._words_in(part)
            content = [(surface, word) for surface, word in words if word.pos not in self._query_stop]
            if not content:
                continue
            if is_kana(part):
                whole = self._phrase_term(part, words)
                reading = jaconv.hira2kata(part)
                splits = _reading_splits(reading, [jaconv.hira2kata(surface) for surface, _ in words])
                terms.append(QueryTerm(part, whole.c, whole.a, (reading,), whole.b, True, splits))
                continue
            terms.extend(
                QueryTerm(surface, (word.c,), word.a, word.r, tuple(bigrams(surface)), is_kana(surface))
                for surface, word in content
            )
        if terms or not norm.strip():
            return terms
        only_stop_tokens = self._phrase_term(norm, self._words_in(norm))
        if only_stop_tokens.kana:
            kana = jaconv.hira2kata(only_stop_tokens.surface.replace(" ", ""))
            return [dataclasses.replace(only_stop_tokens, r=(kana,))]
        return [only_stop_tokens]

    def phrase(self, text: str) -> QueryTerm:
        """A quoted phrase: every stream in order, exactly as ``analyze`` would index the same text."""
        norm = normalize_text(text)
        return self._phrase_term(norm, self._words_in(norm))

    # --- internals, also used by highlight ---------------------------------------------------------

    def _words_in(self, norm: str) -> list[tuple[str, _Word]]:
        """(normalized surface, contribution) of each indexed morpheme of ``norm``."""
        words = []
        for offset, morphemes in self._tokenized(norm):
            for m in morphemes:
                word = self._word_of(m)
                if word is not _SKIP:
                    words.append((norm[offset + m.begin() : offset + m.end()], word))
        return words

    def _phrase_term(self, norm: str, words: list[tuple[str, _Word]]) -> QueryTerm:
        surface = " ".join(norm.split())
        return QueryTerm(
            surface,
            tuple(word.c for _, word in words),
            tuple(chain.from_iterable(word.a for _, word in words)),
            tuple(chain.from_iterable(word.r for _, word in words)),
            tuple(bigrams(norm)),
            is_kana(surface.replace(" ", "")),
        )

    def _analyze_normalized(self, norm: str) -> FieldTokens:
        # The indexing hot path. Per morpheme only a word id and a cache lookup, in map() rather than a Python
        # loop; Python code runs for new and unknown words only.
        words: list[_Word] = []
        for _, morphemes in self._tokenized(norm):
            wids = list(map(_word_id, morphemes))
            found = list(map(self._words.get, wids))
            if None in found:
                i = found.index(None)
                while True:
                    found[i] = self._word(morphemes[i], wids[i])
                    try:
                        i = found.index(None, i + 1)
                    except ValueError:
                        break
            words += found
        return FieldTokens(
            list(filter(None, map(_C, words))),
            list(chain.from_iterable(map(_A, words))),
            list(chain.from_iterable(map(_R, words))),
            bigrams(norm),
        )

    def _token_spans(
        self, norm: str, start: int, end: int, wanted: frozenset[str]
    ) -> tuple[list[Span], list[Unit]]:
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
                if word is _SKIP:
                    continue
                s, e = base + m.begin(), base + m.end()
                words.append((word.c, s, e))
                if len(word.a) == 1:
                    units.append((word.a[0], word.readings[0], s, e))
                elif wanted.isdisjoint(word.a) and wanted.isdisjoint(word.r):
                    units.extend(
                        [(form, reading, s, e) for form, reading in zip(word.a, word.readings, strict=True)]
                    )
                else:
                    units.extend(
                        [
                            (form, reading, base + u.begin(), base + u.end())
                            for form, reading, (u, _) in zip(
                                word.a, word.readings, self._units(m), strict=True
                            )
                        ]
                    )
        return words, units

    def _tokenizer(self) -> Tokenizer:
        try:
            return self._local.tokenizer
        except AttributeError:
            self._local.tokenizer = self._dictionary.create(SplitMode.C)
            return self._local.tokenizer

    def _tokenized(self, norm: str) -> Iterator[tuple[int, MorphemeList]]:
        """Mode C morphemes of normalized text with each chunk's offset, chunked under Sudachi's limit."""
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
                # Not seen with chunks this small; halve rather than lose the text (bigrams index it anyway).
                if len(chunk) < 2:
                    continue
                half = len(chunk) // 2
                while half > 1 and is_mark(chunk[half]):
                    half -= 1
                pending.append((offset + half, chunk[half:]))
                pending.append((offset, chunk[:half]))
                continue
            yield offset, morphemes

    def _word_of(self, m: Morpheme) -> _Word:
        wid = m.word_id()
        return self._words.get(wid) or self._word(m, wid)

    def _word(self, m: Morpheme, wid: int) -> _Word:
        """A morpheme's contribution, cached for dictionary words; _SKIP when it is not indexed."""
        in_dictionary = wid < _OOV_IDS and wid != _JOINED_KATAKANA_ID
        pos = m.part_of_speech_id()
        word = _SKIP
        if pos not in self._unindexed and (c := _token(m.normalized_form())):
            units = self._units(m) if in_dictionary else []
            if len(units) > 1:
                a = tuple(token for _, token in units)
                readings = tuple(self._reading(u, u.part_of_speech_id()) for u, _ in units)
            else:
                a = (c,)
                readings = (self._reading(m, pos),)
            word = _Word(c, a, tuple(filter(None, readings)), readings, pos)
        # An unknown word's id stands for its part of speech: unknown whitespace and symbols are cached too.
        if in_dictionary or (word is _SKIP and _OOV_IDS <= wid < _JOINED_NUMBER_ID):
            if len(self._words) >= WORD_CACHE_LIMIT:
                self._words.clear()
            self._words[wid] = word
        return word

    def _units(self, m: Morpheme) -> list[tuple[Morpheme, str]]:
        """The indexed A units of a dictionary word and their tokens (none when mode A does not split it)."""
        return [
            (u, token)
            for u in m.split(SplitMode.A)
            if u.part_of_speech_id() not in self._unindexed and (token := _token(u.normalized_form()))
        ]

    def _reading(self, m: Morpheme, pos: int) -> str | None:
        """The katakana reading to index, or None where Sudachi has none: キゴウ, digit strings, Latin,
        emoji."""
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
    """The process's Analyzer, created on first use (it maps the 217 MB dictionary file into memory)."""
    global _analyzer
    if _analyzer is None:
        with _lock:
            if _analyzer is None:
                _analyzer = Analyzer()
    return _analyzer
