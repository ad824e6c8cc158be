"""Size, time and decompression limits (T13), retries, conditional GET, identity and politeness."""

from __future__ import annotations

import gzip
import itertools
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawlers.errors import (
    FetchError,
    FetchTimeout,
    ForbiddenAddress,
    HTTPStatusError,
    NetworkError,
    Rule,
    TooLarge,
)
from crawlers.fetch import SafeFetcher

KIB, MIB, GIB = 1024, 1024 * 1024, 1024 * 1024 * 1024
DECODE_STEP = 64 * KIB  # what "one chunk" past the cap can be, after decoding
HTML = {"Content-Type": "text/html; charset=utf-8"}


def _bomb(wbits: int, decoded: int = GIB) -> Iterator[bytes]:
    """About 1 MiB of compressed zeros that inflates to ``decoded`` bytes, produced lazily.

    After a full flush the compressor restarts from the same state, so one compressed MiB is repeated.
    The fetcher must hang up long before the (omitted) trailer.
    """
    zeros = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    yield compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)  # with the gzip/zlib header
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    yield from itertools.repeat(block, decoded // MIB - 1)


def _peak_rss_growth(action) -> int:
    """Peak resident memory growth (bytes) while ``action`` runs, from /proc/self/status."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pytest.skip("cannot reset the peak RSS counter here")

    def read(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * KIB
        raise AssertionError(field)

    before = read("VmRSS:")
    action()
    return read("VmHWM:") - before


@pytest.mark.parametrize(("encoding", "wbits"), [("gzip", 31), ("x-gzip", 31), ("deflate", 15),
                                                  ("deflate", -15)])
def test_t13_decompression_bombs_stop_at_the_cap(encoding, wbits, server, make_fetcher, elapsed) -> None:
    path = f"/bomb/{encoding}/{wbits}"
    server.route(path)(lambda request: request.stream(_bomb(wbits), HTML | {"Content-Encoding": encoding}))
    fetcher = make_fetcher()
    failure: list[TooLarge] = []

    def fetch() -> None:
        with pytest.raises(TooLarge) as refused:
            fetcher.fetch(server.url(path))
        failure.append(refused.value)

    growth = _peak_rss_growth(fetch)
    refused = failure[0]
    assert refused.rule == Rule.BODY_SIZE and refused.limit == 5 * MIB  # the HTML cap
    assert refused.limit < refused.received <= refused.limit + DECODE_STEP
    assert growth <= 100 * MIB
    assert elapsed() < 5


def test_t13_bomb_is_bounded_by_an_explicit_cap_too(server, make_fetcher) -> None:
    server.route("/bomb-csv")(lambda request: request.stream(_bomb(31), {"Content-Type": "text/csv",
                                                                         "Content-Encoding": "gzip"}))
    with pytest.raises(TooLarge) as refused:
        make_fetcher().fetch(server.url("/bomb-csv"), max_bytes=256 * KIB)
    assert 256 * KIB < refused.value.received <= 256 * KIB + DECODE_STEP


def test_t13_brotli_and_unknown_encodings_are_refused(server, make_fetcher) -> None:
    for coding in ("br", "zstd", "compress"):
        server.route(f"/coding/{coding}")(
            lambda request, coding=coding: request.reply(200, b"\x1b\x00junk",
                                                         HTML | {"Content-Encoding": coding}))
        with pytest.raises(NetworkError) as refused:
            make_fetcher().fetch(server.url(f"/coding/{coding}"))
        assert refused.value.rule == Rule.CONTENT_ENCODING


def test_compressed_pages_are_decoded(server, make_fetcher) -> None:
    page = "<p>図書館のお知らせ</p>".encode() * 100
    raw_deflate = zlib.compressobj(wbits=-15)
    bodies = {"gzip": gzip.compress(page), "deflate": zlib.compress(page),
              "raw-deflate": raw_deflate.compress(page) + raw_deflate.flush()}
    for name, body in bodies.items():
        coding = "deflate" if name == "raw-deflate" else name
        server.route(f"/compressed/{name}")(
            lambda request, body=body, coding=coding: request.reply(200, body,
                                                                    HTML | {"Content-Encoding": coding}))
        assert make_fetcher().fetch(server.url(f"/compressed/{name}")).content == page
    server.route("/compressed/corrupt")(
        lambda request: request.reply(200, b"\x1f\x8b\x08\x00garbage", HTML | {"Content-Encoding": "gzip"}))
    with pytest.raises(NetworkError) as refused:
        make_fetcher().fetch(server.url("/compressed/corrupt"))
    assert refused.value.rule == Rule.CONTENT_ENCODING


def test_t13_endless_chunked_body(server, make_fetcher, elapsed) -> None:
    server.route("/endless")(lambda request: request.stream(itertools.repeat(b"x" * 8 * KIB), HTML))
    with pytest.raises(TooLarge) as refused:
        make_fetcher(size_caps={"text/html": MIB}).fetch(server.url("/endless"))
    assert MIB < refused.value.received <= MIB + DECODE_STEP
    assert elapsed() < 5


def _trickle(request) -> None:
    request.send_response(200)
    request.send_header("Content-Length", "1000")
    request.end_headers()
    for _ in range(1000):
        request.wfile.write(b"x")
        if request.server.stopping.wait(0.02):
            return


def _trickle_headers(request) -> None:
    request.close_connection = True
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 1000:
        request.wfile.write(bytes([byte]))
        if request.server.stopping.wait(0.02):
            return


@pytest.mark.parametrize("handler", [_trickle, _trickle_headers], ids=["body", "headers"])
def test_t13_trickle_hits_the_total_budget(handler, server, make_fetcher, elapsed) -> None:
    server.route(f"/trickle/{handler.__name__}")(handler)
    fetcher = make_fetcher(read_timeout=0.3, total_timeout=0.6)
    with pytest.raises(FetchTimeout) as refused:
        fetcher.fetch(server.url(f"/trickle/{handler.__name__}"))
    assert refused.value.rule == Rule.TOTAL_TIMEOUT
    assert 0.6 <= elapsed() < 1.5


def test_t13_accept_then_silence_hits_the_read_timeout(server, make_fetcher, elapsed) -> None:
    server.route("/silence")(lambda request: request.hold(5))
    with pytest.raises(FetchTimeout) as refused:
        make_fetcher(read_timeout=0.2).fetch(server.url("/silence"))
    assert refused.value.rule == Rule.READ_TIMEOUT
    assert elapsed() < 1.5


def test_t13_too_many_or_too_large_headers(server, make_fetcher) -> None:
    def many(count: int):
        lines = b"".join(b"X-H-%d: v\r\n" % i for i in range(count))
        return lambda request: request.raw(b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 0\r\n\r\n")

    server.route("/headers/1000")(many(1000))
    server.route("/headers/10000")(many(10_000))
    server.route("/headers/huge")(lambda request: request.raw(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MIB))
    with pytest.raises(TooLarge) as refused:
        make_fetcher().fetch(server.url("/headers/1000"))
    assert refused.value.rule == Rule.HEADER_COUNT
    with pytest.raises(TooLarge) as refused:
        make_fetcher(max_header_count=100_000, max_header_bytes=1024).fetch(server.url("/headers/1000"))
    assert refused.value.rule == Rule.HEADER_SIZE
    for path in ("/headers/10000", "/headers/huge"):  # beyond h11's own 100 KiB limit on a response head
        with pytest.raises(FetchError) as refused:
            make_fetcher().fetch(server.url(path))
        assert refused.value.rule in (Rule.HEADER_COUNT, Rule.PROTOCOL)


def test_t13_lying_content_length(server, make_fetcher) -> None:
    server.route("/lie/short")(
        lambda request: request.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10))
    server.route("/lie/long")(
        lambda request: request.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + b"y" * 1000))
    with pytest.raises(NetworkError) as refused:
        make_fetcher().fetch(server.url("/lie/short"))
    assert refused.value.rule == Rule.PROTOCOL
    assert make_fetcher().fetch(server.url("/lie/long")).content == b"y" * 10


def test_t13_huge_content_length_refused_before_reading(server, make_fetcher, elapsed) -> None:
    def huge(request) -> None:
        request.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\n"
                            b"Content-Length: 10737418240\r\n\r\n")
        request.hold(5)

    server.route("/huge.csv")(huge)
    with pytest.raises(TooLarge) as refused:
        make_fetcher().fetch(server.url("/huge.csv"))
    assert refused.value.rule == Rule.CONTENT_LENGTH and refused.value.limit == 20 * MIB
    assert refused.value.received == 0
    assert elapsed() < 1


def test_truncate_cuts_at_the_cap_instead_of_failing(server, make_fetcher) -> None:
    server.route("/long-text")(
        lambda request: request.reply(200, b"z" * 5000, {"Content-Type": "text/plain"}))
    result = make_fetcher().fetch(server.url("/long-text"), max_bytes=1000, truncate=True)
    assert result.content == b"z" * 1000 and result.truncated


def test_the_fetcher_goes_on_after_a_failure(server, make_fetcher) -> None:
    server.route("/endless-2")(lambda request: request.stream(itertools.repeat(b"x" * 8 * KIB), HTML))
    server.route("/fine")(lambda request: request.reply(200, b"fine", HTML))
    fetcher = make_fetcher(size_caps={"text/html": 64 * KIB})
    with pytest.raises(TooLarge):
        fetcher.fetch(server.url("/endless-2"))
    assert fetcher.fetch(server.url("/fine")).content == b"fine"


# Retries.

def _reply_next(request, replies) -> None:
    status, headers = next(replies)
    request.reply(status, b"ok" if status == 200 else b"", headers)


def _sequence(server, path: str, *responses: tuple[int, dict[str, str]]) -> None:
    replies = iter(responses)
    server.route(path)(lambda request: _reply_next(request, replies))


def test_retry_on_429_honours_retry_after(server, make_fetcher, clock) -> None:
    _sequence(server, "/busy", (429, {"Retry-After": "2"}), (503, {"Retry-After": "3"}), (200, HTML))
    assert make_fetcher(total_timeout=10.0).fetch(server.url("/busy")).content == b"ok"  # 5 s of waits fit
    assert clock.sleeps == [2.0, 3.0]
    assert server.hits["/busy"] == 3


def test_retry_after_as_http_date(server, make_fetcher, clock) -> None:
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
    _sequence(server, "/busy-date", (503, {"Retry-After": soon}), (200, HTML))
    assert make_fetcher().fetch(server.url("/busy-date")).content == b"ok"
    assert len(clock.sleeps) == 1 and 0 < clock.sleeps[0] <= 2


def test_retries_are_bounded(server, make_fetcher, clock) -> None:
    _sequence(server, "/down", *[(503, {})] * 5)
    with pytest.raises(HTTPStatusError) as failed:
        make_fetcher().fetch(server.url("/down"))
    assert failed.value.status == 503 and server.hits["/down"] == 3
    assert clock.sleeps == [0.5, 1.0]  # retry_backoff, doubled


def test_a_retry_after_beyond_the_max_wait_gives_up_at_once(server, make_fetcher, clock) -> None:
    _sequence(server, "/later", (429, {"Retry-After": "3600"}), (200, HTML))
    with pytest.raises(HTTPStatusError) as failed:
        make_fetcher().fetch(server.url("/later"))
    assert failed.value.status == 429 and failed.value.retry_after == "3600"
    assert server.hits["/later"] == 1 and clock.sleeps == []


def test_t13_a_retry_after_beyond_the_time_left_fails_the_fetch_at_once(server, make_fetcher, clock) -> None:
    _sequence(server, "/busy-long", (429, {"Retry-After": "2"}), (200, HTML))
    with pytest.raises(FetchTimeout) as failed:  # 2 s is within retry_max_wait (5 s), not within the 1.5 s budget
        make_fetcher(total_timeout=1.5).fetch(server.url("/busy-long"))
    assert failed.value.rule == Rule.TOTAL_TIMEOUT and failed.value.url == server.url("/busy-long")
    assert "2.0 秒後の再試行" in failed.value.message and "待たずに中止" in failed.value.message
    assert server.hits["/busy-long"] == 1 and clock.sleeps == []


def test_t13_retry_waits_count_against_the_budget(server, make_fetcher, clock) -> None:
    _sequence(server, "/busy-often", *[(503, {"Retry-After": "1"})] * 3, (200, HTML))
    with pytest.raises(FetchTimeout) as failed:
        make_fetcher(total_timeout=2.5, max_tries=5).fetch(server.url("/busy-often"))
    assert failed.value.rule == Rule.TOTAL_TIMEOUT
    assert clock.sleeps == [1.0, 1.0] and server.hits["/busy-often"] == 3  # a third wait would pass 2.5 s


def test_t13_every_attempt_shares_one_budget(server, make_fetcher, elapsed) -> None:
    def slow_503(request) -> None:
        request.server.stopping.wait(0.4)
        request.reply(503, b"", {"Retry-After": "0"})

    server.route("/slow-503")(slow_503)
    with pytest.raises(FetchTimeout) as failed:  # ten tries of 0.4 s would be 4 s
        make_fetcher(total_timeout=1.0, max_tries=10).fetch(server.url("/slow-503"))
    assert failed.value.rule == Rule.TOTAL_TIMEOUT
    assert 1.0 <= elapsed() < 1.5 and server.hits["/slow-503"] == 3


def test_other_statuses_are_not_retried(server, make_fetcher) -> None:
    _sequence(server, "/gone", (404, {}), (200, HTML))
    with pytest.raises(HTTPStatusError) as failed:
        make_fetcher().fetch(server.url("/gone"))
    assert failed.value.status == 404 and server.hits["/gone"] == 1


# Conditional GET, identity, politeness.

def test_conditional_get(server, make_fetcher) -> None:
    validators = {"ETag": '"v1"', "Last-Modified": "Wed, 21 Oct 2026 07:28:00 GMT"}

    def page(request) -> None:
        if request.headers.get("If-None-Match") == '"v1"' or (
                request.headers.get("If-Modified-Since") == validators["Last-Modified"]):
            request.reply(304, headers={"ETag": '"v1"'})
        else:
            request.reply(200, b"<p>v1</p>", HTML | validators)

    server.route("/conditional")(page)
    fetcher = make_fetcher()
    first = fetcher.fetch(server.url("/conditional"))
    assert (first.status, first.not_modified, first.etag) == (200, False, '"v1"')
    again = fetcher.fetch(server.url("/conditional"), etag=first.etag)
    assert (again.status, again.not_modified, again.content, again.etag) == (304, True, b"", '"v1"')
    by_date = fetcher.fetch(server.url("/conditional"), last_modified=first.last_modified)
    assert by_date.not_modified and by_date.last_modified == validators["Last-Modified"]
    assert server.seen_headers["/conditional"][1]["if-none-match"] == '"v1"'


def test_user_agent_identifies_the_bot_and_cannot_be_replaced(server, make_fetcher) -> None:
    server.route("/ua")(lambda request: request.reply(200, request.headers["User-Agent"].encode(), HTML))
    result = make_fetcher().fetch(server.url("/ua"), headers={"User-Agent": "Mozilla/5.0"})
    assert result.content == b"SocialLibraryBot/0.1 (+https://example.invalid/bot)"
    custom = make_fetcher(contact_url="https://library.example/about-bot").fetch(server.url("/ua"))
    assert custom.content == b"SocialLibraryBot/0.1 (+https://library.example/about-bot)"


def test_politeness_delay_between_requests_to_one_host(server, make_fetcher, resolver, clock) -> None:
    server.route("/polite")(lambda request: request.reply(200, b"ok", HTML))
    resolver.answers["other.test"] = ["127.0.0.2"]
    fetcher = make_fetcher(delay=2.0, resolver=resolver, allowed_ports=frozenset({80, server.port}))
    fetcher.fetch(server.url("/polite"), respect_robots=False)
    fetcher.fetch(server.url("/polite", host="other.test"), respect_robots=False)  # another host: no wait
    assert clock.sleeps == []
    fetcher.fetch(server.url("/polite"), respect_robots=False)
    assert clock.sleeps == [2.0]


def test_one_request_at_a_time_per_host(server, make_fetcher) -> None:
    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow(request) -> None:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        request.reply(200, b"ok", HTML)

    server.route("/one-at-a-time")(slow)
    fetcher = make_fetcher()
    threads = [threading.Thread(target=fetcher.fetch, args=(server.url("/one-at-a-time"),),
                                kwargs={"respect_robots": False}) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.hits["/one-at-a-time"] == 4 and peak[0] == 1


def test_policy_comes_from_the_environment(server, monkeypatch) -> None:
    monkeypatch.setenv("LIBRARY_CRAWL_ALLOW_HOSTS", "127.0.0.2")
    monkeypatch.setenv("LIBRARY_CRAWL_CONTACT_URL", "https://library.example/bot")
    server.route("/env-ua")(lambda request: request.reply(200, request.headers["User-Agent"].encode(), HTML))
    fetcher = SafeFetcher()
    assert fetcher.fetch(server.url("/env-ua")).content == b"SocialLibraryBot/0.1 (+https://library.example/bot)"
    monkeypatch.delenv("LIBRARY_CRAWL_ALLOW_HOSTS")
    with pytest.raises(ForbiddenAddress):
        SafeFetcher().fetch(server.url("/env-ua"))
