"""SSRF through the real fetcher: T10 destinations, T11 redirects, T12 DNS rebinding and pinning.

Every test that could reach 127.0.0.1 asserts that the canary listening there saw no connection.
"""

from __future__ import annotations

import json
import logging

import pytest

from crawlers.errors import (
    ForbiddenAddress,
    ForbiddenScheme,
    ForbiddenURL,
    NetworkError,
    RobotsUnavailable,
    Rule,
    TooManyRedirects,
)
from crawlers.netguard import AllowList

# T10 literals (as written in a URL) and the rule each must fire.
LITERALS = [
    ("127.0.0.1", Rule.LOOPBACK), ("localhost", Rule.LOOPBACK), ("0.0.0.0", Rule.UNSPECIFIED),
    ("[::]", Rule.UNSPECIFIED), ("[::1]", Rule.LOOPBACK), ("[::ffff:127.0.0.1]", Rule.LOOPBACK),
    ("0177.0.0.1", Rule.LOOPBACK), ("2130706433", Rule.LOOPBACK), ("127.1", Rule.LOOPBACK),
    ("0x7f.1", Rule.LOOPBACK), ("127。0。0。1", Rule.LOOPBACK), ("１２７．０．０．１", Rule.LOOPBACK),
    ("ｌｏｃａｌｈｏｓｔ", Rule.LOOPBACK), ("169.254.169.254", Rule.METADATA),
    ("[::ffff:169.254.169.254]", Rule.METADATA), ("100.64.0.1", Rule.CGNAT), ("10.0.0.1", Rule.PRIVATE),
    ("172.16.0.1", Rule.PRIVATE), ("192.168.0.1", Rule.PRIVATE), ("192.0.0.170", Rule.IETF_PROTOCOL),
    ("224.0.0.1", Rule.MULTICAST), ("255.255.255.255", Rule.BROADCAST), ("[fc00::1]", Rule.UNIQUE_LOCAL),
    ("[fe80::1]", Rule.LINK_LOCAL), ("[64:ff9b::7f00:1]", Rule.LOOPBACK), ("[2002:7f00:1::]", Rule.LOOPBACK),
]
# The same destinations as a DNS server would answer for a name.
ANSWERS = [
    ("127.0.0.1", Rule.LOOPBACK), ("0.0.0.0", Rule.UNSPECIFIED), ("::", Rule.UNSPECIFIED),
    ("::1", Rule.LOOPBACK), ("::ffff:127.0.0.1", Rule.LOOPBACK), ("127.255.255.254", Rule.LOOPBACK),
    ("169.254.169.254", Rule.METADATA),
    ("::ffff:169.254.169.254", Rule.METADATA), ("100.64.0.1", Rule.CGNAT), ("10.0.0.1", Rule.PRIVATE),
    ("172.16.0.1", Rule.PRIVATE), ("192.168.0.1", Rule.PRIVATE), ("192.0.0.170", Rule.IETF_PROTOCOL),
    ("224.0.0.1", Rule.MULTICAST), ("255.255.255.255", Rule.BROADCAST), ("fc00::1", Rule.UNIQUE_LOCAL),
    ("fe80::1", Rule.LINK_LOCAL), ("64:ff9b::7f00:1", Rule.LOOPBACK), ("2002:7f00:1::", Rule.LOOPBACK),
]
REDIRECT_STATUSES = [301, 302, 303, 307, 308]


def _page(body: bytes = b"<p>ok</p>", content_type: str = "text/html; charset=utf-8"):
    return lambda request: request.reply(200, body, {"Content-Type": content_type})


@pytest.mark.parametrize("respect_robots", [True, False], ids=["crawl", "attachment"])
@pytest.mark.parametrize(("host", "rule"), LITERALS)
def test_t10_literals_refused(host, rule, respect_robots, make_fetcher, canary, caplog) -> None:
    fetcher, url = make_fetcher(), f"http://{host}:{canary.port}/"
    with caplog.at_level(logging.WARNING, "crawlers.fetch"), pytest.raises(ForbiddenAddress) as refused:
        fetcher.fetch(url, respect_robots=respect_robots)
    assert refused.value.rule == rule
    assert [record.rule for record in caplog.records] == [rule]
    assert canary.accepts == 0


@pytest.mark.parametrize("respect_robots", [True, False], ids=["crawl", "attachment"])
@pytest.mark.parametrize(("address", "rule"), ANSWERS)
def test_t10_names_resolving_to_forbidden_addresses_refused(address, rule, respect_robots, make_fetcher,
                                                            resolver, canary) -> None:
    resolver.answers["evil.test"] = [address]
    fetcher = make_fetcher(resolver=resolver, allowed_ports=frozenset({80, canary.port}))
    with pytest.raises(ForbiddenAddress) as refused:
        fetcher.fetch(f"http://evil.test:{canary.port}/", respect_robots=respect_robots)
    assert refused.value.rule == rule
    assert canary.accepts == 0


@pytest.mark.parametrize("answer", [["93.184.215.14", "127.0.0.1"], ["127.0.0.1", "93.184.215.14"],
                                    ["127.0.0.2", "10.0.0.1"], ["2606:4700::1111", "fe80::1"]])
def test_t10_mixed_public_and_private_answer_refused(answer, make_fetcher, resolver, canary) -> None:
    resolver.answers["mixed.test"] = answer
    fetcher = make_fetcher(resolver=resolver, allowed_ports=frozenset({80, canary.port}))
    with pytest.raises(ForbiddenAddress):
        fetcher.fetch(f"http://mixed.test:{canary.port}/")
    assert canary.accepts == 0


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://example.com/", "ftp://example.com/",
                                 "data:text/html,hi", "javascript:alert(1)", "dict://example.com:11211/"])
def test_t10_schemes_refused(url, make_fetcher) -> None:
    with pytest.raises(ForbiddenScheme):
        make_fetcher().fetch(url)


def test_t10_ports_and_userinfo_refused(make_fetcher, resolver, canary, caplog) -> None:
    resolver.answers["public.test"] = ["127.0.0.2"]
    fetcher = make_fetcher(resolver=resolver)
    with pytest.raises(ForbiddenURL) as refused:
        fetcher.fetch(f"http://public.test:{canary.port}/")  # not an allowed port for a mere name
    assert refused.value.rule == Rule.PORT
    with caplog.at_level(logging.WARNING, logger="crawlers.fetch"), pytest.raises(ForbiddenURL) as refused:
        fetcher.fetch(f"http://user:s3cret@127.0.0.1:{canary.port}@evil.example/?token=t0ken")
    assert refused.value.rule == Rule.USERINFO
    assert "s3cret" not in caplog.text and "t0ken" not in caplog.text
    assert "s3cret" not in caplog.records[0].url and "t0ken" not in caplog.records[0].url
    assert canary.accepts == 0


def test_dns_failure_fails_closed(make_fetcher, resolver) -> None:
    resolver.answers["empty.test"] = []
    for host in ("nxdomain.test", "empty.test"):
        with pytest.raises(NetworkError) as failed:
            make_fetcher(resolver=resolver).fetch(f"http://{host}/", respect_robots=False)
        assert failed.value.rule == Rule.DNS
    with pytest.raises(RobotsUnavailable, match=r"\[dns\]"):  # when crawling, robots.txt fails first
        make_fetcher(resolver=resolver).fetch("http://nxdomain.test/")


# T11: redirects.

@pytest.mark.parametrize("status", REDIRECT_STATUSES)
@pytest.mark.parametrize(("host", "rule"), LITERALS)
def test_t11_redirect_to_every_t10_target_refused(host, rule, status, server, make_fetcher, canary) -> None:
    path = f"/t11/{status}/{host.encode().hex()}"
    server.route(path)(lambda request: request.redirect(f"http://{host}:{canary.port}/", status))
    with pytest.raises(ForbiddenAddress) as refused:
        make_fetcher().fetch(server.url(path))
    assert refused.value.rule == rule
    assert canary.accepts == 0


@pytest.mark.parametrize("status", REDIRECT_STATUSES)
def test_t11_redirect_to_a_name_resolving_to_loopback_refused(status, server, make_fetcher, resolver,
                                                              canary) -> None:
    resolver.answers["evil.test"] = ["127.0.0.1"]
    path = f"/t11-name/{status}"
    server.route(path)(lambda request: request.redirect(f"http://evil.test:{canary.port}/x", status))
    fetcher = make_fetcher(resolver=resolver, allowed_ports=frozenset({80, canary.port}))
    with pytest.raises(ForbiddenAddress) as refused:
        fetcher.fetch(server.url(path))
    assert refused.value.rule == Rule.LOOPBACK
    assert refused.value.url == f"http://evil.test:{canary.port}/x"
    assert canary.accepts == 0


def test_t11_full_width_host_in_location_refused(server, make_fetcher, canary) -> None:
    location = f"http://１２７．０．０．１:{canary.port}/".encode()
    server.route("/t11-fullwidth")(lambda request: request.raw(
        b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(ForbiddenAddress) as refused:
        make_fetcher().fetch(server.url("/t11-fullwidth"))
    assert refused.value.rule == Rule.LOOPBACK
    assert canary.accepts == 0


@pytest.mark.parametrize("location", ["file:///etc/passwd", "data:text/html;base64,PGI+aGk8L2I+",
                                      "javascript:alert(1)", "gopher://127.0.0.2/", "ftp://127.0.0.2/"])
def test_t11_redirect_to_other_schemes_refused(location, server, make_fetcher) -> None:
    path = f"/t11-scheme/{location.split(':')[0]}"
    server.route(path)(lambda request: request.redirect(location))
    with pytest.raises(ForbiddenScheme):
        make_fetcher().fetch(server.url(path))


def _chain(server, name: str, length: int) -> str:
    """/name/length redirects (relatively) to /name/length-1 ... /name/0 answers 200."""
    for hop in range(length + 1):
        path = f"/{name}/{hop}"
        if hop == 0:
            server.route(path)(_page(b"end of chain"))
        else:
            server.route(path)(lambda request, hop=hop: request.redirect(f"/{name}/{hop - 1}", 307))
    return server.url(f"/{name}/{length}")


def test_t11_five_hops_pass(server, make_fetcher) -> None:
    result = make_fetcher().fetch(_chain(server, "chain5", 5))
    assert result.content == b"end of chain"
    assert len(result.redirects) == 5
    assert result.final_url == server.url("/chain5/0")


def test_t11_six_hops_fail(server, make_fetcher) -> None:
    with pytest.raises(TooManyRedirects) as refused:
        make_fetcher().fetch(_chain(server, "chain6", 6))
    assert refused.value.rule == Rule.MAX_REDIRECTS
    assert server.hits["/chain6/0"] == 0


def test_t11_redirect_loop(server, make_fetcher) -> None:
    server.route("/loop-a")(lambda request: request.redirect("/loop-b"))
    server.route("/loop-b")(lambda request: request.redirect("/loop-a"))
    with pytest.raises(TooManyRedirects) as refused:
        make_fetcher().fetch(server.url("/loop-a"))
    assert refused.value.rule == Rule.REDIRECT_LOOP


def _echo_headers(request) -> None:
    seen = {name: request.headers.get(name) for name in ("Authorization", "Cookie", "User-Agent")}
    request.reply(200, json.dumps(seen).encode(), {"Content-Type": "application/json"})


SECRETS = {"Authorization": "Bearer feed-token", "Cookie": "session=abc"}


def test_t11_credentials_kept_on_same_origin_redirect(server, make_fetcher) -> None:
    server.route("/creds-same")(lambda request: request.redirect("/creds-echo-same"))
    server.route("/creds-echo-same")(_echo_headers)
    result = make_fetcher().fetch(server.url("/creds-same"), headers=SECRETS)
    assert json.loads(result.content) | {"User-Agent": None} == {**SECRETS, "User-Agent": None}


@pytest.mark.parametrize("change", ["host", "port", "scheme"])
def test_t11_credentials_dropped_when_origin_changes(change, server, make_server, make_fetcher, resolver,
                                                     tls_server_context, tls_client) -> None:
    resolver.answers.update({"a.test": ["127.0.0.2"], "b.test": ["127.0.0.2"]})
    if change == "host":
        target = server.url("/creds-echo", host="b.test")
    elif change == "port":
        other = make_server()
        other.route("/creds-echo")(_echo_headers)
        target = other.url("/creds-echo", host="a.test")
    else:
        other = make_server(tls=tls_server_context("a.test"))
        other.route("/creds-echo")(_echo_headers)
        target = other.url("/creds-echo", host="a.test")
    server.route("/creds-echo")(_echo_headers)
    server.route(f"/creds-{change}")(lambda request: request.redirect(target))
    fetcher = make_fetcher(resolver=resolver, allow=server_allow("a.test", "b.test"), ssl_context=tls_client)
    result = fetcher.fetch(server.url(f"/creds-{change}", host="a.test"), headers=SECRETS)
    seen = json.loads(result.content)
    assert seen["Authorization"] is None and seen["Cookie"] is None
    assert seen["User-Agent"].startswith("SocialLibraryBot/0.1 (+")


def test_t11_credentials_stay_dropped_after_returning_to_the_origin(server, make_fetcher, resolver) -> None:
    resolver.answers.update({"a.test": ["127.0.0.2"], "b.test": ["127.0.0.2"]})
    server.route("/away")(lambda request: request.redirect(server.url("/back", host="b.test")))
    server.route("/back")(lambda request: request.redirect(server.url("/creds-echo-back", host="a.test")))
    server.route("/creds-echo-back")(_echo_headers)
    fetcher = make_fetcher(resolver=resolver, allow=server_allow("a.test", "b.test"))
    seen = json.loads(fetcher.fetch(server.url("/away", host="a.test"), headers=SECRETS).content)
    assert seen["Authorization"] is None and seen["Cookie"] is None


def server_allow(*names: str) -> AllowList:
    return AllowList.parse(",".join(("127.0.0.2", *names)))


@pytest.mark.parametrize("body", [
    b'<meta http-equiv="refresh" content="0; url=http://127.0.0.1:{port}/">',
    b'<script>location.href = "http://127.0.0.1:{port}/"</script>',
])
def test_t11_meta_refresh_and_javascript_are_not_followed(body, server, make_fetcher, canary) -> None:
    page = body.replace(b"{port}", str(canary.port).encode())
    path = f"/t11-inband/{len(body)}"
    server.route(path)(_page(page))
    result = make_fetcher().fetch(server.url(path))
    assert result.content == page and result.final_url == server.url(path) and result.redirects == ()
    assert canary.accepts == 0


# T12: DNS rebinding and pinning.

def test_t12_rebinding_dns_server_never_reaches_the_canary(rebinding_dns, make_server_with_canary,
                                                           make_fetcher) -> None:
    zone, resolver = rebinding_dns
    public, canary = make_server_with_canary()
    public.route("/")(_page(b"public"))
    public.route("/redirect-back")(lambda request: request.redirect(public.url("/", host="rebind.test")))
    fetcher = make_fetcher(resolver=resolver, allowed_ports=frozenset({80, public.port}))
    outcomes = []
    for attempt in range(1000):
        path = "/redirect-back" if attempt % 2 else "/"
        try:
            outcomes.append(fetcher.fetch(public.url(path, host="rebind.test"), respect_robots=False).content)
        except ForbiddenAddress as refused:
            assert refused.rule == Rule.LOOPBACK
            outcomes.append(None)
    assert outcomes[0] == b"public"  # the first answer was checked, pinned and used
    assert outcomes[1:] == [None] * 999  # every later connection re-resolved and was refused
    assert zone.queries == 1000
    assert canary.accepts == 0


def test_t12_each_connection_resolves_once_and_connects_where_checked(server, make_fetcher, resolver,
                                                                       canary) -> None:
    answers = iter([["127.0.0.2"], ["127.0.0.1"]])
    resolver.answers["flip.test"] = lambda: next(answers)
    server.route("/flip")(lambda request: request.redirect("/flip-final"))
    server.route("/flip-final")(_page(b"pinned"))
    fetcher = make_fetcher(resolver=resolver, allowed_ports=frozenset({80, server.port}))
    with pytest.raises(ForbiddenAddress) as refused:  # the redirect's new connection got the canary
        fetcher.fetch(server.url("/flip", host="flip.test"), respect_robots=False)
    assert refused.value.url == server.url("/flip-final", host="flip.test")
    assert resolver.queries == ["flip.test", "flip.test"]
    assert server.hits["/flip"] == 1 and server.hits["/flip-final"] == 0
    assert canary.accepts == 0


def test_t12_tls_verifies_the_hostname_while_connecting_to_the_pinned_address(
        rebinding_dns, make_server_with_canary, tls_server_context, tls_client, make_fetcher,
        resolver) -> None:
    public, canary = make_server_with_canary(tls=tls_server_context("rebind.test"))
    public.route("/")(_page(b"over tls"))
    _, dns = rebinding_dns
    fetcher = make_fetcher(resolver=dns, allowed_ports=frozenset({443, public.port}), ssl_context=tls_client)
    assert fetcher.fetch(public.url("/", host="rebind.test"), respect_robots=False).content == b"over tls"
    with pytest.raises(ForbiddenAddress):  # the second answer is the canary
        fetcher.fetch(public.url("/", host="rebind.test"), respect_robots=False)
    resolver.answers["impostor.test"] = ["127.0.0.2"]
    fetcher = make_fetcher(resolver=resolver, allowed_ports=frozenset({443, public.port}),
                           ssl_context=tls_client)
    with pytest.raises(NetworkError) as failed:  # same address, but the certificate is not for this name
        fetcher.fetch(public.url("/", host="impostor.test"), respect_robots=False)
    assert failed.value.rule == Rule.TLS
    assert canary.accepts == 0


def test_t12_resolver_timeout_and_nxdomain_fail_closed(rebinding_dns, make_fetcher) -> None:
    _, dns = rebinding_dns
    with pytest.raises(NetworkError) as failed:
        make_fetcher(resolver=dns).fetch("http://unknown.test/", respect_robots=False)
    assert failed.value.rule == Rule.DNS
    dns.port, dns.timeout = 9, 0.1  # discard: no DNS server answers there
    with pytest.raises(NetworkError) as failed:
        make_fetcher(resolver=dns).fetch("http://rebind.test/", respect_robots=False)
    assert failed.value.rule == Rule.DNS
