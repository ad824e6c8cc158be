"""Analyzer throughput on the livedoor news corpus: raw SudachiPy (the limit), Analyzer.analyze, make_snippet.

    .venv/bin/python benchmarks/analysis_speed.py [--docs N] [--repeat R]

analyze should reach at least 0.7 of the raw rate; a snippet should take well under 1 ms for a
5,000-character body. Times are CPU time of this process, and each figure is the best of R passes
with the cases interleaved: on a shared machine wall-clock passes vary by a factor of two.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path

from sudachipy import SplitMode

from indexer.analysis import Analyzer, get_analyzer, make_snippet
from indexer.analysis.analyzer import CHUNK_CHARS, _chunks, _open_dictionary

CORPUS = Path("/work/shared/corpus/ldcc.jsonl.gz")


def load(limit: int) -> list[str]:
    texts = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            texts.append(f"{record['title']}\n{record['body']}")
            if len(texts) == limit:
                break
    return texts


def best_seconds(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best time of each run, the runs interleaved so that load from other processes hits them alike."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - started)
    return best


def raw_sudachi(texts: list[str]) -> Callable[[], None]:
    """Mode C tokenize + normalized_form + reading_form + A split of every morpheme, nothing else."""
    tokenizer = _open_dictionary().create(SplitMode.C)
    mode_a = SplitMode.A

    def run() -> None:
        for text in texts:
            for _, chunk in _chunks(text):  # the corpus has no text over CHUNK_CHARS; this costs nothing
                for m in tokenizer.tokenize(chunk):
                    m.normalized_form()
                    m.reading_form()
                    for unit in m.split(mode_a):
                        unit.normalized_form()
                        unit.reading_form()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=2000, help="articles to use (the corpus has 7,367)")
    parser.add_argument("--repeat", type=int, default=3, help="passes per figure; the best is reported")
    parser.add_argument("--snippets", type=int, default=1000, help="make_snippet calls per case")
    args = parser.parse_args()

    texts = load(args.docs)
    chars = sum(map(len, texts))
    analyzer = get_analyzer()
    print(
        f"{len(texts)} articles, {chars:,} characters, {analyzer.version}, chunks of {CHUNK_CHARS} characters"
    )

    fresh = Analyzer()
    started = time.process_time()
    for text in texts:
        fresh.analyze(text)
    cold = chars / (time.process_time() - started)

    def analyze_all() -> None:
        for text in texts:
            analyzer.analyze(text)

    seconds = best_seconds({"raw": raw_sudachi(texts), "analyze": analyze_all}, args.repeat)
    raw, analyze = chars / seconds["raw"], chars / seconds["analyze"]
    print(f"raw SudachiPy (C + forms + readings + A split): {raw:10,.0f} chars/s")
    print(f"Analyzer.analyze, word cache warm:             {analyze:10,.0f} chars/s  ({analyze / raw:.2f})")
    print(f"Analyzer.analyze, first pass of a new Analyzer: {cold:9,.0f} chars/s  (one pass: noisier)")

    # Snippets as the search page makes them, for 5,000-character bodies (articles repeated to that length).
    bodies = [(t * (5000 // len(t) + 1))[:5000] for t in texts[: args.snippets]]
    cases = {
        "title words (found as substrings)": [
            analyzer.query_terms(t.split("\n", 1)[0][:12]) for t in texts[: len(bodies)]
        ],
        "kana word absent (1,000 chars tokenized)": [analyzer.query_terms("ぬえ")] * len(bodies),
        "word absent, no character shared": [analyzer.query_terms("鵺")] * len(bodies),
    }
    seconds = best_seconds(
        {
            name: lambda queries=queries: sum(
                len(make_snippet(b, q)) for b, q in zip(bodies, queries, strict=True)
            )
            for name, queries in cases.items()
        },
        args.repeat,
    )
    for name, total in seconds.items():
        print(f"make_snippet, {name + ':':42} {total / len(bodies) * 1e3:6.3f} ms per call")


if __name__ == "__main__":
    main()
