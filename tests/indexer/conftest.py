"""A site that times every request it serves, for the crawl politeness tests (test_tasks, test_worker_redis)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class TimedSite(ThreadingHTTPServer):
    """Sections /<name>/0 … /<name>/<n-1> on 127.0.0.2, each page linking to the others of its section, and a
    robots.txt. Every request is answered after ``page_time`` s, and its start and end as the server saw them
    are kept: politeness is checked where it matters, at the server. The server itself would answer several
    requests at once (a thread each), so any overlap would show."""

    daemon_threads = True

    def __init__(self, sections: dict[str, int], page_time: float) -> None:
        site = self
        self.requests: list[tuple[str, float, float]] = []  # (path, start, end), time.monotonic()
        self._lock = threading.Lock()
        self.paths = {name: [f"/{name}/{number}" for number in range(count)] for name, count in sections.items()}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                start = time.monotonic()
                time.sleep(page_time)
                if self.path == "/robots.txt":
                    body, content_type = b"User-agent: *\nAllow: /\n", "text/plain"
                else:
                    section = self.path.split("/")[1]
                    links = "".join(f'<a href="{path}">{path}</a>' for path in site.paths.get(section, []))
                    body = (f"<html><head><title>お知らせ {self.path}</title></head><body><main>"
                            f"<p>{self.path} のお知らせです。</p>{links}</main></body></html>").encode()
                    content_type = "text/html; charset=utf-8"
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                with site._lock:
                    site.requests.append((self.path, start, time.monotonic()))

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.2", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.2:{self.server_address[1]}{path}"

    def gaps(self) -> list[float]:
        """Seconds from the end of each request to the start of the next one (negative: they overlapped)."""
        with self._lock:
            ordered = sorted(self.requests, key=lambda request: request[1])
        return [after[1] - before[2] for before, after in itertools.pairwise(ordered)]

    def hits(self, path: str) -> int:
        with self._lock:
            return sum(1 for requested, _, _ in self.requests if requested == path)

    def interleaved(self) -> bool:
        """Did requests of different sections alternate (the crawls really ran at the same time)?"""
        with self._lock:
            sections = [path.split("/")[1] for path, _, _ in sorted(self.requests, key=lambda r: r[1])
                        if path != "/robots.txt"]
        return sum(1 for before, after in itertools.pairwise(sections) if before != after) > 1

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture()
def make_timed_site() -> Iterator[Callable[..., TimedSite]]:
    sites: list[TimedSite] = []

    def make(sections: dict[str, int], page_time: float = 0.05) -> TimedSite:
        sites.append(TimedSite(sections, page_time))
        return sites[-1]

    yield make
    for site in sites:
        site.close()
