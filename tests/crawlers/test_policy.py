"""FetchPolicy.from_env: the crawl settings an operator sets, read once, refused when unusable."""

from __future__ import annotations

import pytest

from crawlers.netguard import AllowList
from crawlers.policy import FetchPolicy


def test_defaults_are_polite() -> None:
    policy = FetchPolicy.from_env({})
    assert policy.delay == 1.0
    assert policy.allow == AllowList()
    assert policy.user_agent.startswith("SocialLibraryBot/") and "+https://" in policy.user_agent


@pytest.mark.parametrize(("raw", "delay"), [("2.5", 2.5), ("0", 0.0), (" 3 ", 3.0), ("", 1.0)])
def test_the_crawl_delay_setting(raw: str, delay: float) -> None:
    assert FetchPolicy.from_env({"LIBRARY_CRAWL_DELAY": raw}).delay == delay


@pytest.mark.parametrize("raw", ["-1", "abc", "nan", "inf"])
def test_an_unusable_crawl_delay_is_refused_in_japanese(raw: str) -> None:
    with pytest.raises(ValueError, match="LIBRARY_CRAWL_DELAY.*0 以上の秒数"):
        FetchPolicy.from_env({"LIBRARY_CRAWL_DELAY": raw})


def test_overrides_win_over_the_environment() -> None:
    assert FetchPolicy.from_env({"LIBRARY_CRAWL_DELAY": "5"}, delay=0.0).delay == 0.0


def test_contact_url_is_in_the_user_agent() -> None:
    policy = FetchPolicy.from_env({"LIBRARY_CRAWL_CONTACT_URL": "https://town.example.jp/bot"})
    assert policy.user_agent.endswith("(+https://town.example.jp/bot)")
