"""Crawl speed: pages/s of a local crawl through the whole pipeline, against raw fetch + parse of the same pages.

    .venv/bin/python benchmarks/crawl_speed.py               # 3,000 pages
    .venv/bin/python benchmarks/crawl_speed.py --pages 500   # a quick run

The site is generated: a tree in which each page links to the top page, its parent and up to ten children,
with the text of a livedoor news article (/work/shared/corpus/ldcc.jsonl.gz, read at run time, never copied
into the repository; generated sentences when it is absent). It is served by another process on 127.0.0.1,
so the server does not compete with the crawler for this process's interpreter. Politeness delays are off.

Phases, on the same pages, one after the other:

1. raw: ``SafeFetcher.fetch`` + ``extract_html`` + ``page_draft`` of every URL in turn, nothing stored: what
   fetching and parsing alone cost, robots.txt obeyed;
2. crawl: ``crawlers.pipeline.crawl`` of a web source into an empty library (SQLite + tantivy): the frontier,
   ingest (validation, record, revision, outbox, one transaction per page) and the outbox drains (SudachiPy
   analysis and indexing) included;
3. re-crawl: the same source again; the server sends no validators, so every page is fetched, parsed and
   compared again, and nothing changes.

It prints figures and never fails on one: the machine is shared. Progress goes to stderr, figures to stdout.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from crawlers.fetch import SafeFetcher
from crawlers.netguard import AllowList
from crawlers.parse.html import extract_html, page_draft
from crawlers.pipeline import crawl
from crawlers.policy import FetchPolicy
from crawlers.sources import add_source
from indexer.config import Settings
from indexer.library import Library

CORPUS = Path("/work/shared/corpus/ldcc.jsonl.gz")
HOST = "127.0.0.1"
FANOUT = 10
BODY_CHARS = 2000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def articles(count: int) -> Iterator[tuple[str, str]]:
    if CORPUS.exists():
        with gzip.open(CORPUS, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines):
                if number >= count:
                    return
                article = json.loads(line)
                yield article["title"], article["body"][:BODY_CHARS]
    for number in range(count):
        yield f"お知らせ {number}", f"これは {number} 番目のお知らせです。市役所の窓口は平日に開いています。" * 20


def build_site(count: int) -> dict[str, bytes]:
    """Page i is /p/i; its children are FANOUT * i + 1 ... FANOUT * i + FANOUT."""
    texts = list(articles(count))
    while len(texts) < count:  # a corpus shorter than the site: articles repeat under new numbers
        texts.append(texts[len(texts) % len(texts)])
    pages = {}
    for number, (title, body) in enumerate(texts):
        children = range(FANOUT * number + 1, min(FANOUT * number + FANOUT, count - 1) + 1)
        parent = [f"/p/{(number - 1) // FANOUT}"] if number else []
        links = ["/p/0", *parent, *(f"/p/{child}" for child in children)]
        paragraphs = "".join(f"<p>{html.escape(part)}</p>" for part in body.split("\n") if part.strip())
        anchors = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
        pages[f"/p/{number}"] = (
            f'<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{html.escape(title)} {number}'
            f'</title></head><body><nav><a href="/p/0">トップ</a></nav><main><h1>{html.escape(title)}</h1>'
            f"{paragraphs}<ul>{anchors}</ul></main><footer>サンプル市</footer></body></html>"
        ).encode()
    pages["/robots.txt"] = b"User-agent: *\nDisallow: /private/\n"
    return pages


def serve(pages: dict[str, bytes], ready: multiprocessing.Queue) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            kind = "text/plain" if self.path == "/robots.txt" else "text/html; charset=utf-8"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    ready.put(server.server_address[1])
    server.serve_forever()


def fetcher() -> SafeFetcher:
    return SafeFetcher(FetchPolicy(allow=AllowList.parse(HOST), delay=0.0))


def raw_rate(base: str, count: int) -> float:
    safe = fetcher()
    started = time.perf_counter()
    for number in range(count):
        result = safe.fetch(f"{base}/p/{number}")
        page_draft(extract_html(result.content, url=result.final_url, content_type=result.content_type))
    return count / (time.perf_counter() - started)


class TimedDrains:
    """Wraps the library's drain to tell how much of a crawl was indexing (analysis + engine writes)."""

    def __init__(self, library: Library) -> None:
        self.seconds = 0.0
        self._drain = library.drain
        library.drain = self  # the pipeline calls library.drain(); an instance attribute wins

    def __call__(self) -> object:
        started = time.perf_counter()
        try:
            return self._drain()
        finally:
            self.seconds += time.perf_counter() - started


def crawl_rate(library: Library, source_id: int, count: int, label: str) -> tuple[float, float, str]:
    """Pages/s of the crawl, and the share of its time spent draining the outbox into the index."""
    drains = TimedDrains(library)
    shown = time.perf_counter()

    def progress(counts: object, pending: int) -> None:
        nonlocal shown
        if time.perf_counter() - shown > 15:
            shown = time.perf_counter()
            log(f"  {label}: {counts}, {pending} queued")

    started = time.perf_counter()
    try:
        summary = crawl(library, source_id, fetcher=fetcher(), progress=progress)
    finally:
        del library.drain
    elapsed = time.perf_counter() - started
    if summary.counts.fetched != count:
        raise SystemExit(f"benchmark setup: {label} fetched {summary.counts.fetched} pages, not {count}")
    return count / elapsed, drains.seconds / elapsed, summary.counts.text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pages", type=int, default=3000)
    args = parser.parse_args()
    count = args.pages
    log(f"building a site of {count:,} pages")
    pages = build_site(count)
    ready: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.get_context("fork").Process(target=serve, args=(pages, ready), daemon=True)
    server.start()
    base = f"http://{HOST}:{ready.get(timeout=30)}"
    depth = 1
    while FANOUT ** depth < count:
        depth += 1
    try:
        with tempfile.TemporaryDirectory(prefix="crawl-speed-") as data_dir:
            library = Library.open(Settings.from_env(data_dir=Path(data_dir),
                                                     database_url=f"sqlite:///{data_dir}/library.db"))
            try:
                source = add_source(library.store, "web", [f"{base}/p/0"], provenance="government",
                                    depth=depth + 1, max_pages=count)
                log("loading the analyzer's dictionary (once per process, not part of any phase)")
                library.analyzer.analyze("準備")
                log("phase 1: raw fetch + parse")
                raw = raw_rate(base, count)
                log("phase 2: crawl into an empty library")
                first, first_indexing, first_counts = crawl_rate(library, source.id, count, "crawl")
                log("phase 3: re-crawl, nothing changed")
                again, _, again_counts = crawl_rate(library, source.id, count, "re-crawl")
            finally:
                library.close()
    finally:
        server.terminate()
    print(f"pages: {count:,} (corpus: {'ldcc' if CORPUS.exists() else 'generated'}), CPUs: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f}")
    print(f"raw fetch + parse:          {raw:7.1f} pages/s")
    print(f"crawl (store + index):      {first:7.1f} pages/s  ({first / raw:.2f} x raw)  {first_counts}")
    print(f"  of its time, indexing (outbox drains: SudachiPy analysis, tantivy writes): {first_indexing:.0%}")
    print(f"re-crawl (nothing changed): {again:7.1f} pages/s  ({again / raw:.2f} x raw)  {again_counts}")


if __name__ == "__main__":
    main()
