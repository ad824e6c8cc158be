"""Where a search request's time goes: cProfile over the Flask test client (issue 3, search performance).

    .venv/bin/python benchmarks/profile_search.py                      # the demo records only
    .venv/bin/python benchmarks/profile_search.py --records 20000      # demo + 20,000 livedoor articles
    .venv/bin/python benchmarks/profile_search.py --data-dir /tmp/lib20k --records 20000   # built once, reused

The data directory holds the demo records (urgent notices included) plus `--records` articles of the livedoor
corpus as `page` records (as benchmarks/core.py builds them). It is built when empty and reused when it already
holds a library, so that repeated profiles skip the import. Each of benchmarks/api_load.py's search URLs is
requested once to warm the caches, then `--passes` times under cProfile; the script prints the mean time per
request and the functions with the most own time and the most cumulative time. The search log stays on (it is
part of a request's cost); the public search's rate limit (Flask-Limiter) is switched off, or it would answer 429.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import json
import os
import pstats
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.api_load import QUERIES
from indexer.config import Settings
from indexer.library import Library
from search_app import create_app, get_library

CORPUS = Path("/work/shared/corpus/ldcc.jsonl.gz")
DEMO_RECORDS = resources.files("indexer") / "demo" / "records.jsonl"


BUILT_MARKER = "benchmark-built"  # written last by build(): the import finished, for this database


def database_url_for(directory: Path) -> str:
    """LIBRARY_DATABASE_URL when set (a PostgreSQL run: the index still lives in `directory`), else its SQLite."""
    return os.environ.get("LIBRARY_DATABASE_URL") or f"sqlite:///{directory / 'library.db'}"


def settings_for(directory: Path) -> Settings:
    return Settings.from_env(data_dir=directory, database_url=database_url_for(directory))


def is_built(directory: Path) -> bool:
    """A finished build for this directory's database (a SQLite file from before the marker counts too)."""
    marker = directory / BUILT_MARKER
    if marker.exists():
        return marker.read_text(encoding="utf-8").strip() == database_url_for(directory)
    return "LIBRARY_DATABASE_URL" not in os.environ and (directory / "library.db").exists()


def corpus_lines(count: int) -> list[str]:
    """`count` livedoor articles as page records (copies with new ids past the corpus size)."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as lines:
        articles = [json.loads(line) for line in lines]
    out = []
    for i in range(count):
        copy, index = divmod(i, len(articles))
        article = articles[index]
        record = {
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
        out.append(json.dumps(record, ensure_ascii=False) + "\n")
    return out


def build(directory: Path, records: int) -> None:
    library = Library.open(settings_for(directory))
    try:
        started = time.perf_counter()
        with DEMO_RECORDS.open(encoding="utf-8") as lines:
            library.import_lines(lines, author="benchmark", summary="profile_search.py")
        if records:
            library.import_lines(
                io.StringIO("".join(corpus_lines(records))), author="benchmark", summary="profile"
            )
        (directory / BUILT_MARKER).write_text(database_url_for(directory) + "\n", encoding="utf-8")
        print(f"built {directory} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    finally:
        library.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, help="built when empty, reused otherwise (default: a temp dir)"
    )
    parser.add_argument("--records", type=int, default=0, help="livedoor articles besides the demo records")
    parser.add_argument("--passes", type=int, default=20, help="profiled passes over the search URLs")
    parser.add_argument("--top", type=int, default=30, help="functions listed per table")
    args = parser.parse_args()

    directory = args.data_dir or Path(tempfile.mkdtemp(prefix="profile-search-"))
    directory.mkdir(parents=True, exist_ok=True)
    if not is_built(directory):
        build(directory, args.records)
    app = create_app({"LIBRARY_SETTINGS": settings_for(directory), "RATELIMIT_ENABLED": False})
    client = app.test_client()
    urls = [f"/api/v1/search?{'&'.join(f'{k}={v}' for k, v in query.items())}" for query in QUERIES]
    try:
        for url in urls:  # warm: analyzer, caches, connections
            assert client.get(url).status_code == 200, url
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(args.passes):
            for url in urls:
                client.get(url)
        profiler.disable()
        elapsed = time.perf_counter() - started
        requests = args.passes * len(urls)
        total = client.get("/api/v1/search?size=1").get_json()["total"]
        print(
            f"{total:,} records; {requests} requests; {elapsed / requests * 1000:.2f} ms per request (profiled)"
        )
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
            print(out.getvalue())
    finally:
        get_library(app).close()


if __name__ == "__main__":
    main()
