"""Parsing and validation of WebSocket (and proxy) URLs.

femtows parses URLs itself rather than trusting :func:`urllib.parse.urlsplit`, which silently
drops tabs and newlines, accepts any characters in the host and leaves IRIs (non-ASCII URLs) as
they are. Every URL that reaches the network layer has been checked here: a plain ASCII host (IDNA
applied), a valid port, and a path and query that can be written into a request line as they are.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional, Tuple

from .errors import WSInvalidURL

__all__ = ["WSParsedURL", "parse_url"]

# Port used when the URL does not name one. Proxy schemes are here so that the proxy code can use
# the same parser with its own ``allowed_schemes``.
_DEFAULT_PORTS: Dict[str, int] = {
    "ws": 80,
    "wss": 443,
    "http": 80,
    "https": 443,
    "socks4": 1080,
    "socks4a": 1080,
    "socks5": 1080,
    "socks5h": 1080,
}
_SECURE_SCHEMES: FrozenSet[str] = frozenset({"wss", "https"})

# RFC 3986 §3.1.
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# A registered name after IDNA: RFC 3986 unreserved and sub-delims. Percent-encoded host names
# are refused: no resolver understands them.
_REG_NAME_RE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=]+")
# RFC 6874 ZoneID, restricted to unreserved characters (interface names).
_ZONE_RE = re.compile(r"[A-Za-z0-9\-._~]+")
# Everything printable in ASCII; with it as ``safe``, urllib.parse.quote encodes only non-ASCII
# characters (as UTF-8) and leaves reserved characters and existing %XX escapes alone.
_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class WSParsedURL:
    """A validated WebSocket (or proxy) URL, split into the parts the connection code needs.

    Build it with :func:`parse_url`. All the string fields except ``url``, ``username`` and
    ``password`` are plain ASCII, ready to be written to the network.

    Attributes:
        url: The URL exactly as given.
        scheme: The scheme, lower-cased (``"ws"``, ``"wss"``, ...).
        is_secure: True for ``wss`` and ``https``, which run over TLS.
        netloc: The authority in URI form: ``[userinfo@]host[:port]`` with the host lower-cased,
            IDNA-encoded and bracketed when it is an IPv6 literal; the port appears only when the
            URL wrote one.
        host: Host name or IP address, lower-cased, IDNA-encoded; an IPv6 literal has no
            brackets (``"::1"``), ready for ``loop.create_connection``.
        port: The port; always set, the scheme's default when the URL has none.
        path: The path, never empty (``"/"`` at least), non-ASCII characters percent-encoded.
        query: The query without its ``?``, empty when absent, non-ASCII percent-encoded.
        username: Percent-decoded user name from the userinfo, None when there is no userinfo.
        password: Percent-decoded password, None when the userinfo has no ``:``.
    """

    url: str
    scheme: str
    is_secure: bool
    netloc: str
    host: str
    port: int
    path: str
    query: str
    username: Optional[str] = None
    password: Optional[str] = None

    @property
    def resource_name(self) -> str:
        """The request target for the request line: ``path`` or ``path?query``."""
        if self.query:
            return f"{self.path}?{self.query}"
        return self.path

    @property
    def user_info(self) -> Optional[str]:
        """``"user:password"``, ``"user"``, or None without userinfo (for Basic authentication)."""
        if self.username is None:
            return None
        if self.password is None:
            return self.username
        return f"{self.username}:{self.password}"

    @property
    def host_header(self) -> str:
        """Value for the ``Host`` request header.

        The host (bracketed when IPv6) followed by ``:port`` unless the port is the scheme's
        default. Never contains userinfo, nor an IPv6 zone identifier (RFC 6874 §4: the zone
        means nothing to the server).
        """
        host = _host_for_uri(self.host.partition("%")[0])
        if _DEFAULT_PORTS.get(self.scheme) == self.port:
            return host
        return f"{host}:{self.port}"


def parse_url(url: str, *, allowed_schemes: Tuple[str, ...] = ("ws", "wss")) -> WSParsedURL:
    """Parse and validate a URL.

    Non-ASCII input is treated as an IRI: the host is converted with IDNA and the path and query
    are percent-encoded as UTF-8, so the result can be sent as it is.

    Args:
        url: The URL to parse.
        allowed_schemes: Lower-case schemes to accept. The WebSocket client uses the default;
            proxy support passes ``("http", "https", "socks4", "socks5")``.

    Returns:
        The parsed URL.

    Raises:
        WSInvalidURL: The scheme is not allowed; the URL has a fragment, whitespace or control
            characters, no host, an invalid host or port, or cannot be converted from an IRI.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    for char in url:
        # urlsplit would silently drop some of these (bpo-43882); a URL with them is a bug or an
        # attack, never something to "fix".
        if char <= " " or "\x7f" <= char <= "\x9f" or char.isspace():
            raise WSInvalidURL(url, "URL contains whitespace or control characters")
    if "#" in url:
        # A fragment means nothing to a WebSocket server and is never sent (RFC 6455 §3).
        raise WSInvalidURL(
            url, "fragment identifier is meaningless: fragments are not allowed in WebSocket URLs"
        )

    # For WebSocket URLs the reasons start with picows's words (see errors.py).
    picows_words = "scheme isn't ws or wss: " if allowed_schemes == ("ws", "wss") else ""
    scheme, colon, rest = url.partition(":")
    if not colon or _SCHEME_RE.fullmatch(scheme) is None:
        raise WSInvalidURL(url, f"{picows_words}URL has no scheme")
    scheme = scheme.lower()
    if scheme not in allowed_schemes:
        allowed = ", ".join(allowed_schemes)
        what = f"{scheme!r}" if picows_words else f"scheme {scheme!r}"
        raise WSInvalidURL(url, f"{picows_words}{what} is not one of: {allowed}")
    if not rest.startswith("//"):
        raise WSInvalidURL(url, "hostname isn't provided: URL has no host")
    rest = rest[2:]

    # The authority ends at the first "/" or "?" (no "#" is left).
    end = len(rest)
    for delim in "/?":
        pos = rest.find(delim)
        if pos != -1:
            end = min(end, pos)
    authority, rest = rest[:end], rest[end:]
    path, _, query = rest.partition("?")

    userinfo, at, hostport = authority.rpartition("@")
    username: Optional[str] = None
    password: Optional[str] = None
    if at:
        raw_user, has_password, raw_password = userinfo.partition(":")
        username = _unquote(url, raw_user)
        if has_password:
            password = _unquote(url, raw_password)

    host, port_text = _split_host_port(url, hostport)
    if port_text:
        port = _parse_port(url, port_text)
    else:
        default = _DEFAULT_PORTS.get(scheme)
        if default is None:
            raise WSInvalidURL(url, f"URL has no port and scheme {scheme!r} has no default")
        port = default

    path = _quote(url, path) or "/"
    query = _quote(url, query)

    netloc = _host_for_uri(host)
    if port_text:
        netloc = f"{netloc}:{port}"
    if at:
        netloc = f"{_quote(url, userinfo)}@{netloc}"

    return WSParsedURL(
        url=url,
        scheme=scheme,
        is_secure=scheme in _SECURE_SCHEMES,
        netloc=netloc,
        host=host,
        port=port,
        path=path,
        query=query,
        username=username,
        password=password,
    )


def _split_host_port(url: str, hostport: str) -> Tuple[str, str]:
    """Split ``host[:port]`` into a validated, normalised host and the port text ("" if none)."""
    if hostport.startswith("["):
        close = hostport.find("]")
        if close == -1:
            raise WSInvalidURL(url, "unterminated IPv6 address")
        literal = hostport[1:close]
        after = hostport[close + 1 :]
        if after and not after.startswith(":"):
            raise WSInvalidURL(url, "unexpected characters after IPv6 address")
        return _parse_ipv6(url, literal), after[1:]

    host, _, port_text = hostport.partition(":")
    if ":" in port_text:
        raise WSInvalidURL(url, "IPv6 addresses must be enclosed in brackets")
    if not host:
        raise WSInvalidURL(url, "hostname isn't provided: URL has no host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise WSInvalidURL(url, f"host cannot be encoded with IDNA ({exc})") from None
    if _REG_NAME_RE.fullmatch(host) is None:
        raise WSInvalidURL(url, "host contains invalid characters")
    return host.lower(), port_text


def _parse_ipv6(url: str, literal: str) -> str:
    """Validate the text between the brackets of an IP literal and return it normalised."""
    # RFC 6874: a zone identifier is written "%25" + zone inside the brackets.
    address, pct, zone = literal.partition("%25")
    if pct and _ZONE_RE.fullmatch(zone) is None:
        raise WSInvalidURL(url, f"invalid IPv6 zone identifier {zone!r}")
    if "%" in address:
        # ipaddress would accept a bare "%zone", which is not valid in a URI.
        raise WSInvalidURL(url, f"invalid IPv6 address {literal!r}")
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise WSInvalidURL(url, f"invalid IPv6 address {literal!r}") from None
    address = address.lower()
    # The zone is passed to the OS in its plain form ("fe80::1%eth0").
    return f"{address}%{zone}" if pct else address


def _parse_port(url: str, port_text: str) -> int:
    """Return the port number of ``port_text`` (ASCII digits, 1-65535)."""
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise WSInvalidURL(url, f"invalid port {port_text!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise WSInvalidURL(url, f"port {port} is out of range 1-65535")
    return port


def _host_for_uri(host: str) -> str:
    """Write ``host`` as it appears in a URI authority (IPv6 in brackets, zone as %25)."""
    if ":" in host:
        return "[" + host.replace("%", "%25", 1) + "]"
    return host


def _quote(url: str, text: str) -> str:
    """Percent-encode the non-ASCII characters of ``text`` as UTF-8."""
    if text.isascii():
        return text
    try:
        return urllib.parse.quote(text, safe=_PRINTABLE_ASCII, errors="strict")
    except UnicodeError:
        raise WSInvalidURL(url, "URL cannot be encoded as UTF-8") from None


def _unquote(url: str, text: str) -> str:
    """Percent-decode userinfo; escapes must decode to valid UTF-8."""
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeError:
        raise WSInvalidURL(url, "userinfo is not valid percent-encoded UTF-8") from None
