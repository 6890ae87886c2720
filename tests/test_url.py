"""femtows.url: parse_url and WSParsedURL."""

from __future__ import annotations

import dataclasses
from typing import Optional

import pytest

from femtows.errors import WSInvalidURL
from femtows.url import WSParsedURL, parse_url


def test_ws_defaults() -> None:
    """A plain ws URL: port 80, path "/", no query, no userinfo."""
    url = parse_url("ws://example.com")
    assert url == WSParsedURL(
        url="ws://example.com",
        scheme="ws",
        is_secure=False,
        netloc="example.com",
        host="example.com",
        port=80,
        path="/",
        query="",
        username=None,
        password=None,
    )
    assert url.resource_name == "/"
    assert url.user_info is None
    assert url.host_header == "example.com"


def test_wss_defaults() -> None:
    """wss is secure and defaults to port 443."""
    url = parse_url("wss://example.com/chat")
    assert url.scheme == "wss"
    assert url.is_secure is True
    assert url.port == 443
    assert url.path == "/chat"
    assert url.host_header == "example.com"


def test_parsed_url_is_frozen() -> None:
    """WSParsedURL is an immutable value."""
    url = parse_url("ws://example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        url.port = 1  # type: ignore[misc]


def test_scheme_and_host_are_lower_cased() -> None:
    """Scheme and host are case-insensitive and normalised; path case is kept."""
    url = parse_url("WSS://Example.COM:8443/Chat?Room=A")
    assert url.url == "WSS://Example.COM:8443/Chat?Room=A"
    assert url.scheme == "wss"
    assert url.host == "example.com"
    assert url.port == 8443
    assert url.netloc == "example.com:8443"
    assert url.path == "/Chat"
    assert url.query == "Room=A"


@pytest.mark.parametrize(
    ("text", "port", "host_header"),
    [
        ("ws://h:8080/", 8080, "h:8080"),
        ("ws://h:80/", 80, "h"),
        ("wss://h:443/", 443, "h"),
        ("wss://h:80/", 80, "h:80"),
        ("ws://h:443/", 443, "h:443"),
        ("ws://h:/", 80, "h"),
        ("ws://h:1/", 1, "h:1"),
        ("ws://h:65535/", 65535, "h:65535"),
    ],
)
def test_ports_and_host_header(text: str, port: int, host_header: str) -> None:
    """The port is always set; the Host header omits it when it is the scheme's default."""
    url = parse_url(text)
    assert url.port == port
    assert url.host_header == host_header


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("ws://h:0/", "port 0 is out of range 1-65535"),
        ("ws://h:65536/", "port 65536 is out of range 1-65535"),
        ("ws://h:123456/", "invalid port '123456'"),
        ("ws://h:http/", "invalid port 'http'"),
        ("ws://h:-1/", "invalid port '-1'"),
        ("ws://h:+80/", "invalid port '+80'"),
        ("ws://h:\u0668\u0660/", "invalid port '\u0668\u0660'"),
    ],
)
def test_bad_port(text: str, msg: str) -> None:
    """Ports must be ASCII digits in 1-65535."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url(text)
    assert info.value.url == text
    assert info.value.msg == msg


def test_path_and_query() -> None:
    """resource_name joins path and query; reserved characters and %XX are kept."""
    url = parse_url("ws://h/a/b%20c;x=1?q=1&r=%2F/?:@")
    assert url.path == "/a/b%20c;x=1"
    assert url.query == "q=1&r=%2F/?:@"
    assert url.resource_name == "/a/b%20c;x=1?q=1&r=%2F/?:@"


def test_query_without_path() -> None:
    """A query right after the authority gets the "/" path."""
    url = parse_url("ws://h?x=1")
    assert url.path == "/"
    assert url.query == "x=1"
    assert url.resource_name == "/?x=1"


def test_empty_query_is_dropped() -> None:
    """A bare "?" gives an empty query, so the request target has no "?"."""
    url = parse_url("ws://h/p?")
    assert url.query == ""
    assert url.resource_name == "/p"


@pytest.mark.parametrize(
    ("text", "host", "port", "netloc", "host_header"),
    [
        ("ws://[::1]/", "::1", 80, "[::1]", "[::1]"),
        ("ws://[::1]:9000/", "::1", 9000, "[::1]:9000", "[::1]:9000"),
        ("wss://[2001:DB8::A]:443/x", "2001:db8::a", 443, "[2001:db8::a]:443", "[2001:db8::a]"),
        ("ws://[::ffff:1.2.3.4]/", "::ffff:1.2.3.4", 80, "[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]"),
        ("ws://[fe80::1%25eth0]:81/", "fe80::1%eth0", 81, "[fe80::1%25eth0]:81", "[fe80::1]:81"),
    ],
)
def test_ipv6(text: str, host: str, port: int, netloc: str, host_header: str) -> None:
    """IPv6 literals: host without brackets (zone in OS form), brackets in netloc and Host."""
    url = parse_url(text)
    assert url.host == host
    assert url.port == port
    assert url.netloc == netloc
    assert url.host_header == host_header


def test_ipv4() -> None:
    """An IPv4 address is a host like any other."""
    url = parse_url("ws://127.0.0.1:9001/")
    assert url.host == "127.0.0.1"
    assert url.host_header == "127.0.0.1:9001"


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("ws://[::1/", "unterminated IPv6 address"),
        ("ws://[::1]x/", "unexpected characters after IPv6 address"),
        ("ws://[not-ip]/", "invalid IPv6 address 'not-ip'"),
        ("ws://[1.2.3.4]/", "invalid IPv6 address '1.2.3.4'"),
        ("ws://[fe80::1%eth0]/", "invalid IPv6 address 'fe80::1%eth0'"),
        ("ws://[fe80::1%25]/", "invalid IPv6 zone identifier ''"),
        ("ws://::1/", "IPv6 addresses must be enclosed in brackets"),
    ],
)
def test_bad_ipv6(text: str, msg: str) -> None:
    """Malformed IP literals are refused."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url(text)
    assert info.value.msg == msg


def test_iri_host_and_path() -> None:
    """Non-ASCII: IDNA host; path and query percent-encoded as UTF-8, existing %XX kept."""
    url = parse_url("wss://Bücher.example/straße/%41?q=ü&r=日本")
    assert url.url == "wss://Bücher.example/straße/%41?q=ü&r=日本"
    assert url.host == "xn--bcher-kva.example"
    assert url.netloc == "xn--bcher-kva.example"
    assert url.host_header == "xn--bcher-kva.example"
    assert url.path == "/stra%C3%9Fe/%41"
    assert url.query == "q=%C3%BC&r=%E6%97%A5%E6%9C%AC"
    assert url.resource_name == "/stra%C3%9Fe/%41?q=%C3%BC&r=%E6%97%A5%E6%9C%AC"


def test_iri_userinfo() -> None:
    """Non-ASCII userinfo is decoded for username/password and percent-encoded in netloc."""
    url = parse_url("ws://jürgen:pässword@host:81/")
    assert url.username == "jürgen"
    assert url.password == "pässword"
    assert url.netloc == "j%C3%BCrgen:p%C3%A4ssword@host:81"
    assert url.host_header == "host:81"


def test_idna_error() -> None:
    """A host that IDNA cannot encode is refused."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url("ws://bü..cher/")
    assert info.value.msg.startswith("host cannot be encoded with IDNA")


@pytest.mark.parametrize(
    ("text", "username", "password", "user_info"),
    [
        ("ws://alice:secret@h/", "alice", "secret", "alice:secret"),
        ("ws://alice@h/", "alice", None, "alice"),
        ("ws://alice:@h/", "alice", "", "alice:"),
        ("ws://a%40b:p%3Ass%25@h/", "a@b", "p:ss%", "a@b:p:ss%"),
        ("ws://:pw@h/", "", "pw", ":pw"),
    ],
)
def test_userinfo(
    text: str, username: str, password: Optional[str], user_info: Optional[str]
) -> None:
    """Userinfo is percent-decoded and never part of the Host header."""
    url = parse_url(text)
    assert url.username == username
    assert url.password == password
    assert url.user_info == user_info
    assert url.host == "h"
    assert url.host_header == "h"


def test_userinfo_in_netloc() -> None:
    """netloc keeps the userinfo as written."""
    url = parse_url("ws://a%40b:pw@Host:8080/")
    assert url.netloc == "a%40b:pw@host:8080"


def test_userinfo_invalid_utf8() -> None:
    """Percent-escapes in userinfo must decode to UTF-8."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url("ws://%ff:pw@h/")
    assert info.value.msg == "userinfo is not valid percent-encoded UTF-8"


@pytest.mark.parametrize(
    "text",
    ["ws://h/#frag", "ws://h/p?q#", "ws://h#x", "wss://h/a#b#c"],
)
def test_fragment_rejected(text: str) -> None:
    """A fragment, even empty, is refused."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url(text)
    assert info.value.msg == (
        "fragment identifier is meaningless: fragments are not allowed in WebSocket URLs"
    )


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("ws://", "hostname isn't provided: URL has no host"),
        ("ws:///path", "hostname isn't provided: URL has no host"),
        ("ws://:80/", "hostname isn't provided: URL has no host"),
        ("ws://user@/", "hostname isn't provided: URL has no host"),
        ("ws:host/path", "hostname isn't provided: URL has no host"),
        ("//host/path", "scheme isn't ws or wss: URL has no scheme"),
        ("host:80", "scheme isn\'t ws or wss: \'host\' is not one of: ws, wss"),
        ("example.com", "scheme isn't ws or wss: URL has no scheme"),
        ("", "scheme isn't ws or wss: URL has no scheme"),
        ("http://h/", "scheme isn\'t ws or wss: \'http\' is not one of: ws, wss"),
        ("wss+unix://h/", "scheme isn\'t ws or wss: \'wss+unix\' is not one of: ws, wss"),
        ("ws://h%41/", "host contains invalid characters"),
        ("ws://a\\b/", "host contains invalid characters"),
        ("ws://h<x>/", "host contains invalid characters"),
    ],
)
def test_invalid(text: str, msg: str) -> None:
    """Missing or unusable scheme/host."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url(text)
    assert info.value.url == text
    assert info.value.msg == msg


@pytest.mark.parametrize(
    "text",
    [
        " ws://h/",
        "ws://h/ ",
        "ws://h/a b",
        "ws://h/\t",
        "ws://h/\r\nX-Injected: 1",
        "ws://h/\n",
        "ws://h\x00/",
        "ws://h/\x7f",
        "ws://h/\x85",
        "ws://h/\u00a0",
        "ws://h/\u3000",
        "ws://h/?q=\u2028",
    ],
)
def test_whitespace_and_controls_rejected(text: str) -> None:
    """Whitespace and control characters are refused, never silently stripped."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url(text)
    assert info.value.msg == "URL contains whitespace or control characters"


def test_lone_surrogate_rejected() -> None:
    """A path that cannot be encoded as UTF-8 is refused."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url("ws://h/\ud800")
    assert info.value.msg == "URL cannot be encoded as UTF-8"


def test_not_a_string() -> None:
    """A non-str URL is a TypeError, not a WSInvalidURL."""
    with pytest.raises(TypeError):
        parse_url(b"ws://h/")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "scheme", "is_secure", "port"),
    [
        ("http://proxy", "http", False, 80),
        ("https://proxy", "https", True, 443),
        ("socks4://proxy", "socks4", False, 1080),
        ("socks5://u:p@proxy:9050", "socks5", False, 9050),
    ],
)
def test_proxy_schemes(text: str, scheme: str, is_secure: bool, port: int) -> None:
    """The same parser serves proxy URLs through allowed_schemes."""
    url = parse_url(text, allowed_schemes=("http", "https", "socks4", "socks5"))
    assert url.scheme == scheme
    assert url.is_secure is is_secure
    assert url.port == port
    assert url.host == "proxy"


def test_allowed_schemes_excludes_ws() -> None:
    """allowed_schemes replaces the default list."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url("ws://h/", allowed_schemes=("http", "https"))
    assert info.value.msg == "scheme 'ws' is not one of: http, https"


def test_scheme_without_default_port() -> None:
    """An allowed scheme with no known default needs an explicit port."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url("foo://h/", allowed_schemes=("foo",))
    assert info.value.msg == "URL has no port and scheme 'foo' has no default"
    assert parse_url("foo://h:7/", allowed_schemes=("foo",)).port == 7


def test_invalid_url_str_masks_password() -> None:
    """The exception text names the URL without its password."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url("ws://bob:hunter2@h/#x")
    assert "hunter2" not in str(info.value)
    assert str(info.value) == (
        "invalid URL 'ws://bob:***@h/#x': fragment identifier is meaningless: "
        "fragments are not allowed in WebSocket URLs"
    )
