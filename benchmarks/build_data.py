"""Build a data directory of about N records for the load benchmarks (api_load.py, load_t29.py; issue 3: ~100k).

    .venv/bin/python benchmarks/build_data.py --data-dir /tmp/bench-100k --records 100000

The demo set (notices, products, programs, facilities: what the realistic queries look for), then copies of
the livedoor news corpus (/work/shared/corpus/ldcc.jsonl.gz, read at run time, never copied into the repository;
see benchmarks/core.py) as `page` records until the directory holds N records. An existing directory is topped
up, not rebuilt: the corpus records have fixed ids, so a second run only imports what is missing.
Prints the import rate at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core import CORPUS, jsonl, load_articles, records  # noqa: E402  (the benchmark's own corpus helpers)

from sqlalchemy import func, select  # noqa: E402

from indexer.library import Library  # noqa: E402
from indexer.store import RecordRow  # noqa: E402

BATCH_REPORT = 5_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--records", type=int, default=100_000, help="records in all (default 100,000)")
    args = parser.parse_args()
    if not CORPUS.exists():
        raise SystemExit(f"{CORPUS} is missing: the corpus records cannot be made")
    os.environ["LIBRARY_DATA_DIR"] = str(args.data_dir)  # the database and the index live there
    library = Library.open()
    with library.store.session(readonly=True) as session:
        empty = not session.scalar(select(func.count()).select_from(RecordRow))
    if empty:
        demo = resources.files("indexer") / "demo" / "records.jsonl"
        with resources.as_file(demo) as path, path.open(encoding="utf-8") as lines:
            library.import_lines(lines, author="demo", summary="デモデータの取り込み")
    have = library.stats()["records"]
    articles = load_articles()
    # Corpus records are numbered in order (core.records): a second run starts after the ones it has.
    with library.store.session(readonly=True) as session:
        start = session.scalar(select(func.count()).where(RecordRow.data["source"].as_string() == "ldcc")) or 0
    wanted = max(0, args.records - have)
    print(f"build_data: {have:,} records in {args.data_dir}; importing {wanted:,} corpus records", flush=True)
    started, done = time.perf_counter(), 0

    def on_line(_size: int) -> None:
        nonlocal done
        done += 1
        if done % BATCH_REPORT == 0:
            rate = done / (time.perf_counter() - started)
            print(f"  {done:,}/{wanted:,} ({rate:.0f} records/s)", flush=True)

    report = library.import_lines(
        jsonl(records(articles, start, start + wanted)),  # type: ignore[arg-type]
        author="benchmark",
        summary="負荷試験用データ",
        on_line=on_line,
    )
    seconds = time.perf_counter() - started
    print(f"build_data: {library.stats()['records']:,} records; imported {report.created:,} in {seconds:.0f} s "
          f"({report.created / seconds if seconds else 0:.0f} records/s), {len(report.errors)} errors")


if __name__ == "__main__":
    main()
