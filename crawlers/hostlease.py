"""One request at a time per host, with a delay, across processes: a short Redis lease per host.

The SafeFetcher's own throttle holds within one process. Celery workers are several processes (a prefork pool,
several machines), so with a Redis broker the fetcher also takes this lease around every request:

* ``library:crawl-host:<host>:lease`` is set (NX, with an expiry) while one process requests from the host. It
  names its holder (machine/pid/random): a process on the same machine that finds the holder's process gone
  (kill -9) breaks the lease at once, as crawl runs are taken over (crawlers.pipeline); across machines it
  expires on its own after ``hold`` seconds, so a killed process blocks the host only that long.
* ``library:crawl-host:<host>:next`` is when the next request may start: the end of the last one plus its
  delay. Times are the Redis server's clock (TIME), so the processes' clocks never have to agree.
* ``:waiting`` names a process that found the host busy, and ``:last`` the process that made the last request.
  When the host is free again, the last process gives way to a waiting one, so two crawls of a host take turns
  and a long crawl never starves a short one (each process keeps its place in its own crawl order).

Both steps are Lua scripts, so taking the lease and reading the delay cannot interleave with another process.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("crawlers.hostlease")

KEY_PREFIX = "library:crawl-host:"
POLL = 0.05  # seconds between two tries while another process holds the host
NEXT_KEEP_MS = 60_000  # how long a `next` key outlives the moment it names
REDIS_TIMEOUT = 2.0  # seconds; a Redis that does not answer must not hold every request up for long
RETRY_AFTER_FAILURE = 30.0  # seconds without leases after Redis failed, so each request does not wait on it

# Returns 0 when the lease is ours, else how many ms to wait before trying again. ARGV: token, hold ms, the
# calling process, the poll ms. A caller told to wait marks itself waiting (unless another process already is) for
# a little longer than the wait, so the mark of a process that died lapses on its own.
_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local next_ms = tonumber(redis.call('GET', KEYS[2]) or '0')
local waiting = redis.call('GET', KEYS[3])
local wait_ms = -1
if next_ms > now_ms then
    wait_ms = next_ms - now_ms
elseif waiting and waiting ~= ARGV[3] and redis.call('GET', KEYS[4]) == ARGV[3] then
    return tonumber(ARGV[4])
elseif redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    if waiting == ARGV[3] then
        redis.call('DEL', KEYS[3])
    end
    return 0
end
if not waiting or waiting == ARGV[3] then
    redis.call('SET', KEYS[3], ARGV[3], 'PX', math.max(wait_ms, tonumber(ARGV[4])) + 1000)
end
return wait_ms
"""

# Sets `next` to (now + delay), never earlier than it was, records the caller as the last process (ARGV[4]),
# and ends the lease if it is still ours.
_RELEASE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local next_ms = math.max(now_ms + tonumber(ARGV[2]), tonumber(redis.call('GET', KEYS[2]) or '0'))
redis.call('SET', KEYS[2], next_ms, 'PX', next_ms - now_ms + tonumber(ARGV[3]))
redis.call('SET', KEYS[3], ARGV[4], 'PX', next_ms - now_ms + tonumber(ARGV[3]))
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
end
return next_ms
"""


# Deletes the lease only if it still names the dead holder that was read, so a live new holder is never broken.
_BREAK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def process_alive(pid: int) -> bool:
    """Whether a process of this machine exists (under any user) and has not ended.

    A killed process whose parent died too is a zombie until PID 1 reaps it, and in a container PID 1 may
    never do so: signal 0 still reaches a zombie, so its state is read from /proc as well.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (not Linux), or it ended meanwhile
        return Path("/proc").is_dir() is False
    # "pid (comm) state ...": comm may hold spaces and parentheses, so the state follows the last ")".
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] not in ("Z", "X")


def holder_is_dead(holder: str) -> bool:
    """A holder `machine/pid/random` that ran on this machine, in another process that no longer exists."""
    machine, _, rest = holder.partition("/")
    pid_text = rest.partition("/")[0]
    if machine != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    return not process_alive(int(pid_text))


class HostLease(Protocol):
    """A per-host gate shared with other processes, taken after the fetcher's own throttle."""

    def acquire(self, host: str) -> None: ...

    def release(self, host: str, delay: float) -> None: ...


class RedisHostLease:
    """The per-host lease in Redis (module doc). Thread-safe as the fetcher uses it: its own throttle lets only
    one thread per host at a time hold (and so release) the host's lease.

    ``hold`` must outlast one request (the fetcher passes its total time budget plus a margin). A Redis that
    does not answer never stops a crawl: requests go ahead under the process's own throttle for
    RETRY_AFTER_FAILURE seconds, and a warning is logged.
    """

    def __init__(self, client: Redis, *, hold: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._hold_ms = max(1, round(hold * 1000))
        self._sleep = sleep
        self._clock = clock
        self._unused_until = float("-inf")
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._break = client.register_script(_BREAK)
        self._tokens: dict[str, str] = {}  # host → our token, while we hold its lease
        self._instance = secrets.token_hex(4)

    @classmethod
    def from_url(cls, url: str, *, hold: float) -> RedisHostLease:
        return cls(Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT),
                   hold=hold)

    @staticmethod
    def _keys(host: str) -> list[str]:
        return [f"{KEY_PREFIX}{host}:lease", f"{KEY_PREFIX}{host}:next"]

    def _process(self) -> str:
        """Who takes turns: this lease object in this process (the pid is read each time: a pool forks)."""
        return f"{socket.gethostname()}/{os.getpid()}/{self._instance}"

    def acquire(self, host: str) -> None:
        if self._clock() < self._unused_until:
            return
        process = self._process()
        token = f"{process}/{secrets.token_hex(8)}"
        keys = [*self._keys(host), f"{KEY_PREFIX}{host}:waiting", f"{KEY_PREFIX}{host}:last"]
        while True:
            try:
                wait_ms = int(self._acquire(keys=keys, args=[token, self._hold_ms, process, round(POLL * 1000)]))
                if wait_ms < 0:
                    holder = self._client.get(self._keys(host)[0])
                    if holder is not None and holder_is_dead(holder.decode("utf-8", "replace")):
                        log.warning("host lease for %s: its holder %s is gone; taken over", host, holder)
                        self._break(keys=self._keys(host)[:1], args=[holder])
                        continue
            except (RedisError, OSError) as exc:
                self._unused_until = self._clock() + RETRY_AFTER_FAILURE
                log.warning("host lease for %s not taken (Redis: %s); for %.0f s this process's throttle only",
                            host, exc, RETRY_AFTER_FAILURE)
                return
            if wait_ms == 0:
                self._tokens[host] = token
                return
            self._sleep(POLL if wait_ms < 0 else wait_ms / 1000)

    def release(self, host: str, delay: float) -> None:
        token = self._tokens.pop(host, None)
        if token is None:  # acquire found Redis away: nothing to release
            return
        args: list[Any] = [token, max(0, round(delay * 1000)), NEXT_KEEP_MS, self._process()]
        try:
            self._release(keys=[*self._keys(host), f"{KEY_PREFIX}{host}:last"], args=args)
        except (RedisError, OSError) as exc:  # the lease expires on its own
            log.warning("host lease for %s not released (Redis: %s)", host, exc)

    def close(self) -> None:
        self._client.close()
