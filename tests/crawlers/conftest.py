"""Loopback harness for the crawler tests (RELIABILITY "Loopback harness").

127.0.0.2 plays the one "public" address and is the only address the test policy allows. 127.0.0.1 is
never allowed: a canary listens there, on the same port as the public server, and counts every accept.
Names resolve only through a fake resolver, so no test touches real DNS or the network.
"""

from __future__ import annotations

import select
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest
import trustme
from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from crawlers.fetch import SafeFetcher
from crawlers.netguard import AllowList
from crawlers.policy import FetchPolicy

PUBLIC_IP = "127.0.0.2"
CANARY_IP = "127.0.0.1"


class Handler(BaseHTTPRequestHandler):
    """Dispatches GET by path to the server's routes; routes write the response themselves."""

    protocol_version = "HTTP/1.1"
    timeout = 5  # a handler thread never waits long on a client that went quiet
    server: LoopbackServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.record(path, self)
        route = self.server.routes.get(path)
        if route is None:
            self.reply(404, b"not found")
        else:
            route(self)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """Header values are sent as UTF-8, so a Location can carry a full-width host."""
        headers = {"Content-Length": str(len(body))} | (headers or {})
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('Other',))[0]}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.wfile.write("\r\n".join([*lines, "", ""]).encode() + body)

    def redirect(self, location: str, status: int = 302) -> None:
        self.reply(status, headers={"Location": location})

    def raw(self, data: bytes) -> None:
        """Write bytes as they are (non-ASCII headers, lies); the connection is closed afterwards."""
        self.close_connection = True
        self.wfile.write(data)
        self.wfile.flush()

    def stream(self, chunks: Iterator[bytes], headers: dict[str, str]) -> None:
        """Chunked transfer of ``chunks``, until they end or the fetcher hangs up."""
        self.send_response(200)
        for name, value in (headers | {"Transfer-Encoding": "chunked"}).items():
            self.send_header(name, value)
        self.end_headers()
        for chunk in chunks:
            if self.server.stopping.is_set():
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def hold(self, seconds: float) -> None:
        """Stay silent until the fetcher hangs up, ``seconds`` pass or the server stops (plain TCP only)."""
        deadline = time.monotonic() + seconds
        while not self.server.stopping.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.01)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                return


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True

    def __init__(self, host: str = PUBLIC_IP, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        super().__init__((host, port), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.routes: dict[str, Callable[[Handler], None]] = {}
        self.hits: Counter[str] = Counter()
        self.seen_headers: dict[str, list[dict[str, str]]] = {}
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.01})
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str, host: str = PUBLIC_IP) -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def route(self, path: str) -> Callable[[Callable[[Handler], None]], Callable[[Handler], None]]:
        def register(handler: Callable[[Handler], None]) -> Callable[[Handler], None]:
            self.routes[path] = handler
            return handler

        return register

    def record(self, path: str, request: Handler) -> None:
        with self._lock:
            self.hits[path] += 1
            self.seen_headers.setdefault(path, []).append({k.lower(): v for k, v in request.headers.items()})

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)  # a bug in a route: print it
        # else the fetcher hung up on purpose (a cap, a timeout, a refused certificate)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self._thread.join()


class Canary:
    """Counts TCP accepts on 127.0.0.1:port. Every SSRF test expects it to stay at 0."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_server((CANARY_IP, port))
        self._sock.settimeout(0.01)
        self.port = self._sock.getsockname()[1]
        self.accepts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.accepts += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


class FakeResolver:
    """``socket.getaddrinfo`` over a fixed table; unknown names are NXDOMAIN. Answers may be callables."""

    def __init__(self, answers: dict[str, list[str] | Callable[[], list[str]]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.queries: list[str] = []

    def __call__(self, host: str, port: int, family: int = 0, type: int = 0,
                 proto: int = 0, flags: int = 0) -> list[tuple]:
        self.queries.append(host)
        answer = self.answers.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        addresses = answer() if callable(answer) else answer
        return [_addrinfo(address, port) for address in addresses]


def _addrinfo(address: str, port: int) -> tuple:
    if ":" in address:
        return socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)
    return socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)


class FakeClock:
    """Scheduling time for politeness, retries and the robots cache; sleeping advances it instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _server_with_canary(**kwargs: object) -> tuple[LoopbackServer, Canary]:
    """A server on 127.0.0.2 and a canary on 127.0.0.1 with the same port, so that a name rebound to
    127.0.0.1 would reach the canary."""
    for _ in range(20):
        server = LoopbackServer(**kwargs).start()
        try:
            return server, Canary(server.port)
        except OSError:  # that port is taken on 127.0.0.1: try another
            server.close()
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


@pytest.fixture(scope="session")
def _harness() -> Iterator[tuple[LoopbackServer, Canary]]:
    server, canary = _server_with_canary()
    yield server, canary
    canary.close()
    server.close()


@pytest.fixture()
def server(_harness: tuple[LoopbackServer, Canary]) -> LoopbackServer:
    """The shared public server on 127.0.0.2; tests register routes under paths of their own."""
    return _harness[0]


@pytest.fixture()
def canary(_harness: tuple[LoopbackServer, Canary]) -> Canary:
    canary = _harness[1]
    canary.accepts = 0
    return canary


@pytest.fixture()
def make_server() -> Iterator[Callable[..., LoopbackServer]]:
    """Extra servers (another port, TLS); all closed after the test."""
    servers: list[LoopbackServer] = []

    def make(**kwargs: object) -> LoopbackServer:
        servers.append(LoopbackServer(**kwargs).start())
        return servers[-1]

    yield make
    for extra in servers:
        extra.close()


@pytest.fixture()
def resolver() -> FakeResolver:
    """Fill ``resolver.answers``; names not in it are NXDOMAIN."""
    return FakeResolver()


@pytest.fixture()
def make_server_with_canary() -> Iterator[Callable[..., tuple[LoopbackServer, Canary]]]:
    pairs: list[tuple[LoopbackServer, Canary]] = []

    def make(**kwargs: object) -> tuple[LoopbackServer, Canary]:
        pairs.append(_server_with_canary(**kwargs))
        return pairs[-1]

    yield make
    for server, canary in pairs:
        canary.close()
        server.close()


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


def _policy(**overrides: object) -> FetchPolicy:
    settings: dict[str, object] = {
        "allow": AllowList.parse(PUBLIC_IP),
        "delay": 0.0,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "total_timeout": 5.0,
        "retry_backoff": 0.5,
        "retry_max_wait": 5.0,
    }
    return FetchPolicy(**(settings | overrides))


@pytest.fixture(scope="session")
def default_tls() -> ssl.SSLContext:
    """Built once: loading the CA bundle for every fetcher would dominate the suite's time."""
    return httpx.create_ssl_context()


@pytest.fixture()
def make_fetcher(clock: FakeClock, default_tls: ssl.SSLContext) -> Callable[..., SafeFetcher]:
    """A SafeFetcher with the test policy; keyword arguments override policy fields.

    ``resolver`` defaults to an empty FakeResolver (every name NXDOMAIN) and waits go to the fake clock.
    """

    def make(*, resolver: FakeResolver | None = None, ssl_context: ssl.SSLContext | None = None,
             **overrides: object) -> SafeFetcher:
        return SafeFetcher(_policy(**overrides), resolver=resolver or FakeResolver(),
                           ssl_context=ssl_context or default_tls, clock=clock, sleep=clock.sleep)

    return make


@pytest.fixture()
def elapsed() -> Callable[[], float]:
    started = time.monotonic()
    return lambda: time.monotonic() - started


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_client(tls_ca: trustme.CA) -> ssl.SSLContext:
    """Client context trusting only the test CA."""
    context = ssl.create_default_context()
    tls_ca.configure_trust(context)
    return context


@pytest.fixture()
def tls_server_context(tls_ca: trustme.CA) -> Callable[..., ssl.SSLContext]:
    def make(*identities: str) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_ca.issue_cert(*identities).configure_cert(context)
        return context

    return make


class RebindingZone(BaseResolver):
    """Answers the first A query for rebind.test with 127.0.0.2 and every later one with 127.0.0.1, TTL 0."""

    def __init__(self) -> None:
        self.queries = 0
        self._lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        if str(request.q.qname).rstrip(".") != "rebind.test" or request.q.qtype != QTYPE.A:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        with self._lock:
            self.queries += 1
            address = PUBLIC_IP if self.queries == 1 else CANARY_IP
        reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=0))
        return reply


class DnslibResolver:
    """``socket.getaddrinfo`` asking a real DNS server over UDP (dnslib); failures are gaierror."""

    def __init__(self, port: int, timeout: float = 1.0) -> None:
        self.port = port
        self.timeout = timeout

    def __call__(self, host: str, port: int, family: int = 0, type: int = 0,
                 proto: int = 0, flags: int = 0) -> list[tuple]:
        try:
            packet = DNSRecord.question(host, "A").send(CANARY_IP, self.port, timeout=self.timeout)
        except TimeoutError:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution") from None
        reply = DNSRecord.parse(packet)
        if reply.header.rcode != RCODE.NOERROR:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_addrinfo(str(rr.rdata), port) for rr in reply.rr if rr.rtype == QTYPE.A]


@pytest.fixture()
def rebinding_dns() -> Iterator[tuple[RebindingZone, DnslibResolver]]:
    """A dnslib server on 127.0.0.1 serving RebindingZone, and a resolver that asks it."""
    zone = RebindingZone()
    server = DNSServer(zone, address=CANARY_IP, port=0, logger=DNSLogger(logf=lambda _: None))
    thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield zone, DnslibResolver(server.server.server_address[1])
    server.server.shutdown()
    server.server.server_close()
    thread.join()
