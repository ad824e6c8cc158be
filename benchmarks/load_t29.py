"""T29: a bounded loopback load of the public API, with latency percentiles, errors and the workers' memory.

    .venv/bin/python benchmarks/load_t29.py                              # 3,000 records, 50 users, 60 s
    .venv/bin/python benchmarks/load_t29.py --records 20000 --seconds 600  # RELIABILITY T29's 10-minute run
    .venv/bin/python benchmarks/load_t29.py --data-dir /tmp/lib --records 5000   # built once, reused

gunicorn serves `search_app:create_app()` with the production settings (deploy/gunicorn.conf.py, 2 workers by
default) on a free loopback port, as benchmarks/api_load.py starts it: no access log, no worker recycling (so the
workers' memory can be followed), its log at info level in a file, MALLOC_ARENA_MAX=2 as in the image unless the
environment says otherwise (16 is glibc's default on 2 cores), and **no rate limit**: the public search allows 60
requests a minute per address (Flask-Limiter), and every simulated user here shares 127.0.0.1, so
LIBRARY_FLASK_RATELIMIT_ENABLED=false is set for the server.

The data directory (SQLite + tantivy) holds the demo records plus `--records` articles of the livedoor corpus
as `page` records (benchmarks/profile_search.py builds it); it is built when empty and reused otherwise.

`--users` simulated users (threads, each with its own kept-alive connection) loop for `--seconds`: a search
(60 %: realistic citizen queries with filters, sorting and paging, benchmarks/api_load.py), a record's detail
(25 %: ids from the searches) or suggestions as someone types (15 %), then a think time drawn from
`--think MIN MAX` seconds. Everything stops by itself at the deadline; requests time out after 10 s.

Meanwhile a shop pushes a recall notice through `POST /api/v1/notices` every `--push-every` seconds (a shop and
its API key are made in the data directory first) and polls the search for the notice's own model number until
the notice is found: T29's freshness, pushed → searchable, p99 <= 5 s. Each pushed notice is retracted once
found, so the data directory keeps no benchmark notices.

Printed: requests, throughput, error rate, p50/p95/p99 per kind and overall, the freshness figures, and each
worker's resident memory after the warm-up and at the end (T29: at most 10 % growth), and each worker's database
pool: checkouts, those that gave up (exhaustion) and the wait p50/p99, which every worker logs as it stops
(deploy/gunicorn.conf.py's worker_exit; the server is stopped gracefully for it). T29's targets (p95 <= 300 ms,
p99 <= 1 s, errors < 0.1 %, pool wait p99 <= 50 ms) are shown next to the figures, never asserted: the machine
is shared.

The store is the data directory's SQLite file, or PostgreSQL when LIBRARY_DATABASE_URL is set (the index stays
in the data directory, which is then built for that database):

    LIBRARY_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/library_bench \
        .venv/bin/python benchmarks/load_t29.py --data-dir /tmp/lib-pg --records 20000 --seconds 600
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.api_load import (  # after the path: the scripts run from the checkout
    HOST,
    MIX,
    QUERIES,
    TYPED,
    free_port,
    percentile,
    probe_notice,
    rss_mib,
    start_gunicorn,
    stop,
    wait_until_ready,
    worker_exit_figures,
    worker_pids,
)
from benchmarks.profile_search import database_url_for, settings_for

REQUEST_TIMEOUT_S = 10.0
WARMUP_ROUNDS = 3
WARM_FRACTION = 0.8  # a worker under this share of the largest one's memory has not loaded everything yet
TARGET_P95_MS, TARGET_P99_MS, TARGET_ERRORS, TARGET_RSS_GROWTH = 300.0, 1000.0, 0.001, 0.10
TARGET_FRESHNESS_P99_S = 5.0
TARGET_POOL_WAIT_P99_MS = 50.0
FRESHNESS_GIVE_UP_S = 30.0  # a notice not found by then counts as not found


@dataclass
class Tally:
    """What one user saw: latencies per kind of request, and errors (a status other than 200, or no answer)."""

    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: list[str] = field(default_factory=list)


@dataclass
class Report:
    records: int
    users: int
    seconds: float
    requests: int
    errors: int
    latencies_ms: dict[str, list[float]]
    rss_start_mib: list[float]
    rss_end_mib: list[float]
    anon_start_mib: list[float]
    anon_end_mib: list[float]
    error_samples: list[str]
    freshness_s: list[float] = field(default_factory=list)  # pushed → found, per notice
    freshness_missed: int = 0  # pushed notices not found within FRESHNESS_GIVE_UP_S (or refused)
    pools: list[dict[str, float]] = field(default_factory=list)  # each worker's pool figures, logged at exit
    database: str = "sqlite"

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def rss_growth(self) -> float:
        """The largest growth of one worker's resident memory over the run, as a fraction."""
        pairs = zip(self.rss_start_mib, self.rss_end_mib, strict=True)
        return max(((end - start) / start for start, end in pairs if start), default=0.0)

    @property
    def anon_growth(self) -> float:
        """The largest growth of one worker's anonymous memory (its heap), as a fraction."""
        pairs = zip(self.anon_start_mib, self.anon_end_mib, strict=True)
        return max(((end - start) / start for start, end in pairs if start), default=0.0)

    def all_latencies(self) -> list[float]:
        return [value for values in self.latencies_ms.values() for value in values]


# --- the simulated users ------------------------------------------------------------------------------------


def _paths(kind: str, rng: random.Random, record_ids: list[str]) -> str:
    if kind == "search":
        return "/api/v1/search?" + urlencode(rng.choice(QUERIES))
    if kind == "detail":
        return f"/api/v1/records/{rng.choice(record_ids)}"
    return "/api/v1/suggest?" + urlencode({"q": rng.choice(TYPED)})


def _user(
    port: int,
    deadline: float,
    seed: int,
    think: tuple[float, float],
    ids: list[str],
    tally: Tally,
    keep: bool,
) -> None:
    rng = random.Random(seed)
    kinds, weights = zip(*MIX, strict=True)
    connection: http.client.HTTPConnection | None = None
    while time.monotonic() < deadline:
        kind = rng.choices(kinds, weights)[0]
        path = _paths(kind, rng, ids)
        started = time.perf_counter()
        try:
            if connection is None:
                connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            status = response.status
            if not keep or response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException) as exc:
            if connection is not None:
                connection.close()
            connection = None
            status = 0
            if len(tally.error_samples) < 5:
                tally.error_samples.append(f"{path}: {type(exc).__name__}: {exc}")
        tally.latencies_ms[kind].append((time.perf_counter() - started) * 1000)
        if status != 200:
            tally.errors[kind] += 1
            if status and len(tally.error_samples) < 5:
                tally.error_samples.append(f"{path}: HTTP {status}")
        pause = rng.uniform(*think)
        if pause > 0:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
    if connection is not None:
        connection.close()


def drive(
    port: int,
    users: int,
    seconds: float,
    think: tuple[float, float],
    ids: list[str],
    seed: int,
    keep: bool = True,
) -> Tally:
    """`users` threads for `seconds` (`keep`: each on one kept-alive connection); their merged tallies."""
    deadline = time.monotonic() + seconds
    tallies = [Tally() for _ in range(users)]
    threads = [
        threading.Thread(
            target=_user, args=(port, deadline, seed * 1000 + i, think, ids, tallies[i], keep), daemon=True
        )
        for i in range(users)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + REQUEST_TIMEOUT_S + 5)
    total = Tally()
    for tally in tallies:
        for kind, values in tally.latencies_ms.items():
            total.latencies_ms[kind].extend(values)
        for kind, count in tally.errors.items():
            total.errors[kind] += count
        total.error_samples.extend(tally.error_samples[: 5 - len(total.error_samples)])
    return total


def make_shop_key(data_dir: Path) -> str:
    """A shop and an API key for the freshness probe, in the data directory's database (the plaintext key)."""
    from indexer.library import Library
    from indexer.store import ShopRow
    from search_app.auth.policy import issue_api_key

    library = Library.open(settings_for(data_dir))
    try:
        with library.store.session() as db:
            shop = ShopRow(name=f"負荷試験の店 {time.time():.0f}")
            db.add(shop)
            db.flush()
            return issue_api_key(db, shop.id, label="load_t29.py")[1]
    finally:
        library.close()


def _call(port: int, method: str, path: str, key: str, body: dict[str, object] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        connection.request(method, path, body=json.dumps(body or {}).encode(), headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def probe_freshness(port: int, key: str, deadline: float, every: float, report: Report) -> None:
    """Push a notice every `every` seconds until `deadline`; time each until the search finds it."""
    number = 0
    while time.monotonic() + every < deadline:
        number += 1
        model = f"LT29-{int(time.time())}-{number:04d}"
        notice = probe_notice(model)
        pushed = time.monotonic()
        status, _ = _call(port, "POST", "/api/v1/notices", key, notice)
        found = False
        while status == 201 and time.monotonic() - pushed < FRESHNESS_GIVE_UP_S:
            hits = _get_json(port, "/api/v1/search?" + urlencode({"q": model, "kind": "notice"}))
            if hits["total"]:
                found = True
                break
            time.sleep(0.05)
        if found:
            report.freshness_s.append(time.monotonic() - pushed)
        else:
            report.freshness_missed += 1
        if status == 201:
            _call(port, "POST", f"/api/v1/notices/load-{model}/retract", key)
        time.sleep(max(0.0, every - (time.monotonic() - pushed)))


def _get_json(port: int, path: str) -> dict[str, object]:
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"{path} answered {response.status}: {body[:300]!r}")
        return json.loads(body)
    finally:
        connection.close()


def record_ids(port: int) -> tuple[int, list[str]]:
    """The number of records, and ids for the detail requests (the newest records and some search hits)."""
    newest = _get_json(port, "/api/v1/search?size=100&sort=newest")
    ids = [hit["id"] for hit in newest["hits"]]  # type: ignore[index]
    for query in ({"q": "図書館"}, {"q": "リコール"}, {"kind": "notice"}):
        found = _get_json(port, "/api/v1/search?" + urlencode({**query, "size": 20}))
        ids += [hit["id"] for hit in found["hits"]]  # type: ignore[index]
    return int(newest["total"]), sorted(set(ids))  # type: ignore[call-overload]


def run_load(
    data_dir: Path,
    *,
    users: int = 50,
    seconds: float = 60.0,
    warmup: float = 10.0,
    think: tuple[float, float] = (0.5, 1.5),
    workers: int = 2,
    seed: int = 29,
    push_every: float = 5.0,
) -> Report:
    """Start gunicorn over `data_dir`, warm every worker, run the load (and the freshness probe), stop the
    server; the figures."""
    key = make_shop_key(data_dir)
    port = free_port()
    log_file = data_dir / f"gunicorn-load-t29-{port}.log"
    server = start_gunicorn(data_dir, port, workers, log_file)
    try:
        wait_until_ready(server, port)
        records, ids = record_ids(port)
        # Each worker loads the Sudachi dictionary and fills its caches on its first requests: the memory to
        # follow is a warm worker's. A connection per request spreads the warm-up over the workers, which is
        # repeated (up to WARMUP_ROUNDS times) while one worker is still far smaller than the largest.
        pids = worker_pids(server.pid)
        for _ in range(WARMUP_ROUNDS):
            # Writes warm up too: the first notices pushed make each worker reopen its index reader and fill
            # the write path's caches, a one-time growth that is not the run's.
            warm_pushes = Report(0, 0, 0.0, 0, 0, {}, [], [], [], [], [])
            pusher = threading.Thread(
                target=probe_freshness, args=(port, key, time.monotonic() + warmup, 1.0, warm_pushes), daemon=True
            )
            pusher.start()
            drive(port, max(workers * 4, 8), warmup, (0.0, 0.0), ids, seed=0, keep=False)
            pusher.join(FRESHNESS_GIVE_UP_S + REQUEST_TIMEOUT_S)
            rss_start = [rss_mib(pid) for pid in pids]
            anon_start = [rss_mib(pid, "RssAnon") for pid in pids]
            if min(rss_start) >= WARM_FRACTION * max(rss_start):
                break
        freshness = Report(0, 0, 0.0, 0, 0, {}, [], [], [], [], [])
        prober = threading.Thread(
            target=probe_freshness, args=(port, key, time.monotonic() + seconds, push_every, freshness), daemon=True
        )
        prober.start()
        tally = drive(port, users, seconds, think, ids, seed)
        prober.join(FRESHNESS_GIVE_UP_S + REQUEST_TIMEOUT_S)
        rss_end = [rss_mib(pid) for pid in pids]
        anon_end = [rss_mib(pid, "RssAnon") for pid in pids]
    finally:
        stop(server)  # gracefully: each worker logs its pool figures as it stops
    pools = worker_exit_figures(log_file, "database pool waits")
    log_file.unlink(missing_ok=True)
    requests = sum(len(values) for values in tally.latencies_ms.values())
    return Report(
        records=records,
        users=users,
        seconds=seconds,
        requests=requests,
        errors=sum(tally.errors.values()),
        latencies_ms=dict(tally.latencies_ms),
        rss_start_mib=rss_start,
        rss_end_mib=rss_end,
        anon_start_mib=anon_start,
        anon_end_mib=anon_end,
        error_samples=tally.error_samples,
        freshness_s=freshness.freshness_s,
        freshness_missed=freshness.freshness_missed,
        pools=pools,
        database=make_url(database_url_for(data_dir)).get_backend_name(),
    )


# --- the script -------------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def print_report(report: Report) -> None:
    print(f"load_t29: {report.records:,} records ({report.database}), {report.users} users, "
          f"{report.seconds:.0f} s, loopback")  # fmt: skip
    print(f"  {'requests':<10} {report.requests:>8,}  ({report.requests / report.seconds:,.1f}/s)")
    print(f"  {'kind':<10} {'count':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    rows = [*sorted(report.latencies_ms.items()), ("all", report.all_latencies())]
    for kind, values in rows:
        if values:
            p50, p95, p99 = (percentile(values, q) for q in (50, 95, 99))
            print(f"  {kind:<10} {len(values):>8,} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f}")
    every = report.all_latencies()
    p95, p99 = (percentile(every, q) for q in (95, 99)) if every else (0.0, 0.0)
    print(f"  p95 {p95:.0f} ms ({_verdict(p95 <= TARGET_P95_MS)} <= {TARGET_P95_MS:.0f}); "
          f"p99 {p99:.0f} ms ({_verdict(p99 <= TARGET_P99_MS)} <= {TARGET_P99_MS:.0f})")  # fmt: skip
    print(f"  errors {report.errors:,} = {report.error_rate:.3%} ({_verdict(report.error_rate < TARGET_ERRORS)} "
          f"< {TARGET_ERRORS:.1%})")  # fmt: skip
    for sample in report.error_samples:
        print(f"    e.g. {sample}")
    if report.freshness_s:
        fresh = sorted(report.freshness_s)
        f50, f99 = (percentile(fresh, q) for q in (50, 99))
        print(f"  pushed notice → searchable: {len(fresh)} notices, p50 {f50:.2f} s, p99 {f99:.2f} s, max "
              f"{fresh[-1]:.2f} s ({_verdict(f99 <= TARGET_FRESHNESS_P99_S and not report.freshness_missed)} "
              f"p99 <= {TARGET_FRESHNESS_P99_S:.0f} s); not found: {report.freshness_missed}")  # fmt: skip
    shown = ", ".join(
        f"{a:.0f} → {b:.0f}" for a, b in zip(report.rss_start_mib, report.rss_end_mib, strict=True)
    )
    print(f"  worker RSS MiB (after warm-up → end): {shown}; largest growth {report.rss_growth:+.1%} "
          f"({_verdict(report.rss_growth <= TARGET_RSS_GROWTH)} <= {TARGET_RSS_GROWTH:.0%})")  # fmt: skip
    # RSS also counts the pages of the mmapped index that searches have touched so far; the heap is what leaks.
    heap = ", ".join(
        f"{a:.0f} → {b:.0f}" for a, b in zip(report.anon_start_mib, report.anon_end_mib, strict=True)
    )
    print(f"  of which anonymous (heap) MiB: {heap}; largest growth {report.anon_growth:+.1%} "
          f"({_verdict(report.anon_growth <= TARGET_RSS_GROWTH)} <= {TARGET_RSS_GROWTH:.0%})")  # fmt: skip
    if not report.pools:
        print("  database pool: no figures logged (see the workers' log)")
    for pool in report.pools:
        ok = pool["timeouts"] == 0 and pool["p99_ms"] <= TARGET_POOL_WAIT_P99_MS
        print(f"  database pool ({report.database}) worker {pool['pid']}: {pool['checkouts']:,} checkouts, "
              f"{pool['timeouts']} gave up, at most {pool['peak_in_use']} of {pool['size']} + "
              f"{pool['overflow_limit']} in use; wait p50 <= {pool['p50_ms']:g} ms, p99 <= {pool['p99_ms']:g} ms, "
              f"max {pool['max_ms']:.1f} ms ({_verdict(ok)} no exhaustion, p99 <= {TARGET_POOL_WAIT_P99_MS:.0f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, help="built when empty, reused otherwise (default: a temp dir)"
    )
    parser.add_argument(
        "--records", type=int, default=3000, help="livedoor articles besides the demo records"
    )
    parser.add_argument("--users", type=int, default=50, help="concurrent simulated users (default 50)")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="length of the measured load (default 60)"
    )
    parser.add_argument("--warmup", type=float, default=10.0, help="unmeasured load first (default 10 s)")
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 1.5), metavar=("MIN", "MAX"),
                        help="seconds a user waits between requests (default 0.5 1.5)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--push-every", type=float, default=5.0, help="seconds between pushed notices (default 5)")
    args = parser.parse_args()

    from benchmarks.profile_search import build, is_built

    temporary = args.data_dir is None
    data_dir = (args.data_dir or Path(tempfile.mkdtemp(prefix="load-t29-"))).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not is_built(data_dir):
            print(f"building {data_dir} (demo + {args.records:,} records)", file=sys.stderr, flush=True)
            build(data_dir, args.records)
        report = run_load(
            data_dir,
            users=args.users,
            seconds=args.seconds,
            warmup=args.warmup,
            think=tuple(args.think),  # type: ignore[arg-type]
            workers=args.workers,
            push_every=args.push_every,
        )
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    print_report(report)


if __name__ == "__main__":
    main()
