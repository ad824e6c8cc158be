"""The one safe fetcher every crawler uses (DESIGN §10, RELIABILITY T10–T14).

How it stays safe:

* Address pinning. A hostname is resolved once, when the connection is opened, by an httpcore network
  backend installed in the httpx transport. Every answer is checked (one forbidden answer refuses the
  host), and the socket is connected to a checked address, so DNS cannot answer differently between the
  check and the connect (rebinding). TLS still verifies the certificate against the hostname (SNI).
* Redirects are followed here, never by httpx: at most ``max_redirects`` hops, each URL checked like the
  first, and credentials (Authorization, Cookie) dropped for good once the origin changes.
* Limits. Connect and per-read timeouts, plus a wall-clock budget for the whole fetch() call (every attempt,
  redirect hop and retry wait) enforced at the socket (slow headers count too); a Retry-After longer than
  what is left of it fails the fetch instead of waiting (T13: each fetch ends within 30 s). Bodies are
  decompressed here in bounded steps and counted after decoding, so a decompression bomb stops at the cap
  plus one step.
* Politeness. One request at a time per host with a delay (robots.txt Crawl-delay if larger), robots.txt
  obeyed, and a User-Agent that says who we are. The throttle and the robots.txt cache belong to the
  fetcher, so crawls share one fetcher per process (``indexer.tasks.CrawlFetcher``); across processes a
  ``HostLease`` (Redis, ``crawlers.hostlease``) keeps the same rule.

Connections never outlive an attempt: each attempt gets its own transport and connection pool.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from crawlers.errors import (
    FetchError,
    FetchTimeout,
    ForbiddenURL,
    HTTPStatusError,
    IPAddress,
    NetworkError,
    Rule,
    TooLarge,
    TooManyRedirects,
)
from crawlers.hostlease import HostLease
from crawlers.netguard import DEFAULT_PORTS, AllowList, CheckedURL, check_address, check_url
from crawlers.policy import FetchPolicy
from crawlers.robots import RobotsCache

log = logging.getLogger("crawlers.fetch")

Resolver = Callable[..., list[tuple]]  # socket.getaddrinfo's signature and result

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRY_STATUSES = frozenset({429, 503})
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_DECODE_STEP = 64 * 1024  # most decoded bytes produced from one step of decompression


@dataclass(frozen=True)
class FetchResult:
    final_url: str
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    content: bytes  # decoded from Content-Encoding; charset decoding is crawlers.charset's job
    content_type: str | None  # the Content-Type header as sent, parameters included
    etag: str | None
    last_modified: str | None
    not_modified: bool = False  # a 304: content is empty, etag/last_modified are the validators still valid
    redirects: tuple[str, ...] = ()  # URLs that redirected, in order, before final_url
    truncated: bool = False  # only with fetch(truncate=True): content was cut at the cap

    @property
    def media_type(self) -> str | None:
        if self.content_type is None:
            return None
        return self.content_type.split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class _Options:
    respect_robots: bool
    max_bytes: int | None
    truncate: bool
    etag: str | None
    last_modified: str | None


def redact_url(url: str) -> str:
    """A URL fit for logs: no userinfo, no query values (they may carry API keys), no fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    authority = f"//{netloc}" if netloc else ""
    query = "?<redacted>" if parts.query else ""
    return f"{parts.scheme}:{authority}{parts.path}{query}"[:300]


class _Budget:
    """Wall-clock time left for one fetch() call: its attempts, redirect hops and retry waits.

    Not counted: waiting for our turn at the host (politeness; that is other fetches' time) and robots.txt
    (a fetch of its own, with a budget of its own).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._deadline - time.monotonic()

    def clip(self, timeout: float | None, timeout_error: type[Exception]) -> float:
        remaining = self.remaining()
        if remaining <= 0:
            raise timeout_error("total time budget exhausted")
        return remaining if timeout is None else min(timeout, remaining)

    @contextmanager
    def paused(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self._deadline += time.monotonic() - started

    def spend(self, seconds: float) -> None:
        """Count a wait made through an injectable sleep (paused while it ran, so it counts exactly once)."""
        self._deadline -= seconds


class _BudgetStream(httpcore.NetworkStream):
    """A socket stream whose every read and write also respects the attempt's budget (slowloris)."""

    def __init__(self, stream: httpcore.NetworkStream, budget: _Budget) -> None:
        self._stream = stream
        self._budget = budget

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._budget.clip(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._budget.clip(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        timeout = self._budget.clip(timeout, httpcore.ConnectTimeout)
        return _BudgetStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._budget)

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class _PinningBackend(httpcore.NetworkBackend):
    """Resolves each hostname once, checks every answer, and connects only to checked addresses."""

    def __init__(self, allow: AllowList, resolver: Resolver, budget: _Budget) -> None:
        self._allow = allow
        self._resolver = resolver
        self._budget = budget
        self._tcp = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        *fallbacks, last = self._checked_addresses(host, port)
        for address in fallbacks:
            try:
                return self._connect(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError:
                continue  # another checked address may be reachable (e.g. no IPv6 route here)
        return self._connect(last, port, timeout, local_address, socket_options)

    def _connect(self, address: IPAddress, port: int, timeout: float | None, local_address: str | None,
                 socket_options: Iterable[httpcore.SOCKET_OPTION] | None) -> httpcore.NetworkStream:
        stream = self._tcp.connect_tcp(str(address), port,
                                       timeout=self._budget.clip(timeout, httpcore.ConnectTimeout),
                                       local_address=local_address, socket_options=socket_options)
        return _BudgetStream(stream, self._budget)

    def _checked_addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            check_address(literal, allow=self._allow)
            return [literal]
        try:
            answers = self._resolver(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:  # NXDOMAIN and resolver timeouts fail closed
            raise NetworkError(f"cannot resolve {host}: {exc}", rule=Rule.DNS) from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(answer[4][0]) for answer in answers))
        if not addresses:
            raise NetworkError(f"{host} resolved to no address", rule=Rule.DNS)
        for address in addresses:
            check_address(address, allow=self._allow, host=host)
        return addresses


class _PinnedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections are opened by the pinning backend."""

    def __init__(self, backend: _PinningBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx takes no httpcore network backend, so replace the pool it built with one that uses
        # ours. Refuse to run if httpx's internals moved: a silently unused backend would mean no pinning.
        if not hasattr(self, "_pool"):
            raise RuntimeError("httpx.HTTPTransport has no _pool: cannot install the address-pinning backend")
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=backend)


class _BodyDecoder:
    """Undoes Content-Encoding in bounded steps, so one compressed chunk never inflates past a step.

    httpx's own decoders inflate a whole network chunk at once (64 KiB of gzip can be 64 MiB). Brotli and
    zstd are not offered in Accept-Encoding, and refused if a server sends them anyway.
    """

    def __init__(self, content_encoding: str | None) -> None:
        coding = (content_encoding or "identity").strip().lower()
        self._raw_deflate_fallback = coding == "deflate"
        if coding in ("identity", ""):
            self._inflater = None
        elif coding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise NetworkError(f"unsupported Content-Encoding {coding!r}", rule=Rule.CONTENT_ENCODING)

    def decode(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        if self._inflater is None:
            yield from chunks
            return
        try:
            for chunk in chunks:
                while chunk:
                    piece = self._inflate(chunk)
                    chunk = self._inflater.unconsumed_tail
                    if piece:
                        yield piece
            yield self._inflater.flush()
            if not self._inflater.eof:
                raise zlib.error("the compressed stream ends early")
        except zlib.error as exc:
            raise NetworkError(f"corrupt compressed body: {exc}", rule=Rule.CONTENT_ENCODING) from None

    def _inflate(self, chunk: bytes) -> bytes:
        try:
            return self._inflater.decompress(chunk, _DECODE_STEP)
        except zlib.error:
            # "deflate" is zlib-wrapped by the RFC but raw in some servers; decide on the first chunk.
            if not self._raw_deflate_fallback:
                raise
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._inflater.decompress(chunk, _DECODE_STEP)
        finally:
            self._raw_deflate_fallback = False


class _HostThrottle:
    """One request at a time per host, and ``delay`` seconds from the end of one to the next: between the
    threads of this process, and through ``shared`` (a HostLease) between processes."""

    @dataclass
    class _Host:
        lock: threading.Lock = field(default_factory=threading.Lock)
        next_start: float = float("-inf")

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None],
                 shared: HostLease | None = None) -> None:
        self._clock = clock
        self._sleep = sleep
        self._shared = shared
        self._guard = threading.Lock()
        self._hosts: dict[str, _HostThrottle._Host] = {}

    def acquire(self, host: str) -> None:
        with self._guard:
            state = self._hosts.setdefault(host, self._Host())
        state.lock.acquire()
        try:
            wait = state.next_start - self._clock()
            if wait > 0:
                self._sleep(wait)
            if self._shared is not None:  # only one thread per host of this process ever waits for it
                self._shared.acquire(host)
        except BaseException:
            state.lock.release()
            raise

    def release(self, host: str, delay: float) -> None:
        state = self._hosts[host]
        try:
            if self._shared is not None:
                self._shared.release(host, delay)
        finally:
            state.next_start = self._clock() + delay
            state.lock.release()


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    while exc is not None:
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def _transport_errors(budget: _Budget) -> Iterator[None]:
    """Translate httpx failures into our errors, naming the rule."""
    try:
        yield
    except httpx.TimeoutException as exc:
        if budget.remaining() <= 0:
            raise FetchTimeout("total time budget exhausted", rule=Rule.TOTAL_TIMEOUT) from None
        rule = Rule.CONNECT_TIMEOUT if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)) else (
            Rule.READ_TIMEOUT)
        raise FetchTimeout(f"timed out ({type(exc).__name__})", rule=rule) from None
    except httpx.NetworkError as exc:
        rule = Rule.TLS if _caused_by(exc, ssl.SSLError) else Rule.CONNECT
        raise NetworkError(str(exc) or type(exc).__name__, rule=rule) from None
    except httpx.TransportError as exc:
        raise NetworkError(str(exc) or type(exc).__name__, rule=Rule.PROTOCOL) from None
    except httpx.InvalidURL as exc:
        raise ForbiddenURL(str(exc), rule=Rule.INVALID_URL) from None


class SafeFetcher:
    """GET with every DESIGN §10 guard. Thread-safe; holds no connections between fetches.

    ``resolver`` has ``socket.getaddrinfo``'s signature (tests pass fakes). ``clock`` and ``sleep`` drive
    politeness, retry waits and the robots.txt cache; the time budget runs on real time (retry waits made
    through ``sleep`` are counted as they are asked for). ``host_lease`` extends one-request-per-host to
    other processes (``crawlers.hostlease``).
    """

    def __init__(self, policy: FetchPolicy | None = None, *, resolver: Resolver = socket.getaddrinfo,
                 ssl_context: ssl.SSLContext | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, host_lease: HostLease | None = None) -> None:
        self.policy = FetchPolicy.from_env() if policy is None else policy
        self._resolver = resolver
        self._ssl_context = httpx.create_ssl_context() if ssl_context is None else ssl_context
        self._sleep = sleep
        self._throttle = _HostThrottle(clock, sleep, host_lease)
        connect, read = self.policy.connect_timeout, self.policy.read_timeout
        self._timeouts = httpx.Timeout(connect=connect, read=read, write=read, pool=connect).as_dict()
        self.robots = RobotsCache(self.fetch, self.policy, clock=clock)

    def fetch(self, url: str, *, respect_robots: bool = True, headers: Mapping[str, str] | None = None,
              etag: str | None = None, last_modified: str | None = None, max_bytes: int | None = None,
              truncate: bool = False) -> FetchResult:
        """GET ``url``. Raises a FetchError subclass on any refusal or failure (4xx/5xx included).

        ``etag``/``last_modified`` make the request conditional; a 304 gives ``not_modified=True``.
        ``max_bytes`` overrides the cap chosen from the Content-Type; with ``truncate`` the body is cut at
        the cap instead of failing (robots.txt reading).
        """
        options = _Options(respect_robots, max_bytes, truncate, etag, last_modified)
        try:
            start = self._check(url)
            budget = _Budget(self.policy.total_timeout)
            return self._with_retries(start, self._request_headers(headers, etag, last_modified), options,
                                      budget)
        except FetchError as exc:
            if exc.url is None:
                exc.url = url
            level = logging.INFO if isinstance(exc, HTTPStatusError) else logging.WARNING
            log.log(level, "fetch failed [%s] %s: %s", exc.rule, redact_url(exc.url), exc.message,
                    extra={"rule": str(exc.rule), "url": redact_url(exc.url)})
            raise

    def _check(self, url: str) -> CheckedURL:
        try:
            checked = check_url(url, allow=self.policy.allow, ports=self.policy.allowed_ports)
            parsed = httpx.URL(checked.url)
        except FetchError as exc:
            exc.url = url
            raise
        except httpx.InvalidURL as exc:
            raise ForbiddenURL(f"unparsable URL: {exc}", rule=Rule.INVALID_URL, url=url) from None
        parsed_port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        if parsed.raw_host.decode("ascii") != checked.host or parsed_port != checked.port:
            # httpx must connect where we checked; a parser disagreement is refused, not guessed at.
            raise ForbiddenURL("URL parsers disagree on the host", rule=Rule.INVALID_URL, url=url)
        return checked

    def _request_headers(self, extra: Mapping[str, str] | None, etag: str | None,
                         last_modified: str | None) -> dict[str, str]:
        headers = {"accept": "*/*"} | {name.lower(): value for name, value in (extra or {}).items()}
        headers |= {"user-agent": self.policy.user_agent, "accept-encoding": "gzip, deflate"}
        if etag:
            headers["if-none-match"] = etag
        if last_modified:
            headers["if-modified-since"] = last_modified
        return headers

    def _with_retries(self, start: CheckedURL, headers: dict[str, str], options: _Options,
                      budget: _Budget) -> FetchResult:
        attempt = 1
        while True:
            try:
                return self._attempt(start, headers, options, budget)
            except HTTPStatusError as exc:
                wait = self._retry_wait(exc, attempt)
                if wait is None:
                    raise
                remaining = budget.remaining()
                if wait >= remaining:
                    # Waiting would break the promise that a fetch ends within its budget (T13).
                    raise FetchTimeout(
                        f"HTTP {exc.status}: サーバーは {wait:.1f} 秒後の再試行を求めましたが、1 回の取得の時間枠 "
                        f"{budget.seconds:.0f} 秒の残り {max(remaining, 0):.1f} 秒を超えるため、待たずに中止しました",
                        rule=Rule.TOTAL_TIMEOUT, url=exc.url) from None
                log.info("HTTP %s from %s, retrying in %.1f s", exc.status, redact_url(start.url), wait,
                         extra={"rule": str(exc.rule), "url": redact_url(start.url)})
                with budget.paused():
                    self._sleep(wait)
                budget.spend(wait)
                attempt += 1

    def _retry_wait(self, exc: HTTPStatusError, attempt: int) -> float | None:
        if exc.status not in _RETRY_STATUSES or attempt >= self.policy.max_tries:
            return None
        wait = _parse_retry_after(exc.retry_after)
        if wait is None:
            wait = self.policy.retry_backoff * 2 ** (attempt - 1)
        return wait if wait <= self.policy.retry_max_wait else None

    def _attempt(self, start: CheckedURL, headers: dict[str, str], options: _Options,
                 budget: _Budget) -> FetchResult:
        backend = _PinningBackend(self.policy.allow, self._resolver, budget)
        target, redirects = start, []
        # The transport is used directly: httpx.Client would parse Location headers and keep cookies.
        with _PinnedTransport(backend, self._ssl_context) as transport:
            while True:
                try:
                    outcome = self._hop(transport, target, headers, budget, options)
                except FetchError as exc:
                    exc.url = exc.url or target.url
                    raise
                if isinstance(outcome, FetchResult):
                    return replace(outcome, redirects=tuple(redirects))
                redirects.append(target.url)
                target = self._redirect_target(target, outcome, redirects)
                if target.origin != start.origin:
                    headers = {k: v for k, v in headers.items() if k not in _CREDENTIAL_HEADERS}

    def _redirect_target(self, current: CheckedURL, location: str, redirects: list[str]) -> CheckedURL:
        if len(redirects) > self.policy.max_redirects:
            raise TooManyRedirects(f"more than {self.policy.max_redirects} redirects",
                                   rule=Rule.MAX_REDIRECTS, url=current.url)
        target = self._check(urljoin(current.url, location))
        if target.url in redirects:
            raise TooManyRedirects("redirect loop", rule=Rule.REDIRECT_LOOP, url=target.url)
        return target

    def _hop(self, transport: httpx.BaseTransport, target: CheckedURL, headers: dict[str, str],
             budget: _Budget, options: _Options) -> FetchResult | str:
        """One request. Returns the result, or the Location to follow."""
        delay = self.policy.delay
        if options.respect_robots:
            with budget.paused():
                self.robots.check(target)
                delay = max(delay, self.robots.crawl_delay(target) or 0.0)
        with budget.paused():
            self._throttle.acquire(target.host)
        try:
            with _transport_errors(budget):
                request = httpx.Request("GET", target.url, headers=headers,
                                        extensions={"timeout": self._timeouts})
                response = transport.handle_request(request)
                try:
                    return self._handle(target, response, options)
                finally:
                    response.close()
        finally:
            self._throttle.release(target.host, delay)

    def _handle(self, target: CheckedURL, response: httpx.Response, options: _Options) -> FetchResult | str:
        self._check_headers(response.headers)
        status = response.status_code
        if status in _REDIRECT_STATUSES and "location" in response.headers:
            return response.headers["location"]
        if status == 304:
            return self._result(target, response, b"", options, not_modified=True)
        if not 200 <= status < 300:
            raise HTTPStatusError(status, retry_after=response.headers.get("retry-after"))
        cap = options.max_bytes or self.policy.size_cap(response.headers.get("content-type"))
        content, truncated = self._read_body(response, cap, options.truncate)
        return self._result(target, response, content, options, truncated=truncated)

    def _check_headers(self, headers: httpx.Headers) -> None:
        count, size = len(headers.raw), sum(len(k) + len(v) for k, v in headers.raw)
        if count > self.policy.max_header_count:
            raise TooLarge(f"{count} response headers", rule=Rule.HEADER_COUNT,
                           limit=self.policy.max_header_count, received=count)
        if size > self.policy.max_header_bytes:
            raise TooLarge(f"{size} bytes of response headers", rule=Rule.HEADER_SIZE,
                           limit=self.policy.max_header_bytes, received=size)

    @staticmethod
    def _read_body(response: httpx.Response, cap: int, truncate: bool) -> tuple[bytes, bool]:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        length = response.headers.get("content-length", "")
        if not truncate and encoding == "identity" and length.isdigit() and int(length) > cap:
            raise TooLarge(f"Content-Length {length} exceeds the {cap}-byte cap", rule=Rule.CONTENT_LENGTH,
                           limit=cap, received=0)
        body = bytearray()
        for piece in _BodyDecoder(encoding).decode(response.iter_raw()):
            body += piece
            if len(body) > cap:
                if truncate:
                    return bytes(body[:cap]), True
                raise TooLarge(f"body exceeds the {cap}-byte cap", rule=Rule.BODY_SIZE, limit=cap,
                               received=len(body))
        return bytes(body), False

    @staticmethod
    def _result(target: CheckedURL, response: httpx.Response, content: bytes, options: _Options, *,
                not_modified: bool = False, truncated: bool = False) -> FetchResult:
        headers = response.headers
        etag, last_modified = headers.get("etag"), headers.get("last-modified")
        if not_modified:  # a 304 may omit the validators: the ones we sent are still the valid ones
            etag, last_modified = etag or options.etag, last_modified or options.last_modified
        return FetchResult(final_url=target.url, status=response.status_code, headers=dict(headers.items()),
                           content=content, content_type=headers.get("content-type"), etag=etag,
                           last_modified=last_modified, not_modified=not_modified, truncated=truncated)
