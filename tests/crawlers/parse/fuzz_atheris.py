"""Coverage-guided fuzzing of the parsers with atheris (RELIABILITY T16), run outside pytest.

atheris is in the test extras; test_atheris.py runs every target for a few minutes in CI. For a longer run,
one target per process:

    python tests/crawlers/parse/fuzz_atheris.py html -max_total_time=28800 -timeout=2 work/corpus-html

Targets: html, feed, csv, upload. A failure is any exception but ParseError (warnings count, as in the
tests), a draft that does not validate, or an input over ``-timeout`` seconds; libFuzzer writes it as
``crash-*`` or ``timeout-*``. Copy it to ``crashers/<target>-<what>`` so the tests replay it.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable

import atheris

# Coverage is collected from our parsers and the parsing libraries; the rest (pydantic, SQLAlchemy through
# indexer.ingest) is imported first, uninstrumented, which also keeps start-up short.
import indexer.ingest  # noqa: F401
import schemas
from crawlers.charset import decode_document  # noqa: F401

with atheris.instrument_imports(include=["crawlers", "bs4", "soupsieve", "feedparser", "pypdf"]):
    from crawlers.parse import ParseError
    from crawlers.parse.feed import feed_entry_draft, parse_feed
    from crawlers.parse.html import extract_html, page_draft
    from crawlers.parse.opendata import parse_opendata_csv
    from crawlers.parse.upload import parse_upload

URL = "https://www.example.jp/news/1.html"


def _valid(draft: dict) -> None:
    schemas.validate_record({**draft, "source": "fuzz", "provenance": "government"})


def _html(data: bytes) -> None:
    _valid(page_draft(extract_html(data, url=URL)))


def _feed(data: bytes) -> None:
    for entry in parse_feed(data, url=URL).entries:
        try:
            _valid(feed_entry_draft(entry))
        except ParseError:
            continue


def _csv(data: bytes) -> None:
    for draft in parse_opendata_csv(data).drafts:
        _valid(draft)


def _upload(data: bytes) -> None:
    # The first byte picks the file name, so the extension dispatch is fuzzed too.
    names = ["a.csv", "a.json", "a.jsonl", "a.html", "a.pdf", "a"]
    parse_upload(names[data[0] % len(names)] if data else "a", data[1:], url=URL)


TARGETS: dict[str, Callable[[bytes], None]] = {"html": _html, "feed": _feed, "csv": _csv, "upload": _upload}


def main() -> None:
    target = TARGETS[sys.argv[1]]
    warnings.simplefilter("error")

    def one_input(data: bytes) -> None:
        with contextlib.suppress(ParseError):
            target(data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
