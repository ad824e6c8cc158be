"""Requests/s of /api/v1/search against /api/v1/ping on the same gunicorn server, in the same run (issue 3, T29).

    .venv/bin/python benchmarks/api_load.py --data-dir /tmp/lib100k --records 100000   # issue 3: ~100k records
    .venv/bin/python benchmarks/api_load.py --data-dir data          # any data directory the library has built
    .venv/bin/python benchmarks/api_load.py --data-dir data --seconds 60 --connections 16 --queries my.txt
    LIBRARY_FLASK_SEARCH_CACHE_SECONDS=0 .venv/bin/python benchmarks/api_load.py --data-dir data   # no result cache

An empty `--data-dir` is first filled with the demo records plus `--records` livedoor articles (as
benchmarks/profile_search.py builds it; about 10 minutes for 100,000 here); a built one is reused as it is.

Which searches, and how often (`--mix`): a search box's log has a head of popular searches and a long tail of
searches made once or twice, so the default `zipf` mix draws each search from the citizen queries below (the
head) followed by `--tail` words and word pairs from the corpus's titles (SudachiPy nouns), the one of rank k
with weight 1/k^`--zipf` (Zipf's law, as query logs follow it). Repeats can come from each worker's result
cache (search_app/cache.py: the embedded engine's results until the index changes, which nothing does during
this run, the 2048 most recently used per worker) or from the file the workers share behind it
(search_app/shared_cache.py, emptied before each run), so the share they answered is printed, read from the
workers' exit log; `--mix head` cycles through the head alone, which the cache then answers almost entirely. Set
LIBRARY_FLASK_SEARCH_CACHE_SECONDS=0 for the cost of searches that all miss it.

gunicorn serves `search_app:create_app()` with the production settings (deploy/gunicorn.conf.py: gthread
workers, 2 by default, with 8 threads each) on a free loopback port over the given data directory (SQLite +
tantivy; LIBRARY_DATABASE_URL and LIBRARY_SEARCH_ENGINE pass through). Three settings differ, for the
measurement: no access log, no worker recycling (max_requests), so that the workers' memory can be followed (T29:
flat), and no rate limit on the public search (LIBRARY_FLASK_RATELIMIT_ENABLED=false), which would answer 429.

The load is bounded: `--connections` concurrent clients for `--seconds` per endpoint, split into rounds that
alternate ping and search, so that a change in the machine's load during the run weighs on both alike. The
clients are `wrk` when it is installed (`apt-get install wrk`), else Python processes with http.client, one per
core, each running threads. Both share the machine's cores with the server, so absolute rates are a floor; the
ratio is the figure to read.

The head is realistic citizen queries (words, kana, phrases, filters, sorting, paging, codes, misses), or the
lines of `--queries`: each line a query string (`q=…&kind=…`) or plain words (sent as q).

Printed: requests/s, p50/p99 latency and errors per endpoint, the search/ping ratio (target >= 0.5), the share
of searches the result cache answered, and the workers' resident memory before and after the load. It never
fails on a missed target.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib.util import find_spec
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
GUNICORN_CONFIG = REPO / "deploy" / "gunicorn.conf.py"
HOST = "127.0.0.1"
PING = "/api/v1/ping"
SEARCH = "/api/v1/search"
RATIO_TARGET = 0.5
ZIPF_DRAWS = 40_000  # searches drawn per run; wrk goes through them in a shuffled order each round
HIRAGANA_ONLY = re.compile("[\u3041-\u309f]+")
READY_TIMEOUT_S = 120.0

# What people type into a town library's search box, and the filters the result page offers.
QUERIES: list[dict[str, str]] = [
    {"q": "図書館"},
    {"q": "としょかん"},
    {"q": "リコール"},
    {"q": "モバイルバッテリー 回収"},
    {"q": "子育て 支援"},
    {"q": "ごみの出し方"},
    {"q": "粗大ごみ"},
    {"q": "AED"},
    {"q": "アレルギー 卵"},
    {"q": "小麦"},
    {"q": "夏祭り"},
    {"q": "ボランティア 募集"},
    {"q": "高齢者 見守り"},
    {"q": "予防接種"},
    {"q": "避難所"},
    {"q": "防災訓練"},
    {"q": "ポイント"},
    {"q": "生協 配達"},
    {"q": "公民館 講座"},
    {"q": '"無償交換"'},
    {"q": "電気ケトル -説明書"},
    {"q": "図書館 OR 公民館"},
    {"q": "4501234001017"},
    {"q": "SB-PB10K"},
    {"q": "ぬいぐるみ 回収 期限"},
    {"q": ""},
    {"kind": "notice", "sort": "newest"},
    {"kind": "program", "sort": "event"},
    {"category": "safety.recall"},
    {"q": "子ども", "kind": "program"},
    {"q": "市", "page": "2"},
    {"q": "相談", "provenance": "government"},
    {"region": "みなと市", "year": "2026"},
    {"from": "2026-03-01", "to": "2026-03-31"},
]

# What people type into the box, a few characters at a time, kana included (suggestions).
TYPED = ["と", "とし", "としょ", "図書", "図書館", "リコ", "リコール", "こう", "こうみ", "ごみ", "子育", "ぼうさい",
         "モバイル", "アレル", "ボラン", "sb-", "夏祭"]  # fmt: skip
# T29's mix of requests: searches, a record's page, suggestions as someone types.
MIX = (("search", 0.60), ("detail", 0.25), ("suggest", 0.15))


def probe_notice(model: str) -> dict[str, object]:
    """The recall notice the freshness probes push (load_t29.py, locustfile.py), found by its model number."""
    from datetime import UTC, datetime, timedelta

    return {
        "shop_notice_id": f"load-{model}", "maker": "負荷試験電機", "product": f"試験用ケトル {model}",
        "model_numbers": [model], "hazard": "試験です", "action": "対応は不要です",
        "valid_until": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    }  # fmt: skip


@dataclass
class Sample:
    """One client's view of a round: how many answers, how many errors, and each answer's latency."""

    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, other: Sample) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latencies_ms.extend(other.latencies_ms)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the server -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start_gunicorn(
    data_dir: Path, port: int, workers: int, log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """gunicorn over `data_dir`; with `log_file`, its log at info level goes there (the workers' exit lines)."""
    # The public search's rate limit (60/min per address) would turn the load into 429s: it is switched off.
    env = {**os.environ, "LIBRARY_DATA_DIR": str(data_dir), "LIBRARY_FLASK_RATELIMIT_ENABLED": "false"}
    # As the image runs it (Dockerfile); MALLOC_ARENA_MAX=16 is glibc's own default on 2 cores, for comparison.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    # Every run starts cold: the workers' shared results of an earlier run over this index would answer its
    # repeats (search_app/shared_cache.py keeps them across restarts while the index is unchanged).
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"search-cache.sqlite3{suffix}").unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "gunicorn",
        "--config", str(GUNICORN_CONFIG),
        # Command-line settings override the file's.
        "--bind", f"{HOST}:{port}",
        "--workers", str(workers),
        "--access-logfile", os.devnull,
        "--max-requests", "0",
        "--log-level", "info" if log_file else "warning",
        *(["--error-logfile", str(log_file)] if log_file else []),
        "search_app:create_app()",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def wait_until_ready(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with status {server.returncode} before answering")
        try:
            if get(port, PING, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer {PING} within {READY_TIMEOUT_S:.0f} s")


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return sorted(int(pid) for pid in children.read_text().split()) if children.exists() else []


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory in MiB: all of it (VmRSS), or RssAnon (its heap: what a leak grows) or RssFile
    (pages of mapped files, the search index and the dictionary, which the kernel may drop and read again)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_exit_figures(log_file: Path, label: str) -> list[dict[str, Any]]:
    """What each worker logged under `label` as it stopped (deploy/gunicorn.conf.py's worker_exit), as JSON."""
    if not log_file.exists():
        return []
    lines = re.findall(re.escape(label) + r" (\{.*\})", log_file.read_text(errors="replace"))
    return [json.loads(line) for line in lines]


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)  # gunicorn's graceful shutdown of master and workers
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- clients: Python ----------------------------------------------------------------------------------------


def _client_thread(port: int, paths: list[str], deadline: float, seed: int, sample: Sample) -> None:
    order = random.Random(seed)
    while time.monotonic() < deadline:
        path = order.choice(paths)
        started = time.perf_counter()
        try:
            status, _, _ = get(port, path)
        except (OSError, http.client.HTTPException):
            sample.errors += 1
            continue
        sample.latencies_ms.append((time.perf_counter() - started) * 1000)
        sample.requests += 1
        if status != 200:
            sample.errors += 1


def drive_process(port: int, paths: list[str], seconds: float, threads: int, seed: int) -> Sample:
    """One client process: `threads` connections, one request at a time each, until the time is up."""
    deadline = time.monotonic() + seconds
    samples = [Sample() for _ in range(threads)]
    runners = [
        threading.Thread(target=_client_thread, args=(port, paths, deadline, seed * 1000 + i, samples[i]))
        for i in range(threads)
    ]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    total = Sample()
    for sample in samples:
        total.add(sample)
    return total


class PythonLoad:
    name = "Python http.client"

    def __init__(self, connections: int) -> None:
        self.processes = min(os.cpu_count() or 1, connections)
        self.threads = max(1, connections // self.processes)
        self.pool = ProcessPoolExecutor(self.processes)

    def run(self, port: int, paths: list[str], seconds: float, seed: int) -> tuple[Sample, float]:
        started = time.perf_counter()
        futures = [
            self.pool.submit(drive_process, port, paths, seconds, self.threads, seed * 100 + i)
            for i in range(self.processes)
        ]
        total = Sample()
        for future in futures:
            total.add(future.result())
        return total, time.perf_counter() - started

    def close(self) -> None:
        self.pool.shutdown()


# --- clients: wrk -----------------------------------------------------------------------------------------

# Cycles through the paths; reports counts and latency percentiles (microseconds) as one JSON line.
WRK_SCRIPT = """
local paths = {%s}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout
  io.write(string.format('WRK {"requests": %%d, "errors": %%d, "duration_us": %%d, "p50": %%d, "p99": %%d}\\n',
    summary.requests, errors, summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


class WrkLoad:
    name = "wrk"

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.threads = min(os.cpu_count() or 1, connections)
        self.scripts = Path(tempfile.mkdtemp(prefix="api-load-"))

    def run(self, port: int, paths: list[str], seconds: float, seed: int) -> tuple[Sample, float]:
        script = self.scripts / f"paths-{seed}.lua"
        shuffled = random.Random(seed).sample(paths, len(paths))
        script.write_text(WRK_SCRIPT % ", ".join(json.dumps(path) for path in shuffled), encoding="utf-8")
        command = [
            "wrk", f"-t{self.threads}", f"-c{self.connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "-s", str(script), f"http://{HOST}:{port}",
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        line = next(line for line in output.splitlines() if line.startswith("WRK "))
        figures = json.loads(line[4:])
        # wrk gives percentiles, not samples: both are kept as one "sample" each so that rounds can be merged.
        sample = Sample(
            figures["requests"], figures["errors"], [figures["p50"] / 1000, figures["p99"] / 1000]
        )
        return sample, figures["duration_us"] / 1e6

    def close(self) -> None:
        shutil.rmtree(self.scripts, ignore_errors=True)


# --- the run ----------------------------------------------------------------------------------------------


def long_tail_queries(count: int, seed: int = 3) -> list[str]:
    """`count` distinct searches the head does not hold: nouns of the corpus's titles (SudachiPy, mode C), one
    alone or two of one title together, as people search for what a page is about."""
    import gzip

    from sudachipy import Dictionary, SplitMode

    from benchmarks.profile_search import CORPUS

    tokenizer = Dictionary().create(SplitMode.C)
    words: set[str] = set()
    pairs: set[str] = set()
    with gzip.open(CORPUS, "rt", encoding="utf-8") as lines:
        for line in lines:
            nouns = [
                m.surface()
                for m in tokenizer.tokenize(json.loads(line)["title"])
                if m.part_of_speech()[0] == "名詞"
                and m.part_of_speech()[1] != "数詞"
                and len(m.surface()) >= 2
                and not HIRAGANA_ONLY.fullmatch(m.surface())  # ため, こと: nobody searches for those
            ]
            words.update(nouns)
            pairs.update(f"{a} {b}" for a, b in pairwise(nouns) if a != b)
            if len(words) >= 4 * count and len(pairs) >= 4 * count:
                break
    head = {query.get("q") for query in QUERIES}
    rng = random.Random(seed)
    # Mostly single words, as in a search box's log; pairs for the rest.
    singles = rng.sample(sorted(words - head), min(len(words - head), count * 2 // 3))
    doubles = rng.sample(sorted(pairs - head), min(len(pairs - head), count - len(singles)))
    chosen = singles + doubles
    rng.shuffle(chosen)
    return [urlencode({"q": query}) for query in chosen]


def zipf_sequence(ranked: list[str], length: int, exponent: float, seed: int = 5) -> list[str]:
    """`length` draws from `ranked`, the one of rank k with weight 1/k^exponent."""
    weights = [1 / rank**exponent for rank in range(1, len(ranked) + 1)]
    return random.Random(seed).choices(ranked, weights, k=length)


def read_queries(path: Path | None) -> list[str]:
    """Percent-encoded query strings: the built-in list, or the file's lines."""
    if path is None:
        return [urlencode(query) for query in QUERIES]
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [line if "=" in line else urlencode({"q": line}) for line in lines]


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class Figures:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def summarise(rounds: list[tuple[Sample, float]], from_wrk: bool) -> Figures:
    total = Sample()
    for sample, _ in rounds:
        total.add(sample)
    seconds = sum(elapsed for _, elapsed in rounds)
    if from_wrk:
        # Per-round percentiles: the median of the p50s and the worst p99 (a p99 cannot be averaged).
        p50 = statistics.median(sample.latencies_ms[0] for sample, _ in rounds)
        p99 = max(sample.latencies_ms[1] for sample, _ in rounds)
    else:
        p50, p99 = percentile(total.latencies_ms, 50), percentile(total.latencies_ms, 99)
    return Figures(total.requests, seconds, total.errors, p50, p99)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a data directory (built when empty)")
    parser.add_argument(
        "--records", type=int, default=0, help="livedoor articles besides the demo records, when building"
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="load per endpoint, in total (default 20)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternations of ping and search (default 4)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="unmeasured load first, in seconds (default 10)"
    )
    parser.add_argument("--queries", type=Path, help="the head: one query string or plain query per line")
    parser.add_argument("--mix", choices=("zipf", "head"), default="zipf",
                        help="zipf: head and long tail by Zipf's law (default); head: cycle through the head")
    parser.add_argument("--tail", type=int, default=5000, help="distinct long-tail searches (default 5000)")
    parser.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of the mix (default 1.0)")
    parser.add_argument(
        "--python-clients", action="store_true", help="use the Python clients even if wrk exists"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if find_spec("gunicorn") is None:
        raise SystemExit(
            "gunicorn is not installed (a dependency of the package): .venv/bin/pip install -e ."
        )
    data_dir = args.data_dir.expanduser().resolve()
    sys.path.insert(0, str(REPO))  # run as a script: the repository's packages, benchmarks included
    from benchmarks.profile_search import build, is_built

    if not is_built(data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
        log(f"building {data_dir} (demo + {args.records:,} records)")
        build(data_dir, args.records)
    head = read_queries(args.queries)
    if args.mix == "zipf":
        ranked = head + long_tail_queries(args.tail)
        queries = zipf_sequence(ranked, ZIPF_DRAWS, args.zipf)
        log(f"{len(ranked):,} distinct searches ({len(head)} head), {ZIPF_DRAWS:,} draws; "
            f"{len(set(queries)):,} distinct drawn")  # fmt: skip
    else:
        ranked = queries = head
    paths = [f"{SEARCH}?{query}" for query in queries]
    use_wrk = shutil.which("wrk") is not None and not args.python_clients
    load: PythonLoad | WrkLoad = WrkLoad(args.connections) if use_wrk else PythonLoad(args.connections)

    port = free_port()
    log(f"starting gunicorn ({args.workers} workers) on {HOST}:{port} over {data_dir}")
    server_log = Path(tempfile.mkdtemp(prefix="api-load-log-")) / "gunicorn.log"
    server = start_gunicorn(data_dir, port, args.workers, server_log)
    try:
        wait_until_ready(server, port)
        status, headers, body = get(port, f"{SEARCH}?size=1")
        if status != 200:
            raise SystemExit(f"{SEARCH} answered {status}: {body[:300]!r}")
        records = json.loads(body)["total"]
        # Every worker loads its analyzer on its first search and fills its caches: warm all of them before
        # measuring, so that the memory figures compare a warm worker with itself. The Python clients open a
        # connection per request, which spreads the warm-up over the workers; wrk's kept-alive connections
        # could leave one of them cold.
        log(f"warming up for {args.warmup:.0f} s")
        warm_up = PythonLoad(args.connections)
        try:
            warm_up.run(port, [*paths, PING], args.warmup, seed=0)
        finally:
            warm_up.close()
        workers = worker_pids(server.pid)
        rss_before = [rss_mib(pid) for pid in workers]

        per_round = args.seconds / args.rounds
        ping_rounds: list[tuple[Sample, float]] = []
        search_rounds: list[tuple[Sample, float]] = []
        for number in range(1, args.rounds + 1):
            log(f"round {number}/{args.rounds}: {per_round:.1f} s of ping, then {per_round:.1f} s of search")
            ping_rounds.append(load.run(port, [PING], per_round, seed=number))
            search_rounds.append(load.run(port, paths, per_round, seed=number))
        rss_after = [rss_mib(pid) for pid in workers]
    finally:
        stop(server)
        load.close()

    ping = summarise(ping_rounds, use_wrk)
    search = summarise(search_rounds, use_wrk)
    ratio = search.rate / ping.rate if ping.rate else 0.0
    print(f"api_load: {records:,} records in {data_dir}")
    print(
        f"  server: gunicorn ({GUNICORN_CONFIG.relative_to(REPO)}), {args.workers} workers; "
        f"clients: {load.name}, {args.connections} connections; "
        f"{args.rounds} rounds, {args.seconds:.0f} s per endpoint"
    )
    if args.mix == "zipf":
        print(f"  searches: {len(ranked):,} distinct ({len(head)} head + long tail of the titles' nouns), "
              f"drawn by Zipf's law (exponent {args.zipf:g})")  # fmt: skip
    else:
        print(f"  searches: {len(head)} URLs in turn (head only)")
    print(f"  {'endpoint':<16} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, figures in ((PING, ping), (SEARCH, search)):
        print(
            f"  {name:<16} {figures.requests:>9,} {figures.rate:>9,.1f} {figures.p50_ms:>8.1f} "
            f"{figures.p99_ms:>8.1f} {figures.errors:>7,}"
        )
    verdict = "meets" if ratio >= RATIO_TARGET else "misses"
    print(f"  search/ping rate ratio: {ratio:.2f} ({verdict} the target >= {RATIO_TARGET})")
    caches = worker_exit_figures(server_log, "search result cache")
    own = sum(cache["hits"] for cache in caches)
    shared = sum(cache.get("shared_hits", 0) for cache in caches)
    looked_up = own + shared + sum(cache["misses"] for cache in caches)
    if looked_up:
        print(f"  result cache: answered {(own + shared) / looked_up:.0%} of {looked_up:,} searches, warm-up "
              f"included ({own / looked_up:.0%} by the worker's own, {shared / looked_up:.0%} by the shared file)")
    else:
        print("  result cache: off, or no figures logged")
    shutil.rmtree(server_log.parent, ignore_errors=True)
    if rss_before and len(rss_after) == len(rss_before):
        growth = max((after - before) / before for before, after in zip(rss_before, rss_after, strict=True))
        shown = ", ".join(f"{b:.0f} → {a:.0f}" for b, a in zip(rss_before, rss_after, strict=True))
        print(f"  worker RSS MiB (before → after the load): {shown}; largest growth {growth:+.1%}")
    print(f"  Server header: {headers.get('Server', '(none)')}")


if __name__ == "__main__":
    main()
