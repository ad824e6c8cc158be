"""Address and URL policy on their own: no sockets (RELIABILITY T10, the text half)."""

from __future__ import annotations

import ipaddress

import pytest

from crawlers.errors import ForbiddenAddress, ForbiddenScheme, ForbiddenURL, Rule
from crawlers.netguard import AllowList, check_address, check_url, classify_address, normalize_host
from crawlers.policy import FetchPolicy

PORTS = frozenset({80, 443, 8080, 8443})
NOTHING_ALLOWED = AllowList()

# The T10 literals, with the rule each must fire.
T10_LITERALS = [
    ("127.0.0.1", Rule.LOOPBACK),
    ("localhost", Rule.LOOPBACK),
    ("0.0.0.0", Rule.UNSPECIFIED),
    ("[::]", Rule.UNSPECIFIED),
    ("[::1]", Rule.LOOPBACK),
    ("[::ffff:127.0.0.1]", Rule.LOOPBACK),
    ("0177.0.0.1", Rule.LOOPBACK),
    ("2130706433", Rule.LOOPBACK),
    ("127.1", Rule.LOOPBACK),
    ("0x7f.1", Rule.LOOPBACK),
    ("127。0。0。1", Rule.LOOPBACK),
    ("１２７．０．０．１", Rule.LOOPBACK),
    ("ｌｏｃａｌｈｏｓｔ", Rule.LOOPBACK),
    ("169.254.169.254", Rule.METADATA),
    ("[::ffff:169.254.169.254]", Rule.METADATA),
    ("100.64.0.1", Rule.CGNAT),
    ("10.0.0.1", Rule.PRIVATE),
    ("10.255.255.254", Rule.PRIVATE),
    ("172.16.0.1", Rule.PRIVATE),
    ("172.31.255.254", Rule.PRIVATE),
    ("192.168.0.1", Rule.PRIVATE),
    ("192.168.255.254", Rule.PRIVATE),
    ("192.0.0.170", Rule.IETF_PROTOCOL),
    ("224.0.0.1", Rule.MULTICAST),
    ("255.255.255.255", Rule.BROADCAST),
    ("[fc00::1]", Rule.UNIQUE_LOCAL),
    ("[fe80::1]", Rule.LINK_LOCAL),
    ("[64:ff9b::7f00:1]", Rule.LOOPBACK),
    ("[2002:7f00:1::]", Rule.LOOPBACK),
]


@pytest.mark.parametrize(("host", "rule"), T10_LITERALS)
def test_t10_literal_hosts_are_refused_with_their_rule(host: str, rule: Rule) -> None:
    with pytest.raises(ForbiddenAddress) as refused:
        check_url(f"http://{host}/", allow=NOTHING_ALLOWED, ports=PORTS)
    assert refused.value.rule == rule
    assert str(refused.value).startswith(f"[{rule}]")


@pytest.mark.parametrize(("address", "rule"), [
    ("169.254.1.1", Rule.LINK_LOCAL),
    ("0.1.2.3", Rule.UNSPECIFIED),
    ("240.0.0.1", Rule.RESERVED),
    ("192.0.2.1", Rule.DOCUMENTATION),
    ("198.51.100.1", Rule.DOCUMENTATION),
    ("203.0.113.1", Rule.DOCUMENTATION),
    ("198.18.0.1", Rule.NON_GLOBAL),  # benchmarking
    ("2001:db8::1", Rule.DOCUMENTATION),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Rule.TEREDO),
    ("ff02::1", Rule.MULTICAST),
    ("fd00:ec2::254", Rule.METADATA),
    ("::127.0.0.1", Rule.LOOPBACK),  # IPv4-compatible
    ("64:ff9b::a9fe:a9fe", Rule.METADATA),  # NAT64 of 169.254.169.254
    ("2002:a00:1::", Rule.PRIVATE),  # 6to4 of 10.0.0.1
    ("::ffff:100.64.0.1", Rule.CGNAT),
])
def test_more_ranges(address: str, rule: Rule) -> None:
    assert classify_address(ipaddress.ip_address(address)) == rule


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808", "2002:808:808::1"])
def test_global_addresses_pass(address: str) -> None:
    assert classify_address(ipaddress.ip_address(address)) is None
    check_address(ipaddress.ip_address(address))


def test_embedded_address_is_named_in_the_message() -> None:
    with pytest.raises(ForbiddenAddress, match=r"nat64 127\.0\.0\.1"):
        check_address(ipaddress.ip_address("64:ff9b::7f00:1"))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://example.com/", "ftp://example.com/",
                                 "data:text/html,<b>hi</b>", "javascript:alert(1)", "dict://example.com:11211/",
                                 "//example.com/", "HTTPS+evil://example.com/"])
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(ForbiddenScheme) as refused:
        check_url(url, allow=NOTHING_ALLOWED, ports=PORTS)
    assert refused.value.rule == Rule.SCHEME


@pytest.mark.parametrize("url", ["http://user@127.0.0.1:80@evil.example/", "http://user:pass@example.com/",
                                 "http://@example.com/", "http://example.com\\@127.0.0.1/"])
def test_userinfo_is_refused(url: str) -> None:
    with pytest.raises(ForbiddenURL) as refused:
        check_url(url, allow=NOTHING_ALLOWED, ports=PORTS)
    assert refused.value.rule == Rule.USERINFO


@pytest.mark.parametrize("url", ["http://example.com:22/", "http://example.com:6379/", "https://example.com:0/"])
def test_ports_outside_the_allowlist(url: str) -> None:
    with pytest.raises(ForbiddenURL) as refused:
        check_url(url, allow=NOTHING_ALLOWED, ports=PORTS)
    assert refused.value.rule == Rule.PORT


@pytest.mark.parametrize(("url", "rule"), [
    ("http://example.com:99999/", Rule.INVALID_URL),
    ("http://[::1/", Rule.INVALID_URL),
    ("http:///path", Rule.INVALID_HOST),
    ("http://1.2.3.256/", Rule.INVALID_HOST),
    ("http://1.2.3.4.5/", Rule.INVALID_HOST),
    ("http://%31%32%37.0.0.1/", Rule.INVALID_HOST),
    ("http://exa mple.com/", Rule.INVALID_HOST),
    ("http://example.com\\evil/", Rule.INVALID_HOST),
])
def test_malformed_hosts(url: str, rule: Rule) -> None:
    with pytest.raises(ForbiddenURL) as refused:
        check_url(url, allow=NOTHING_ALLOWED, ports=PORTS)
    assert refused.value.rule == rule


@pytest.mark.parametrize(("raw", "expected"), [
    ("ＥＸＡＭＰＬＥ．ｃｏｍ", "example.com"),
    ("Example.COM.", "example.com"),
    ("例え。テスト", "xn--r8jz45g.xn--zckzah"),
    ("0x7f.0.0.1", ipaddress.ip_address("127.0.0.1")),
    ("3232235777", ipaddress.ip_address("192.168.1.1")),
    ("10.1", ipaddress.ip_address("10.0.0.1")),
    ("127.0.0.1.", ipaddress.ip_address("127.0.0.1")),
    ("[::1]", ipaddress.ip_address("::1")),
])
def test_normalize_host(raw: str, expected: object) -> None:
    assert normalize_host(raw) == expected


def test_canonical_url_keeps_path_and_query_and_drops_fragment() -> None:
    checked = check_url("HTTP://Example.com:8080/a/b?q=1#frag", allow=NOTHING_ALLOWED, ports=PORTS)
    assert checked.url == "http://example.com:8080/a/b?q=1"
    assert checked.origin == ("http", "example.com", 8080)
    assert check_url("https://example.com:443", allow=NOTHING_ALLOWED, ports=PORTS).url == "https://example.com/"


def test_allow_list_opens_named_hosts_and_networks_with_any_port() -> None:
    allow = AllowList.parse(" intranet.example , 10.1.0.0/16,127.0.0.2,,")
    assert check_url("http://intranet.example:9000/", allow=allow, ports=PORTS).port == 9000
    assert check_url("http://10.1.2.3:9000/", allow=allow, ports=PORTS).port == 9000
    check_address(ipaddress.ip_address("192.168.1.1"), allow=allow, host="intranet.example")
    with pytest.raises(ForbiddenAddress):
        check_url("http://10.2.0.1/", allow=allow, ports=PORTS)
    with pytest.raises(ForbiddenAddress):  # another name resolving into an allowed host's range: no
        check_address(ipaddress.ip_address("192.168.1.1"), allow=allow, host="other.example")


@pytest.mark.parametrize("address", ["169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255"])
def test_allow_list_never_opens_metadata_unspecified_multicast_broadcast(address: str) -> None:
    allow = AllowList.parse("0.0.0.0/0,intranet.example")
    with pytest.raises(ForbiddenAddress):
        check_address(ipaddress.ip_address(address), allow=allow, host="intranet.example")


def test_allow_list_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="LIBRARY_CRAWL_ALLOW_HOSTS"):
        AllowList.parse("good.example, bad host")


def test_policy_from_env() -> None:
    policy = FetchPolicy.from_env({"LIBRARY_CRAWL_ALLOW_HOSTS": "wiki.intranet,192.168.10.0/24",
                                   "LIBRARY_CRAWL_CONTACT_URL": "https://library.example/bot"}, delay=0.0)
    assert policy.allow.covers("wiki.intranet")
    assert policy.allow.covers(None, ipaddress.ip_address("192.168.10.5"))
    assert policy.user_agent == "SocialLibraryBot/0.1 (+https://library.example/bot)"
    assert policy.delay == 0.0
    default = FetchPolicy.from_env({})
    assert default.allow == AllowList()
    assert default.user_agent == "SocialLibraryBot/0.1 (+https://example.invalid/bot)"
    assert (default.connect_timeout, default.read_timeout, default.total_timeout) == (5.0, 10.0, 30.0)
    assert default.size_cap("text/html; charset=utf-8") == 5 * 1024 * 1024
    assert default.size_cap("text/csv") == default.size_cap("application/rss+xml") == 20 * 1024 * 1024
