"""Helpers shared by the parser tests (fixtures, because --import-mode=importlib has no test package)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schemas import validate_record


@pytest.fixture(scope="session")
def assert_valid() -> Callable[[dict], None]:
    """Asserts that a draft validates once the pipeline adds what it adds (source, provenance). Stateless,
    so one per session (Hypothesis tests may use it)."""

    def check(draft: dict) -> None:
        assert "source" not in draft and "provenance" not in draft and "id" not in draft
        validate_record({**draft, "source": "crawl:1", "provenance": "government"})

    return check
