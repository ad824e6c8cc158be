"""robots.txt conformance (RELIABILITY T14), over a loopback server, through the SafeFetcher."""

from __future__ import annotations

import socket

import pytest

from crawlers.errors import ForbiddenAddress, RobotsDisallowed, RobotsUnavailable
from crawlers.netguard import AllowList, CheckedURL, check_url

KIB = 1024
PAGE = {"Content-Type": "text/html; charset=utf-8"}


@pytest.fixture()
def site(make_server):
    """A fresh origin whose pages all answer 200; set its robots.txt with ``robots(...)``."""
    server = make_server()
    for path in ("/recall/public/x", "/recall/x", "/private/x", "/public", "/early", "/late", "/within",
                 "/blocked", "/ok", "/page"):
        server.route(path)(lambda request: request.reply(200, b"<p>page</p>", PAGE))
    return server


def robots(server, body: bytes = b"", status: int = 200, headers: dict[str, str] | None = None) -> None:
    server.route("/robots.txt")(
        lambda request: request.reply(status, body, {"Content-Type": "text/plain"} | (headers or {})))


def allowed(fetcher, server, path: str) -> bool:
    try:
        fetcher.fetch(server.url(path))
    except RobotsDisallowed:
        return False
    return True


def test_longest_match_wins(site, make_fetcher) -> None:
    robots(site, b"User-agent: *\nDisallow: /recall\nAllow: /recall/public\n")
    fetcher = make_fetcher()
    assert allowed(fetcher, site, "/recall/public/x")
    assert not allowed(fetcher, site, "/recall/x")
    assert site.hits["/recall/x"] == 0


@pytest.mark.parametrize("agent", ["sociallibrarybot", "SOCIALLIBRARYBOT", "SocialLibraryBot"])
def test_user_agent_match_is_case_insensitive(agent, site, make_fetcher) -> None:
    robots(site, b"User-agent: " + agent.encode() + b"\nDisallow: /private\n\nUser-agent: *\nDisallow: /\n")
    fetcher = make_fetcher()
    assert not allowed(fetcher, site, "/private/x")
    assert allowed(fetcher, site, "/public")  # our group applies, not the catch-all


@pytest.mark.parametrize("status", [404, 410, 401, 403])
def test_unavailable_robots_allows_everything(status, site, make_fetcher) -> None:
    robots(site, b"User-agent: *\nDisallow: /\n", status=status)  # the body of an error is not robots.txt
    assert allowed(make_fetcher(), site, "/page")


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_disallow_everything(status, site, make_fetcher) -> None:
    robots(site, status=status)
    with pytest.raises(RobotsUnavailable, match=f"HTTP {status}"):
        make_fetcher().fetch(site.url("/page"))
    assert site.hits["/page"] == 0


def test_timeout_disallows_everything(site, make_fetcher) -> None:
    site.route("/robots.txt")(lambda request: request.hold(5))
    with pytest.raises(RobotsUnavailable, match="read-timeout"):
        make_fetcher(read_timeout=0.2).fetch(site.url("/page"))
    assert site.hits["/page"] == 0


def test_connection_refused_disallows_everything(make_fetcher) -> None:
    with socket.create_server(("127.0.0.2", 0)) as probe:
        closed_port = probe.getsockname()[1]
    with pytest.raises(RobotsUnavailable, match="connect-failed"):
        make_fetcher().fetch(f"http://127.0.0.2:{closed_port}/page")


def _robots_chain(server, hops: int) -> None:
    server.route("/robots.txt")(lambda request: request.redirect(f"/robots-hop/{hops - 1}", 301))
    for hop in range(hops):
        target = f"/robots-hop/{hop - 1}" if hop else "/robots-final.txt"
        server.route(f"/robots-hop/{hop}")(lambda request, target=target: request.redirect(target, 301))
    server.route("/robots-final.txt")(
        lambda request: request.reply(200, b"User-agent: *\nDisallow: /blocked\n",
                                      {"Content-Type": "text/plain"}))


def test_five_redirects_are_followed(site, make_fetcher) -> None:
    _robots_chain(site, 4)  # /robots.txt + 4 hops = 5 redirects
    fetcher = make_fetcher()
    assert allowed(fetcher, site, "/ok")
    assert not allowed(fetcher, site, "/blocked")
    assert site.hits["/robots-final.txt"] == 1


def test_six_redirects_make_robots_unavailable(site, make_fetcher) -> None:
    _robots_chain(site, 5)
    with pytest.raises(RobotsUnavailable, match="max-redirects"):
        make_fetcher().fetch(site.url("/ok"))
    assert site.hits["/ok"] == 0


def test_only_the_first_500_kib_are_parsed(site, make_fetcher) -> None:
    head = b"User-agent: *\nDisallow: /early\n"
    padding = b"# " + b"." * 1000 + b"\n"
    body = head + padding * (490 * KIB // len(padding)) + b"Disallow: /within\n"
    body += padding * (2048 * KIB // len(padding)) + b"Disallow: /late\n"
    assert len(body) > 2 * 1024 * KIB
    robots(site, body)
    fetcher = make_fetcher()
    assert not allowed(fetcher, site, "/early")
    assert not allowed(fetcher, site, "/within")  # inside the first 500 KiB
    assert allowed(fetcher, site, "/late")  # beyond it: never read


def test_cache_is_refetched_after_24_hours(site, make_fetcher, clock) -> None:
    robots(site, b"User-agent: *\nDisallow: /blocked\n")
    fetcher = make_fetcher()
    assert allowed(fetcher, site, "/ok")
    assert allowed(fetcher, site, "/ok")
    clock.now += 23 * 3600
    assert not allowed(fetcher, site, "/blocked")
    assert site.hits["/robots.txt"] == 1
    robots(site, b"User-agent: *\nDisallow: /ok\n")
    clock.now += 3600
    assert not allowed(fetcher, site, "/ok")
    assert site.hits["/robots.txt"] == 2


def test_an_unreachable_robots_is_retried_after_the_error_ttl(site, make_fetcher, clock) -> None:
    robots(site, status=500)
    fetcher = make_fetcher(robots_error_ttl=600.0)
    for _ in range(3):
        with pytest.raises(RobotsUnavailable):
            fetcher.fetch(site.url("/page"))
    assert site.hits["/robots.txt"] == 1
    robots(site, status=404)
    clock.now += 601
    assert allowed(fetcher, site, "/page")


@pytest.mark.parametrize(("policy_delay", "expected"), [(0.0, 3.0), (5.0, 5.0)])
def test_crawl_delay_is_honoured_when_larger(policy_delay, expected, site, make_fetcher, clock) -> None:
    robots(site, b"User-agent: *\nCrawl-delay: 3\n")
    fetcher = make_fetcher(delay=policy_delay)
    fetcher.fetch(site.url("/page"))
    clock.sleeps.clear()  # the robots.txt request itself already made the page wait the policy delay
    fetcher.fetch(site.url("/page"))
    assert clock.sleeps == [expected]
    assert fetcher.robots.crawl_delay(_checked(site, "/page")) == 3.0


def _checked(server, path: str) -> CheckedURL:
    return check_url(server.url(path), allow=AllowList.parse("127.0.0.2"), ports=frozenset({80}))


def test_robots_fetch_goes_through_the_ssrf_guard(site, make_fetcher, canary) -> None:
    site.route("/robots.txt")(lambda request: request.redirect(f"http://127.0.0.1:{canary.port}/robots.txt"))
    with pytest.raises(RobotsUnavailable, match="loopback"):
        make_fetcher().fetch(site.url("/page"))
    assert canary.accepts == 0


def test_a_refused_site_reports_its_own_rule_not_robots(make_fetcher, resolver, canary) -> None:
    resolver.answers["evil.test"] = ["127.0.0.1"]
    fetcher = make_fetcher(resolver=resolver, allowed_ports=frozenset({80, canary.port}))
    with pytest.raises(ForbiddenAddress) as refused:
        fetcher.fetch(f"http://evil.test:{canary.port}/page")
    assert refused.value.url == f"http://evil.test:{canary.port}/page"
    assert canary.accepts == 0


def test_robots_of_a_redirect_target_is_obeyed(site, make_server, make_fetcher) -> None:
    other = make_server()
    robots(other, b"User-agent: *\nDisallow: /\n")
    site.route("/elsewhere")(lambda request: request.redirect(other.url("/page")))
    with pytest.raises(RobotsDisallowed) as refused:
        make_fetcher().fetch(site.url("/elsewhere"))
    assert refused.value.url == other.url("/page")
    assert other.hits["/page"] == 0


def test_robots_is_fetched_once_per_origin(site, make_fetcher) -> None:
    robots(site, b"User-agent: *\nAllow: /\n")
    fetcher = make_fetcher()
    for _ in range(5):
        fetcher.fetch(site.url("/page"))
    assert site.hits["/robots.txt"] == 1
    assert site.seen_headers["/robots.txt"][0]["user-agent"].startswith("SocialLibraryBot/")
