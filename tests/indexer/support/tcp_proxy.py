"""A loopback TCP proxy whose connections can all be reset at once, for the TCP-reset fault of T26 (b).

``ResettingProxy(upstream)`` listens on 127.0.0.1, on a port of its own choosing (``port``, ``url``), and
forwards every connection it accepts to ``upstream`` (the private redis-server). ``reset_all()`` aborts every
live connection on both sides with a TCP RST (SO_LINGER on, timeout 0, then close): the client sees
ECONNRESET, as after a network reset, and Redis drops its end. Clients may connect again at once.

One thread runs everything (a ``selectors`` loop over non-blocking sockets), so a reset never races a
forwarding thread that still holds a socket: ``reset_all`` hands the work to that thread and waits for it.
It is a test tool, not part of the service.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Self

CHUNK = 65536
MAX_BUFFERED = 1 << 20  # bytes waiting for a slow reader before the proxy stops reading from its peer
LINGER_RST = struct.pack("ii", 1, 0)  # l_onoff=1, l_linger=0: close() sends RST and drops unsent data


@dataclass(eq=False)
class _Pair:
    client: socket.socket
    upstream: socket.socket
    to_client: bytearray = field(default_factory=bytearray)
    to_upstream: bytearray = field(default_factory=bytearray)
    masks: dict[int, int] = field(default_factory=dict)  # fd -> events registered (0: not registered)
    upstream_port: int = 0  # the proxy's local port towards the upstream: what the server sees as the client

    def outgoing(self, sock: socket.socket) -> bytearray:
        return self.to_client if sock is self.client else self.to_upstream

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.upstream if sock is self.client else self.client


class ResettingProxy:
    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self._listener = socket.create_server((host, 0))  # port 0: the kernel picks a free one, no race
        self._listener.setblocking(False)
        self.host = host
        self.port = int(self._listener.getsockname()[1])
        self.accepted = 0  # connections accepted and forwarded, reconnections included
        self.resets = 0  # reset_all() calls
        self.connections_reset = 0  # connections aborted with RST by reset_all(), over all calls
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()  # guards _pairs for readers on other threads
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._requests: list[tuple[threading.Event, list[int]]] = []
        self._stopping = False
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The Redis URL that goes through this proxy (database 0)."""
        return f"redis://{self.host}:{self.port}/0"

    def live(self) -> int:
        with self._lock:
            return len(self._pairs)

    def upstream_ports(self) -> set[int]:
        """Local ports of the proxy's live upstream connections: Redis's CLIENT LIST shows them as `addr`."""
        with self._lock:
            return {pair.upstream_port for pair in self._pairs}

    def reset_all(self, timeout: float = 10.0) -> int:
        """Abort every live connection, both sides, with RST. Returns how many connections were reset."""
        done, result = threading.Event(), []
        with self._lock:
            self._requests.append((done, result))
        self._wake_writer.send(b"r")
        if not done.wait(timeout):
            raise TimeoutError("the proxy thread did not reset its connections")
        return result[0]

    def close(self) -> None:
        """Stop the proxy: live connections are closed normally (FIN), the listener too."""
        self._stopping = True
        self._wake_writer.send(b"s")
        self._thread.join(timeout=10)
        self._wake_writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the proxy thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, mask in self._selector.select(timeout=0.5):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._wake()
                    else:
                        pair: _Pair = key.data
                        if pair in self._pairs:  # not aborted earlier in this round
                            self._service(pair, key.fileobj, mask)  # type: ignore[arg-type]
        finally:
            for pair in list(self._pairs):
                self._drop(pair, rst=False)
            self._selector.close()
            self._listener.close()
            self._wake_reader.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:  # the server is down: the client sees its connection refused, as it would directly
                _abort(client)
                continue
            for sock in (client, upstream):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(client, upstream, upstream_port=int(upstream.getsockname()[1]))
            with self._lock:
                self._pairs.add(pair)
            self.accepted += 1
            self._update(pair)

    def _wake(self) -> None:
        try:
            while self._wake_reader.recv(CHUNK):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        with self._lock:
            requests, self._requests = self._requests, []
        for done, result in requests:
            pairs = list(self._pairs)
            for pair in pairs:
                self._drop(pair, rst=True)
            self.resets += 1
            self.connections_reset += len(pairs)
            result.append(len(pairs))
            done.set()

    def _service(self, pair: _Pair, sock: socket.socket, mask: int) -> None:
        peer = pair.peer(sock)
        try:
            if mask & selectors.EVENT_WRITE:
                buffer = pair.outgoing(sock)
                sent = sock.send(buffer)
                del buffer[:sent]
            if mask & selectors.EVENT_READ:
                data = sock.recv(CHUNK)
                if not data:  # an orderly close: pass on what is left, then close the other side too
                    self._flush(pair, peer)
                    self._drop(pair, rst=False)
                    return
                pair.outgoing(peer).extend(data)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # reset or broken on one side: reset the other too, as a network fault would
            self._drop(pair, rst=True)
            return
        self._update(pair)

    def _flush(self, pair: _Pair, sock: socket.socket) -> None:
        buffer = pair.outgoing(sock)
        try:
            while buffer:
                sent = sock.send(buffer)
                del buffer[:sent]
        except OSError:
            pass

    def _update(self, pair: _Pair) -> None:
        """Read a side while its peer's backlog is small; write a side while it has a backlog."""
        for sock in (pair.client, pair.upstream):
            wanted = 0
            if len(pair.outgoing(pair.peer(sock))) < MAX_BUFFERED:
                wanted |= selectors.EVENT_READ
            if pair.outgoing(sock):
                wanted |= selectors.EVENT_WRITE
            current = pair.masks.get(sock.fileno(), 0)
            if wanted == current:
                continue
            if current == 0:
                self._selector.register(sock, wanted, pair)
            elif wanted == 0:
                self._selector.unregister(sock)
            else:
                self._selector.modify(sock, wanted, pair)
            pair.masks[sock.fileno()] = wanted

    def _drop(self, pair: _Pair, *, rst: bool) -> None:
        with self._lock:
            self._pairs.discard(pair)
        for sock in (pair.client, pair.upstream):
            if pair.masks.get(sock.fileno(), 0):
                self._selector.unregister(sock)
            if rst:
                _abort(sock)
            else:
                sock.close()


def _abort(sock: socket.socket) -> None:
    """Close with RST rather than FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    except OSError:
        pass
    sock.close()

