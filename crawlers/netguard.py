"""Where crawlers may connect: the address policy and URL checks (DESIGN §10, RELIABILITY T10).

The URL check here refuses what can be refused from the text alone. It is not sufficient on its own:
a hostname can resolve to anything, so ``crawlers.fetch`` runs ``check_address`` again on every address
that a name resolves to, at connect time, and connects only to an address it has checked.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

from crawlers.errors import ForbiddenAddress, ForbiddenScheme, ForbiddenURL, IPAddress, Rule

DEFAULT_PORTS = {"http": 80, "https": 443}

_net = ipaddress.ip_network

# First match wins, so specific ranges come before the ranges that contain them.
_V4_RULES = (
    (Rule.METADATA, _net("169.254.169.254/32")),
    (Rule.BROADCAST, _net("255.255.255.255/32")),
    (Rule.UNSPECIFIED, _net("0.0.0.0/8")),
    (Rule.LOOPBACK, _net("127.0.0.0/8")),
    (Rule.PRIVATE, _net("10.0.0.0/8")),
    (Rule.PRIVATE, _net("172.16.0.0/12")),
    (Rule.PRIVATE, _net("192.168.0.0/16")),
    (Rule.LINK_LOCAL, _net("169.254.0.0/16")),
    (Rule.CGNAT, _net("100.64.0.0/10")),
    (Rule.IETF_PROTOCOL, _net("192.0.0.0/24")),
    (Rule.DOCUMENTATION, _net("192.0.2.0/24")),
    (Rule.DOCUMENTATION, _net("198.51.100.0/24")),
    (Rule.DOCUMENTATION, _net("203.0.113.0/24")),
    (Rule.MULTICAST, _net("224.0.0.0/4")),
    (Rule.RESERVED, _net("240.0.0.0/4")),
)
_V6_RULES = (
    (Rule.UNSPECIFIED, _net("::/128")),
    (Rule.LOOPBACK, _net("::1/128")),
    (Rule.METADATA, _net("fd00:ec2::254/128")),  # AWS IMDS over IPv6
    (Rule.TEREDO, _net("2001::/32")),  # the client address is obfuscated; never worth the risk
    (Rule.LINK_LOCAL, _net("fe80::/10")),
    (Rule.UNIQUE_LOCAL, _net("fc00::/7")),
    (Rule.MULTICAST, _net("ff00::/8")),
    (Rule.DOCUMENTATION, _net("2001:db8::/32")),
    (Rule.DOCUMENTATION, _net("3fff::/20")),
)
# IPv6 forms whose packets can end up at an embedded IPv4 address: the embedded address is judged.
# Python 3.11 calls 64:ff9b::/96 and 2002::/16 global whatever they embed.
_EMBEDDING = (
    ("ipv4-mapped", _net("::ffff:0:0/96")),
    ("nat64", _net("64:ff9b::/96")),
    ("6to4", _net("2002::/16")),
    ("ipv4-compatible", _net("::/96")),
)
# An allow-list entry may open private ranges for intranet sources, never these.
_NEVER_ALLOWED = frozenset({Rule.METADATA, Rule.UNSPECIFIED, Rule.MULTICAST, Rule.BROADCAST})

_HOST_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_OCTAL = re.compile(r"0[0-7]*")
_HEX = re.compile(r"0x[0-9a-f]*")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    for name, network in _EMBEDDING:
        if ip in network:
            if name == "6to4":
                return name, ip.sixtofour
            return name, ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _verdict(ip: IPAddress) -> tuple[Rule, str] | None:
    """The rule that forbids ``ip`` and a detail naming any embedded IPv4 address; None if global."""
    rules = _V6_RULES if ip.version == 6 else _V4_RULES
    for rule, network in rules:
        if ip in network:
            return rule, ""
    if ip.version == 6 and (embedded := _embedded_ipv4(ip)):
        form, ipv4 = embedded
        verdict = _verdict(ipv4)
        return None if verdict is None else (verdict[0], f", {form} {ipv4}")
    return None if ip.is_global else (Rule.NON_GLOBAL, "")


def classify_address(ip: IPAddress) -> Rule | None:
    """The rule that forbids ``ip``, or None for a globally reachable address."""
    verdict = _verdict(ip)
    return None if verdict is None else verdict[0]


@dataclass(frozen=True)
class AllowList:
    """Hosts that may resolve to private addresses (intranet sources, test servers).

    A listed hostname may resolve to any address except the never-allowed ranges (metadata,
    unspecified, multicast, broadcast); a listed network allows those addresses for any hostname.
    Any port is allowed on a listed host.
    """

    names: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> AllowList:
        """Parse ``LIBRARY_CRAWL_ALLOW_HOSTS``: comma-separated hostnames, IP addresses or CIDRs."""
        names, networks = set(), []
        for item in filter(None, (part.strip() for part in spec.split(","))):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
                continue
            except ValueError:
                pass
            try:
                host = normalize_host(item)
            except ForbiddenURL as exc:
                raise ValueError(f"LIBRARY_CRAWL_ALLOW_HOSTS: bad entry {item!r}: {exc}") from None
            if isinstance(host, str):
                names.add(host)
            else:
                networks.append(ipaddress.ip_network(host))
        return cls(frozenset(names), tuple(networks))

    def covers(self, host: str | None, ip: IPAddress | None = None) -> bool:
        if host is not None and host in self.names:
            return True
        return ip is not None and any(ip in network for network in self.networks)


def check_address(ip: IPAddress, *, allow: AllowList | None = None, host: str | None = None) -> None:
    """Raise ForbiddenAddress unless ``ip`` is global or (for most ranges) covered by ``allow``.

    ``host`` is the hostname that resolved to ``ip``, for allow-listed names.
    """
    verdict = _verdict(ip)
    if verdict is None:
        return
    rule, detail = verdict
    if allow is not None and rule not in _NEVER_ALLOWED and allow.covers(host, ip):
        return
    raise ForbiddenAddress(rule, ip, detail)


def _ipv4_number(part: str) -> int | None:
    if _HEX.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part):
        return int(part)
    return None


def _parse_whatwg_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Parse a host that 'ends in a number' as browsers and getaddrinfo do (127.1, 0x7f.1, 2130706433).

    Returns None when the host does not end in a number (an ordinary hostname); raises when it does but
    is not a valid address, as the WHATWG URL standard requires.
    """
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if not (_DIGITS.fullmatch(parts[-1]) or _HEX.fullmatch(parts[-1])):
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if len(parts) > 4 or None in numbers or any(n > 255 for n in numbers[:-1]):
        raise ForbiddenURL(f"host {host!r} is not a valid IPv4 address", rule=Rule.INVALID_HOST)
    *leading, last = numbers
    if last >= 256 ** (5 - len(numbers)):
        raise ForbiddenURL(f"host {host!r} is not a valid IPv4 address", rule=Rule.INVALID_HOST)
    value = last + sum(n << (8 * (3 - i)) for i, n in enumerate(leading))
    return ipaddress.IPv4Address(value)


def normalize_host(raw: str) -> str | IPAddress:
    """Canonical form of a URL host: an IP address, or a lowercase ASCII (punycode) hostname.

    NFKC folds full-width forms (１２７．０．０．１, ｌｏｃａｌｈｏｓｔ); U+3002 (。) is a label separator
    to IDNA and to browsers, so 127。0。0。1 is 127.0.0.1 too.
    """
    host = unicodedata.normalize("NFKC", raw).replace("\u3002", ".").lower()
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if (ipv4 := _parse_whatwg_ipv4(host)) is not None:
        return ipv4
    host = host.removesuffix(".")
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ForbiddenURL(f"host {raw!r} is not a valid IDN: {exc}", rule=Rule.INVALID_HOST) from None
    labels = host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ForbiddenURL(f"host {raw!r} is not a valid hostname", rule=Rule.INVALID_HOST)
    return host


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed ``check_url``; ``url`` is its canonical form, the one to request."""

    url: str
    scheme: str
    host: str  # ASCII hostname, or IP address text without brackets
    port: int
    address: IPAddress | None  # set when the host is an IP literal

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def check_url(url: str, *, allow: AllowList, ports: frozenset[int]) -> CheckedURL:
    """Refuse a URL on its text: scheme, userinfo, host (literal addresses checked here), port."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ForbiddenURL(f"unparsable URL: {exc}", rule=Rule.INVALID_URL) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ForbiddenScheme(scheme)
    if "@" in parts.netloc:
        raise ForbiddenURL("credentials in the URL (user@host) are refused", rule=Rule.USERINFO)
    if not parts.hostname:
        raise ForbiddenURL("URL has no host", rule=Rule.INVALID_HOST)
    host = normalize_host(parts.hostname)
    if isinstance(host, str):
        address, host_text = None, host
        if (host == "localhost" or host.endswith(".localhost")) and not allow.covers(host):
            raise ForbiddenAddress(Rule.LOOPBACK, host, ", a loopback name (RFC 6761)")
    else:
        check_address(host, allow=allow)
        address, host_text = host, str(host)
    port = DEFAULT_PORTS[scheme] if port is None else port
    if port not in ports and not allow.covers(host_text, address):
        raise ForbiddenURL(f"port {port} is not in the allowlist", rule=Rule.PORT)
    netloc = f"[{host_text}]" if address is not None and address.version == 6 else host_text
    if port != DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    query = f"?{parts.query}" if parts.query else ""
    canonical = f"{scheme}://{netloc}{parts.path or '/'}{query}"
    return CheckedURL(canonical, scheme, host_text, port, address)
