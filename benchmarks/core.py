"""Core figures of the library in one run: ingest, parallel rebuild, search latency and memory, side by side.

    .venv/bin/python benchmarks/core.py                   # 100,000 records (make bench), about an hour
    .venv/bin/python benchmarks/core.py --records 20000   # a quick run, about 15 minutes

Data: the livedoor news corpus (/work/shared/corpus/ldcc.jsonl.gz, 7,367 articles, CC BY-ND), read at run time
and never copied into the repository. Copies with new ids (`ldcc-<copy>-<article id>`) reach the target size.
Every copy is verbatim (the licence forbids modified articles), so term statistics are those of the corpus
repeated, and a query matches about `records / 7,367` times as many records as on the corpus alone.

Phases, one function each, all in this process on one temporary data directory (SQLite + tantivy):

1. raw SudachiPy over the sample: the analysis limit on one core;
2. `Library.import_lines` of the same sample into the empty library (validation, store, outbox, analysis,
   engine): the ingest rate on one core and its ratio to 1 (target >= 0.5); then the rest of the records the
   normal way, so that the later phases run at full size;
3. `Library.reindex(workers=1)` (over the first `--baseline-records`) and `Library.reindex(workers=2)` over
   everything: the parallel rebuild rate and its speed-up;
4. `Library.search(Query(...))` latency of realistic queries built from the corpus (facets and snippets);
5. the raw tantivy top-10 of the same compiled queries on the same index; the ratio of 4 to it (target <= 5);
6. peak memory of the process and of the rebuild's worker processes.

It prints figures and never fails on a missed target: the machine is shared and single passes vary by about
±20 %, so a figure is something to read next to the others, not a test. Phase messages and progress go to
stderr, the figures to stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jaconv
from sudachipy import Morpheme, SplitMode, Tokenizer

from indexer.analysis.analyzer import _chunks, _open_dictionary
from indexer.analysis.normalize import normalize_text
from indexer.config import Settings
from indexer.engines.base import FACET_FIELDS, EngineQuery, Filters
from indexer.library import Library
from indexer.query import parse_query
from indexer.search import Query, compile_query
from schemas import validate_record

CORPUS = Path("/work/shared/corpus/ldcc.jsonl.gz")
SEED = 20240607  # fixed, so that two runs ask the same queries
AUTHOR = "benchmark"
SUMMARY = "benchmarks/core.py"

# Targets from the issue, printed next to the figures (never asserted).
INGEST_TARGET = 0.5  # import rate / raw SudachiPy rate, on one core
SEARCH_TARGET = 5.0  # p50 search() / p50 raw tantivy top-10


# --- small helpers ------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check(condition: bool, message: str) -> None:
    """Stop when the setup is not what the figures claim to measure (this is not a check of any target)."""
    if not condition:
        raise SystemExit(f"benchmark setup: {message}")


class Progress:
    """`done/total, ETA, rate` on stderr: in place on a terminal, a line every 15 s in a log file (nohup)."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.perf_counter()
        self._tty = sys.stderr.isatty()
        self._every = 0.5 if self._tty else 15.0
        self._last = self.started

    def __call__(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self._every:
            self._last = now
            self._show(now)

    def _show(self, now: float, end: str = "") -> None:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed else 0.0
        text = f"  {self.label}: {self.done:,}"
        if self.total:
            eta = (self.total - self.done) / rate if rate else 0.0
            text += f"/{self.total:,} ({100 * self.done / self.total:.0f} %, ETA {eta:.0f} s)"
        text += f", {rate:,.0f}/s"
        if self._tty:
            print("\r" + text + "\x1b[K", end=end, file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def finish(self) -> None:
        self._show(time.perf_counter(), end="\n")


@dataclass
class Clock:
    """Wall and CPU time (this process, all its threads) of a block: CPU / wall is the cores it used."""

    wall: float = 0.0
    cpu: float = 0.0
    _wall0: float = field(default=0.0, repr=False)
    _cpu0: float = field(default=0.0, repr=False)

    def __enter__(self) -> Clock:  # noqa: PYI034 (Python 3.11 has Self, but the file reads fine without it)
        self._wall0, self._cpu0 = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = _cpu_seconds() - self._cpu0

    @property
    def cores(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    # Linux reports ru_maxrss in KiB. For RUSAGE_CHILDREN it is the largest waited-for child, not a sum.
    return resource.getrusage(who).ru_maxrss / 1024


def percentiles(samples_ms: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return q[49], q[94], q[98]


def dir_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# --- the data set -------------------------------------------------------------------------------------------


def load_articles() -> list[dict[str, Any]]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def to_record(article: dict[str, Any], copy: int) -> dict[str, Any]:
    """One corpus article as a `page` record; `copy` makes the id and the source id unique per copy."""
    return {
        "id": f"ldcc-{copy}-{article['id']}",
        "kind": "page",
        "title": article["title"],
        "body": article["body"],
        "url": article.get("url") or f"https://news.example.jp/{article['id']}",
        "source": "ldcc",
        "external_id": f"{copy}-{article['id']}",
        "provenance": "npo",
        "published_at": article["date"],
        "tags": [article["category"]],
    }


def records(articles: list[dict[str, Any]], start: int, stop: int) -> Iterator[dict[str, Any]]:
    """Records start..stop-1 of copy 0 (every article), copy 1, ...; lazy, as 100k bodies are 0.4 GB."""
    for i in range(start, stop):
        copy, index = divmod(i, len(articles))
        yield to_record(articles[index], copy)


def jsonl(items: Iterable[dict[str, Any]]) -> Iterator[str]:
    for item in items:
        yield json.dumps(item, ensure_ascii=False) + "\n"


def record_chars(record: dict[str, Any]) -> int:
    return len(record["title"]) + len(record["body"])


# --- 1. raw SudachiPy ---------------------------------------------------------------------------------------


def raw_sudachi_pass(tokenizer: Tokenizer, texts: list[str]) -> None:
    """The analysis work with nothing around it: mode C tokens, their normalized form and reading, and the
    normalized forms of their mode A split. No text normalization, no token lists, no cache: the limit."""
    mode_a = SplitMode.A
    for text in texts:
        # No corpus text is longer than a chunk; chunking stays so that none can exceed Sudachi's input limit.
        for _, chunk in _chunks(text):
            for m in tokenizer.tokenize(chunk):
                m.normalized_form()
                m.reading_form()
                for unit in m.split(mode_a):
                    unit.normalized_form()


def measure_raw_sudachi(sample: list[dict[str, Any]], repeat: int) -> dict[str, float]:
    # Title and body are separate inputs, as the library analyses them as separate fields.
    texts = [text for record in sample for text in (record["title"], record["body"]) if text]
    tokenizer = _open_dictionary().create(SplitMode.C)
    raw_sudachi_pass(tokenizer, texts[:50])  # touch the dictionary's pages once, outside the timing
    clocks = []
    for n in range(repeat):
        log(f"  raw SudachiPy pass {n + 1}/{repeat} over {len(sample):,} records")
        with Clock() as clock:
            raw_sudachi_pass(tokenizer, texts)
        clocks.append(clock)
    # The best pass is the limit: slower ones measure the neighbours on a shared machine, not SudachiPy.
    best = min(c.wall for c in clocks)
    cpu = min(c.cpu for c in clocks)
    chars = sum(map(record_chars, sample))
    return {
        "seconds": best,
        "chars_per_s": chars / best,
        "records_per_s": len(sample) / best,
        "records_per_cpu_s": len(sample) / cpu,
    }


# --- 2. ingest ----------------------------------------------------------------------------------------------


def import_records(library: Library, lines: Iterable[str], label: str, total: int) -> tuple[Clock, int]:
    progress = Progress(label, total)
    with Clock() as clock:
        report = library.import_lines(
            lines,  # type: ignore[arg-type]  # import_lines only iterates over its lines
            author=AUTHOR,
            summary=SUMMARY,
            on_line=lambda _size: progress(1),
        )
    progress.finish()
    first = report.errors[0] if report.errors else None
    check(first is None, f"{len(report.errors)} records rejected, first: {first}")
    return clock, report.created


def measure_ingest(library: Library, sample: list[dict[str, Any]]) -> dict[str, float]:
    # Serialised beforehand, so the timing holds only what `library import` does with the lines of a file.
    lines = list(jsonl(sample))
    _ = library.analyzer  # loads the dictionary (a once-per-process start-up); the word cache stays cold
    clock, created = import_records(library, lines, "import (timed sample)", len(lines))
    stats = library.stats()
    # import_lines drains the outbox after every batch, so the timing includes the engine writes.
    check(stats["outbox_pending"] == 0 and stats["indexed"] == created, f"not all indexed: {stats}")
    chars = sum(map(record_chars, sample))
    return {
        "seconds": clock.wall,
        "cores": clock.cores,
        "records_per_s": created / clock.wall,
        "chars_per_s": chars / clock.wall,
        # CPU time of the process, tantivy's threads included: unlike wall time, barely moved by neighbours.
        "records_per_cpu_s": created / clock.cpu,
    }


def import_rest(library: Library, articles: list[dict[str, Any]], start: int, total: int) -> dict[str, float]:
    if start >= total:
        return {"seconds": 0.0, "records": 0, "records_per_s": 0.0, "cores": 0.0}
    lines = jsonl(records(articles, start, total))
    clock, created = import_records(library, lines, "import (bulk)", total - start)
    return {
        "seconds": clock.wall,
        "records": created,
        "records_per_s": created / clock.wall,
        "cores": clock.cores,
    }


# --- 3. parallel rebuild ------------------------------------------------------------------------------------


class _StopRebuild(Exception):
    """Raised from the progress callback to end a baseline rebuild early: the engine rolls the new generation
    back and keeps serving the current one, so stopping leaves the library as it was."""


def timed_reindex(
    library: Library, workers: int, total: int, stop_after: int | None, mark: int
) -> dict[str, Any]:
    """Rebuild with `workers` processes; note the time at `mark` documents (to compare runs over the same
    prefix) and, with `stop_after`, abandon the rebuild there (the subset baseline)."""
    label = f"reindex workers={workers}" + (f" (first {stop_after:,})" if stop_after else "")
    progress = Progress(label, stop_after or total)
    started = time.perf_counter()
    at_mark: list[float] = []

    def on_document(n: int) -> None:
        progress(n)
        if progress.done == mark:
            at_mark.append(time.perf_counter() - started)
        if stop_after and progress.done >= stop_after:
            raise _StopRebuild

    count = stop_after or 0
    with Clock() as clock:
        try:
            count = library.reindex(workers=workers, progress=on_document)
        except _StopRebuild:
            pass
    progress.finish()
    return {
        "workers": workers,
        "records": count,
        "seconds": clock.wall,
        "records_per_s": count / clock.wall,
        "mark_records_per_s": mark / at_mark[0] if at_mark else count / clock.wall,
        "cores_parent": clock.cores,
    }


def measure_rebuild(library: Library, total: int, baseline_records: int, workers: int) -> dict[str, Any]:
    # A one-worker rebuild of everything would take as long as the import's analysis again, so by default the
    # baseline covers a prefix; the parallel rebuild is timed at the same prefix too, so the speed-up compares
    # like with like (neither includes the final commit), and over everything, commit included.
    subset = baseline_records if 0 < baseline_records < total else None
    mark = subset or total
    single = timed_reindex(library, 1, total, stop_after=subset, mark=mark)
    parallel = timed_reindex(library, workers, total, stop_after=None, mark=mark)
    check(library.engine.count() == total, f"{library.engine.count()} documents indexed, {total} expected")
    speedup = parallel["mark_records_per_s"] / single["mark_records_per_s"]
    return {"single": single, "parallel": parallel, "mark": mark, "speedup": speedup}


# --- 4./5. queries and latency ------------------------------------------------------------------------------

_KANA_ONLY = re.compile(r"[\u3041-\u3096\u30a1-\u30fa\u30fc]+")
_KANJI = re.compile(r"[\u4e00-\u9fff]")
_NOUN_KINDS = ("普通名詞", "固有名詞")
# Share of each kind of query in the mix; "1 word" takes the rounding remainder.
QUERY_MIX = {
    "1 word": 0.30,
    "2 words": 0.20,
    "3 words": 0.10,
    "katakana": 0.08,
    "hiragana reading": 0.08,
    "phrase": 0.12,
    "1 word + kind": 0.06,
    "1 word + year": 0.06,
}


@dataclass(frozen=True)
class BenchQuery:
    kind: str  # its bucket in QUERY_MIX, to show latency per kind
    query: Query


def _nouns(morphemes: list[Morpheme]) -> list[Morpheme]:
    return [
        m
        for m in morphemes
        if m.part_of_speech()[0] == "名詞" and m.part_of_speech()[1] in _NOUN_KINDS and len(m.surface()) >= 2
    ]


def _phrases(morphemes: list[Morpheme], norm: str) -> list[str]:
    """Spans of 2-3 consecutive words without spaces or symbols, as a reader would paste them in quotes."""
    spans = []
    for i in range(len(morphemes)):
        for width in (2, 3):
            window = morphemes[i : i + width]
            if len(window) == width and all(
                m.part_of_speech()[0] not in ("空白", "補助記号") for m in window
            ):
                text = norm[window[0].begin() : window[-1].end()]
                if len(text) >= 4:
                    spans.append(text)
    return spans


def _one_query(name: str, article: dict[str, Any], tokenizer: Tokenizer, rng: random.Random) -> Query | None:
    # Titles are normalized as the analyzer does, so the surfaces taken from them are what a user would type.
    norm = normalize_text(article["title"])
    morphemes = list(tokenizer.tokenize(norm))
    nouns = _nouns(morphemes)
    if name in ("1 word", "2 words", "3 words"):
        k = int(name[0])
        distinct = list(dict.fromkeys(m.surface() for m in nouns))  # words of one title, so they co-occur
        return Query(text=" ".join(rng.sample(distinct, k))) if len(distinct) >= k else None
    if name == "katakana":
        kana = [m.surface() for m in nouns if _KANA_ONLY.fullmatch(m.surface()) and len(m.surface()) >= 3]
        return Query(text=rng.choice(kana)) if kana else None
    if name == "hiragana reading":
        # A kanji noun typed as its reading (東京 → とうきょう): found only through the reading stream.
        kanji = [m for m in nouns if _KANJI.search(m.surface()) and _KANA_ONLY.fullmatch(m.reading_form())]
        return Query(text=jaconv.kata2hira(rng.choice(kanji).reading_form())) if kanji else None
    if name == "phrase":
        spans = _phrases(morphemes, norm)
        return Query(text=f'"{rng.choice(spans)}"') if spans else None
    if not nouns:
        return None
    word = rng.choice(nouns).surface()
    if name == "1 word + kind":
        return Query(text=word, kind=("page",))
    return Query(text=word, year=(article["date"][:4],))


def build_queries(articles: list[dict[str, Any]], count: int, seed: int) -> list[BenchQuery]:
    """Distinct queries a reader of these articles might type, taken from random titles in QUERY_MIX shares:
    1-3 nouns (AND), a katakana word, a kanji word typed in hiragana, a quoted phrase, a noun with a kind or
    publication-year filter."""
    rng = random.Random(seed)
    tokenizer = _open_dictionary().create(SplitMode.C)
    wanted = {name: round(share * count) for name, share in QUERY_MIX.items()}
    wanted["1 word"] += count - sum(wanted.values())
    seen: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()
    out: list[BenchQuery] = []
    for _ in range(count * 200):  # bounded, in case a tiny corpus cannot give enough distinct queries
        open_kinds = [name for name, left in wanted.items() if left]
        if not open_kinds:
            break
        name = rng.choice(open_kinds)
        article = rng.choice(articles)
        query = _one_query(name, article, tokenizer, rng)
        if query is None or (query.text, query.kind, query.year) in seen:
            continue
        seen.add((query.text, query.kind, query.year))
        wanted[name] -= 1
        out.append(BenchQuery(name, query))
    rng.shuffle(out)  # mixed order, so that no kind meets a cold or a warm cache as a block
    return out


def engine_query(library: Library, query: Query) -> EngineQuery:
    """The EngineQuery search() sends for `query`: the same parse, analysed clauses, filters and facets."""
    groups, excluded, _terms = compile_query(parse_query(query.text), library.analyzer)
    return EngineQuery(
        must=groups,
        must_not=excluded,
        filters=Filters(kind=query.kind, year=query.year),
        sort=query.sort if groups else "newest",
        limit=query.size,
        facets=FACET_FIELDS,
    )


def measure_latency(library: Library, queries: list[BenchQuery], rounds: int) -> dict[str, Any]:
    """Per query: search() (the whole path); engine.search() (the same EngineQuery with its count, facets and
    stored documents, no analysis or snippets: where the difference goes); the raw tantivy top-10 of the same
    query object built by the engine's `_build_query`. Interleaved query by query, so that load from the
    neighbours on a shared machine hits all three alike."""
    engine = library.engine
    prepared = [engine_query(library, q.query) for q in queries]
    compiled = [engine._build_query(eq) for eq in prepared]  # type: ignore[attr-defined]
    searcher = engine._current().searcher()  # type: ignore[attr-defined]
    totals: list[int] = []
    zero = relaxed = 0
    # One untimed pass: page cache, the analyzer's word cache and tantivy's caches as in a server that is up.
    progress = Progress("search warm-up", len(queries))
    for q, eq, tq in zip(queries, prepared, compiled, strict=True):
        results = library.search(q.query)
        engine.search(eq)
        searcher.search(tq, limit=10)
        totals.append(results.total)
        zero += results.total == 0
        relaxed += results.relaxed
        progress()
    progress.finish()
    full: list[float] = []
    mid: list[float] = []
    raw: list[float] = []
    # CPU time of this thread, on which tantivy-py searches and aggregates: what the latency would be without
    # the waits for a core that the neighbours on a shared machine cause.
    full_cpu: list[float] = []
    raw_cpu: list[float] = []
    by_kind: dict[str, list[float]] = {}
    clock, cpu = time.perf_counter, time.thread_time
    progress = Progress("search timed", len(queries) * rounds)
    for _ in range(rounds):
        for q, eq, tq in zip(queries, prepared, compiled, strict=True):
            c0, t0 = cpu(), clock()
            library.search(q.query)
            t1, c1 = clock(), cpu()
            engine.search(eq)
            c2, t2 = cpu(), clock()
            searcher.search(tq, limit=10)
            t3, c3 = clock(), cpu()
            full.append((t1 - t0) * 1000)
            mid.append((t2 - t1) * 1000)
            raw.append((t3 - t2) * 1000)
            full_cpu.append((c1 - c0) * 1000)
            raw_cpu.append((c3 - c2) * 1000)
            by_kind.setdefault(q.kind, []).append((t1 - t0) * 1000)
            progress()
    progress.finish()
    return {
        "full": percentiles(full),
        "engine": percentiles(mid),
        "raw": percentiles(raw),
        "full_cpu": percentiles(full_cpu),
        "raw_cpu": percentiles(raw_cpu),
        "by_kind": by_kind,
        "totals": totals,
        "zero": zero,
        "relaxed": relaxed,
    }


# --- report -------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def dictionary_mib() -> float:
    import sudachidict_core  # the package the analyzer opens (DICTIONARY_PACKAGE)

    return (Path(sudachidict_core.__file__).parent / "resources" / "system.dic").stat().st_size / 2**20


def _ms(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" if v >= 1 else f"{v:.3f}" for v in values) + " ms"


def figure_rows(args: argparse.Namespace, facts: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, meets) rows of the main table."""
    raw, ingest, rest, rebuild, lat = (facts[k] for k in ("raw", "ingest", "rest", "rebuild", "latency"))
    single, parallel = rebuild["single"], rebuild["parallel"]
    ingest_ratio = ingest["records_per_s"] / raw["records_per_s"]
    ingest_cpu_ratio = ingest["records_per_cpu_s"] / raw["records_per_cpu_s"]
    search_ratio = lat["full"][0] / lat["raw"][0]
    import_seconds = ingest["seconds"] + rest["seconds"]
    w = args.workers

    def meets(ok: bool) -> str:
        return "yes" if ok else "NO"

    def rate(chars_per_s: float, records_per_s: float) -> str:
        return f"{chars_per_s:,.0f} chars/s = {records_per_s:,.1f} rec/s"

    return [
        ("1 raw SudachiPy, 1 core", rate(raw["chars_per_s"], raw["records_per_s"]), "limit", ""),
        ("2 import_lines, 1 process", rate(ingest["chars_per_s"], ingest["records_per_s"]), "", ""),
        (
            "  import / raw",
            f"{ingest_ratio:.2f}",
            f">= {INGEST_TARGET}",
            meets(ingest_ratio >= INGEST_TARGET),
        ),
        (
            "  import / raw, by CPU time",
            f"{ingest_cpu_ratio:.2f}",
            f">= {INGEST_TARGET}",
            meets(ingest_cpu_ratio >= INGEST_TARGET),
        ),
        (
            "  import of the full set",
            f"{facts['records']:,} rec in {import_seconds:,.0f} s = "
            f"{facts['records'] / import_seconds:,.1f} rec/s",
            "",
            "",
        ),
        (
            f"3 reindex workers=1, first {rebuild['mark']:,}",
            f"{single['mark_records_per_s']:,.1f} rec/s",
            "",
            "",
        ),
        (
            f"  reindex workers={w}, first {rebuild['mark']:,}",
            f"{parallel['mark_records_per_s']:,.1f} rec/s",
            "",
            "",
        ),
        (f"  speed-up workers={w} / workers=1", f"{rebuild['speedup']:.2f}x", "", ""),
        (
            f"  reindex workers={w}, all {parallel['records']:,}",
            f"{parallel['records_per_s']:,.1f} rec/s, {parallel['seconds']:,.0f} s (commit incl.)",
            "",
            "",
        ),
        ("4 search() p50 / p95 / p99", _ms(lat["full"]), "", ""),
        ("  engine.search() p50 / p95 / p99", _ms(lat["engine"]), "", ""),
        ("5 raw tantivy top-10 p50 / p95 / p99", _ms(lat["raw"]), "", ""),
        (
            "  p50 search() / p50 raw",
            f"{search_ratio:.1f}",
            f"<= {SEARCH_TARGET:g}",
            meets(search_ratio <= SEARCH_TARGET),
        ),
        ("6 peak RSS, this process", f"{facts['rss_self']:,.0f} MiB", "", ""),
        ("  peak RSS, largest rebuild worker", f"{facts['rss_children']:,.0f} MiB", "", ""),
    ]


def print_report(args: argparse.Namespace, facts: dict[str, Any]) -> None:
    ingest, rest, rebuild, lat = (facts[k] for k in ("ingest", "rest", "rebuild", "latency"))
    single, parallel = rebuild["single"], rebuild["parallel"]
    copies = facts["copies"]
    sample, records_, chars = len(facts["sample"]), facts["records"], facts["chars"]

    print()
    print("社会ライブラリ core benchmark (benchmarks/core.py)")
    print(
        f"machine   {facts['cpu_model']}, {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )
    print(f"software  {facts['analyzer_version']}, tantivy-py {version('tantivy')}, SQLite via SQLAlchemy")
    print(
        f"data      {records_:,} records ({copies} {'copy' if copies == 1 else 'copies'} of "
        f"{facts['articles']:,} ldcc articles), {chars:,} chars of title + body, "
        f"{chars / records_:,.0f} per record"
    )
    print(
        f"sample    phases 1-2: the first {sample:,} records, {facts['sample_chars']:,} chars; "
        f"raw = best of {args.repeat} passes, import = one pass into the empty library"
    )
    print(
        f"queries   {len(facts['queries'])} distinct x {args.rounds} timed rounds after one warm-up round "
        f"(seed {args.seed})"
    )
    print(f"on disk   {facts['db_mib']:,.0f} MiB SQLite, {facts['index_mib']:,.0f} MiB tantivy index")
    # Wall-time figures on a shared machine mean little without the load they were taken under.
    print(
        f"load avg  {' '.join(f'{v:.1f}' for v in facts['load_start'])} at the start, "
        f"{' '.join(f'{v:.1f}' for v in facts['load_end'])} at the end (1, 5, 15 min)"
    )
    print()

    rows = figure_rows(args, facts)
    header = ("figure", "value", "target", "meets")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

    print()
    print("notes")
    print(
        f"  CPU / wall: import {ingest['cores']:.2f} cores, rest of the import {rest['cores']:.2f} "
        f"(tantivy commits and merges on threads of its own); reindex parent {single['cores_parent']:.2f} "
        f"(workers=1), {parallel['cores_parent']:.2f} (workers={args.workers}; the workers' CPU is not in it)"
    )
    if rest["records"]:
        print(
            f"  import of records {sample:,}..{records_:,} alone (into a growing store): "
            f"{rest['records_per_s']:,.1f} rec/s"
        )
    print(
        f"  query mix: {', '.join(f'{k} {v}' for k, v in Counter(q.kind for q in facts['queries']).items())}"
    )
    print(
        f"  hits: median total {statistics.median(lat['totals']):,.0f}, {lat['zero']} queries with none, "
        f"{lat['relaxed']} relaxed to any word (search() then asks the engine twice, raw once)"
    )
    by_kind = sorted(lat["by_kind"].items())
    print("  search() p50 by kind: " + ", ".join(f"{k} {statistics.median(v):.1f} ms" for k, v in by_kind))
    full_cpu, raw_cpu = lat["full_cpu"][0], lat["raw_cpu"][0]
    print(
        f"  p50 on thread CPU time (no waits for a core): search() {full_cpu:.2f} ms, raw {raw_cpu:.3f} ms, "
        f"ratio {full_cpu / raw_cpu:.1f}"
    )
    print(
        "  raw = searcher.search(query, limit=10) (tantivy's default count=True): no facets, snippets or "
        "stored documents; engine.search() adds those but the analysis and snippets"
    )
    print(
        f"  peak RSS is the process high-water mark: {facts['rss_after_import']:,.0f} MiB after the import, "
        f"{facts['rss_after_reindex']:,.0f} MiB after the rebuilds; RSS counts the touched pages of the "
        f"mmapped Sudachi dictionary ({facts['dictionary_mib']:,.0f} MiB, shared through the page cache)"
    )
    print(f"  whole run: {facts['run_seconds'] / 60:,.1f} min")


# --- main ---------------------------------------------------------------------------------------------------


def open_library(data_dir: Path) -> Library:
    # Importing into existing data would time "unchanged" outcomes, not ingest.
    check(
        not (data_dir.exists() and any(data_dir.iterdir())), f"{data_dir} is not empty; give a new --data-dir"
    )
    settings = Settings.from_env(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'library.db'}")
    return Library.open(settings)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000, help="records at full size (default 100,000)")
    parser.add_argument("--sample", type=int, default=3_000, help="records of phases 1-2 (default 3,000)")
    parser.add_argument("--repeat", type=int, default=3, help="raw SudachiPy passes; the best is the limit")
    parser.add_argument(
        "--workers", type=int, default=2, help="processes of the parallel rebuild (default 2)"
    )
    parser.add_argument(
        "--baseline-records",
        type=int,
        default=10_000,
        help="records of the workers=1 rebuild (default 10,000; 0 or >= --records: all)",
    )
    parser.add_argument("--queries", type=int, default=300, help="distinct queries (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the queries (default 3)")
    parser.add_argument("--seed", type=int, default=SEED, help="query sampling seed")
    parser.add_argument(
        "--data-dir", type=Path, help="empty directory to build in (default: a temporary one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args()
    if not 0 < args.sample <= args.records:
        parser.error("--sample must be between 1 and --records")
    if args.workers < 2:
        parser.error("--workers must be 2 or more (workers=1 is the baseline)")
    return args


def main() -> None:
    args = parse_args()
    run_started = time.perf_counter()
    articles = load_articles()
    sample = list(records(articles, 0, args.sample))
    validate_record(sample[0])  # the mapping makes a valid record (import_lines validates every one again)
    facts: dict[str, Any] = {
        "records": args.records,
        "articles": len(articles),
        "copies": -(-args.records // len(articles)),
        "chars": sum(map(record_chars, records(articles, 0, args.records))),
        "sample": sample,
        "sample_chars": sum(map(record_chars, sample)),
        "cpu_model": cpu_model(),
        "load_start": os.getloadavg(),
        "dictionary_mib": dictionary_mib(),
    }

    owned = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="bench-core-")) if owned else args.data_dir.resolve()
    log(f"data directory: {data_dir}")
    library = open_library(data_dir)
    try:
        log("1/5 raw SudachiPy")
        facts["raw"] = measure_raw_sudachi(sample, args.repeat)
        log("2/5 ingest")
        facts["ingest"] = measure_ingest(library, sample)
        facts["analyzer_version"] = library.analyzer.version
        facts["rest"] = import_rest(library, articles, args.sample, args.records)
        facts["rss_after_import"] = peak_rss_mib()
        log("3/5 rebuild")
        facts["rebuild"] = measure_rebuild(library, args.records, args.baseline_records, args.workers)
        facts["rss_after_reindex"] = peak_rss_mib()
        facts["rss_children"] = peak_rss_mib(resource.RUSAGE_CHILDREN)
        log("4-5/5 search latency")
        # Titles of indexed articles only: with fewer records than articles, the others would find nothing.
        facts["queries"] = build_queries(articles[: args.records], args.queries, args.seed)
        facts["latency"] = measure_latency(library, facts["queries"], args.rounds)
        facts["rss_self"] = peak_rss_mib()
        facts["db_mib"] = sum(p.stat().st_size for p in data_dir.glob("library.db*")) / 2**20
        facts["index_mib"] = dir_mib(library.settings.index_dir)
        facts["run_seconds"] = time.perf_counter() - run_started
        facts["load_end"] = os.getloadavg()
        print_report(args, facts)
    finally:
        library.close()
        if owned and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif owned:
            log(f"kept {data_dir}")


if __name__ == "__main__":
    main()
