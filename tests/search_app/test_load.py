"""T29 in small: a bounded loopback load on gunicorn over the demo data answers every request and keeps the
workers' memory flat. Latency is benchmarks/load_t29.py's business (no timed assertions in tests).

Rate limits are off for the server (LIBRARY_FLASK_RATELIMIT_ENABLED=false, set by the benchmark's launcher): all
simulated users share 127.0.0.1 and would be limited as one citizen.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

LOAD_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "load_t29.py"


def load_t29() -> ModuleType:
    # benchmarks/ is scripts, not an installed package: load the module from its file.
    spec = importlib.util.spec_from_file_location("load_t29", LOAD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_bounded_load_has_no_errors_and_flat_memory(data_dir: Path, demo_data_template: Path) -> None:
    shutil.copytree(demo_data_template, data_dir, dirs_exist_ok=True)
    report = load_t29().run_load(data_dir, users=50, seconds=5.0, warmup=1.5, think=(0.05, 0.2))
    assert report.requests > 100, report  # the load really ran
    assert set(report.latencies_ms) == {"search", "detail", "suggest"}
    assert report.errors == 0, report.error_samples
    assert len(report.rss_start_mib) == 2  # both workers were followed
    assert report.rss_growth <= 0.10, (report.rss_start_mib, report.rss_end_mib)
    # T29: the pool never ran dry; each worker logged its figures as it stopped.
    assert len(report.pools) == 2, report.pools
    for pool in report.pools:
        assert pool["timeouts"] == 0, pool
        assert pool["checkouts"] > 0 and pool["peak_in_use"] <= pool["size"] + pool["overflow_limit"], pool


def api_load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_load", LOAD_SCRIPT.with_name("api_load.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_mix_has_a_long_tail_the_result_cache_cannot_hide() -> None:
    """api_load.py's ratio is only honest if most distinct searches are rare: a head of popular queries, then
    title nouns that are not in the head, drawn by Zipf's law."""
    load = api_load()
    tail = load.long_tail_queries(500)
    head = [load.urlencode(query) for query in load.QUERIES]
    assert len(tail) == len(set(tail)) == 500
    assert not set(tail) & set(head)
    drawn = load.zipf_sequence(head + tail, 2_000, 1.0)
    counts = Counter(drawn)
    assert counts[head[0]] > counts[head[-1]] > 0  # the most popular search comes first
    head_mean = sum(counts[query] for query in head) / len(head)
    tail_mean = sum(counts[query] for query in tail) / len(tail)
    assert head_mean > 10 * tail_mean
    rare = sum(1 for query in tail if counts[query] <= 2)
    assert rare > len(tail) / 2  # a real tail, not a few URLs on repeat
