"""ReDoS check (RELIABILITY T16): every regex the parsers run on crawled text, on 10 KiB adversarial input.

The patterns are found, not listed: any module-level compiled regex in the parser modules is checked, so a
new one cannot be forgotten. (crawlers.charset has its own tests; its <meta> scan only ever sees 1 KiB.)
"""

from __future__ import annotations

import importlib
import re
import time

import pytest

MODULES = ["crawlers.parse.dates", "crawlers.parse.feed", "crawlers.parse.html", "crawlers.parse.text",
           "crawlers.parse.opendata", "crawlers.parse.upload", "crawlers.parse.urls"]
SIZE = 10 * 1024
LIMIT = 0.1  # seconds, for all the operations on one input

# Repeated units that take each pattern's quantified parts as far as they go; each input also gets a tail
# that fails the match, the classic way to make a backtracking engine retry every split.
PUMPS = [
    "1", "12", "2026", "2026年", "年4月", "令和", "令和1", "令和元年", "2026/", "2026/4/", "1-", "1.", "1:",
    "1: ", "1時", "1時1", "午後1", "午後 1 時", " ", "\u3000", " \t", "\u00a0 ", "a", "a-", "ja-JP-", "<",
    "<!", "<?xml ", "<a:", "<item", "<meta ", "charset=", "encoding='", "(", "(月", "(月・", "曜日", "公開",
    "掲載日 ", "更新日: ", "ァ―", "―", ";", "；", "\x1b$B", "\x00", "\u3042", "ﾃ", "=\"", "'",
]
TAILS = ["", "!", "年", ")"]


def _patterns() -> list[tuple[str, re.Pattern]]:
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        found += [(f"{name}.{attribute}", value) for attribute, value in vars(module).items()
                  if isinstance(value, re.Pattern)]
    return found


PATTERNS = _patterns()


def test_the_patterns_are_found():
    assert len(PATTERNS) >= 10


@pytest.mark.parametrize(("name", "pattern"), PATTERNS, ids=[name for name, _ in PATTERNS])
def test_pattern_is_linear_on_adversarial_input(name, pattern):
    for pump in PUMPS:
        for tail in TAILS:
            text = pump * (SIZE // len(pump)) + tail
            started = time.thread_time()  # CPU time: other load on the host must not fail the check
            for _ in pattern.finditer(text):
                pass
            pattern.fullmatch(text)
            pattern.match(text)
            elapsed = time.thread_time() - started
            assert elapsed <= LIMIT, f"{name} took {elapsed * 1000:.0f} ms on {pump!r} * n + {tail!r}"
