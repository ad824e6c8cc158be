"""T16 in CI: coverage-guided fuzzing of the four parser targets with atheris (fuzz_atheris.py), 10 CPU-minutes in all.

Each target runs as its own process (libFuzzer exits the process on a finding), two at a time on the 2-core CI,
seeded with the kept crashers of its kind. A finding fails the test and names the input libFuzzer wrote; copy it
into crashers/ so test_fuzz.py replays it for good. LIBRARY_FUZZ_SECONDS sets the time per target (default 150;
the nightly run gives each target hours).
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is not installed (pip install -e '.[test]' installs it)")

HERE = Path(__file__).parent
FUZZER = HERE / "fuzz_atheris.py"
CRASHERS = HERE / "crashers"
TARGETS = ("html", "feed", "csv", "upload")
SECONDS = int(os.environ.get("LIBRARY_FUZZ_SECONDS") or 150)


def seed_corpus(target: str, directory: Path) -> None:
    """The kept crashers of this target (uncompressed), so the run starts from inputs that once broke a parser."""
    directory.mkdir(parents=True)
    for path in CRASHERS.iterdir():
        if path.name.startswith(target + "-"):
            data = path.read_bytes()
            (directory / path.name.removesuffix(".gz")).write_bytes(
                gzip.decompress(data) if path.suffix == ".gz" else data
            )


def fuzz(target: str, work: Path) -> tuple[str, int, str, list[Path]]:
    corpus, findings = work / f"corpus-{target}", work / f"findings-{target}"
    seed_corpus(target, corpus)
    findings.mkdir()
    process = subprocess.run(
        [sys.executable, str(FUZZER), target, f"-max_total_time={SECONDS}", "-timeout=2", "-rss_limit_mb=2048",
         f"-artifact_prefix={findings}/", "-print_final_stats=1", str(corpus)],
        capture_output=True, text=True, timeout=SECONDS + 120, cwd=HERE.parents[2],
    )  # fmt: skip
    return target, process.returncode, process.stderr[-3000:], sorted(findings.iterdir())


def test_the_parsers_survive_coverage_guided_fuzzing(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda target: fuzz(target, tmp_path), TARGETS))
    problems = [
        f"{target}: exit {code}, inputs {[str(p) for p in found]}\n{log}"
        for target, code, log, found in results
        if code != 0 or found
    ]
    assert problems == [], "\n\n".join(problems)
    # Each run really fuzzed: libFuzzer's final statistics report how many inputs it executed.
    for target, _, log, _ in results:
        assert "stat::number_of_executed_units" in log, f"{target} printed no statistics:\n{log}"
