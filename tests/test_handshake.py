"""femtows.handshake: the HTTP/1.1 upgrade, both sides, as pure functions."""

from __future__ import annotations

import base64
import dataclasses
import os
import pickle
import subprocess
import sys
from http import HTTPStatus
from typing import List, Optional, Tuple

import pytest
from multidict import CIMultiDict

from femtows import handshake
from femtows.errors import (
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
)
from femtows.handshake import (
    MAX_HEADERS,
    WS_GUID,
    HandshakeRejection,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    build_101_response,
    build_error_response,
    build_request,
    compute_accept,
    generate_key,
    parse_request,
    parse_response,
    validate_request,
    validate_response,
)
from femtows.url import parse_url

# RFC 6455 §1.3 sample (the accept value below is the one printed in the RFC).
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def request_head(*headers: str, line: str = "GET /chat HTTP/1.1") -> bytes:
    """An HTTP request head made of a request line and header lines."""
    return ("\r\n".join([line, *headers]) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def upgrade_head(
    *extra: str, drop: Tuple[str, ...] = (), line: str = "GET /chat HTTP/1.1"
) -> bytes:
    """A valid upgrade request head, minus the ``drop`` headers, plus ``extra`` lines."""
    base = {
        "Host": "server.example.com",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": RFC_KEY,
        "Sec-WebSocket-Version": "13",
    }
    lines = [f"{k}: {v}" for k, v in base.items() if k not in drop]
    return request_head(*lines, *extra, line=line)


def response_head(*headers: str, line: str = "HTTP/1.1 101 Switching Protocols") -> bytes:
    """An HTTP response head."""
    return ("\r\n".join([line, *headers]) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def ok_101_head(*extra: str, drop: Tuple[str, ...] = ()) -> bytes:
    """A valid 101 answer to RFC_KEY, minus ``drop``, plus ``extra`` lines."""
    base = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": RFC_ACCEPT,
    }
    lines = [f"{k}: {v}" for k, v in base.items() if k not in drop]
    return response_head(*lines, *extra)


def rejection(head: bytes, validate: bool = True) -> HandshakeRejection:
    """Run the server side on ``head`` and return the rejection it must raise."""
    with pytest.raises(HandshakeRejection) as info:
        request = parse_request(head)
        if validate:
            validate_request(request)
    return info.value


# ---------------------------------------------------------------------------------------------
# Keys


def test_accept_rfc_vector() -> None:
    """The RFC 6455 §1.3 example."""
    assert compute_accept(RFC_KEY) == RFC_ACCEPT
    assert WS_GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_generate_key() -> None:
    """Keys are base64 of 16 random bytes, different each time."""
    key = generate_key()
    assert len(key) == 24
    assert len(base64.b64decode(key, validate=True)) == 16
    assert generate_key() != key


def test_limits() -> None:
    """Default limits: 16 KiB head, 128 headers."""
    assert handshake.MAX_HEAD_SIZE == 16 * 1024
    assert MAX_HEADERS == 128


def _import_limits(env_value: str) -> subprocess.CompletedProcess[str]:
    # Import the same femtows as this process, whatever the current directory.
    root = os.path.dirname(os.path.dirname(handshake.__file__))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = dict(
        os.environ, PYTHONPATH=path, FEMTOWS_MAX_HEAD_SIZE=env_value, FEMTOWS_MAX_HEADERS="7"
    )
    code = "from femtows import handshake as h; print(h.MAX_HEAD_SIZE, h.MAX_HEADERS)"
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def test_limits_env_override() -> None:
    """FEMTOWS_MAX_HEAD_SIZE and FEMTOWS_MAX_HEADERS override the limits at import."""
    result = _import_limits("65536")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["65536", "7"]


@pytest.mark.parametrize("value", ["big", "0", "-5"])
def test_limits_env_invalid(value: str) -> None:
    """A bad limit fails loudly at import rather than being ignored."""
    result = _import_limits(value)
    assert result.returncode != 0
    assert f"FEMTOWS_MAX_HEAD_SIZE must be a positive integer, got {value!r}" in result.stderr


# ---------------------------------------------------------------------------------------------
# Round trip


def test_round_trip() -> None:
    """Client request to server validation to 101 to client validation, end to end."""
    url = parse_url("ws://Example.com:8080/chat?room=1")
    key = generate_key()
    request, wire = build_request(url, key, [("Origin", "http://example.com")])

    received = parse_request(wire)
    assert received.method == request.method == b"GET"
    assert received.path == request.path == b"/chat?room=1"
    assert received.version == request.version == b"HTTP/1.1"
    assert list(received.headers.items()) == list(request.headers.items())
    assert validate_request(received) == key

    response, response_wire = build_101_response(key, [("Sec-WebSocket-Protocol", "chat")])
    parsed = parse_response(response_wire)
    assert parsed.status is HTTPStatus.SWITCHING_PROTOCOLS
    assert parsed.version == b"HTTP/1.1"
    assert parsed.body is None
    assert list(parsed.headers.items()) == list(response.headers.items())
    validate_response(parsed, key, response_wire)


def test_default_101_response_headers_built_when_read() -> None:
    """Without extra headers the 101's headers are built only when read: a WSUpgradeResponse
    whose headers, once read, are exactly the ones sent (and stay mutable, like any other)."""
    response, wire = build_101_response(RFC_KEY)
    assert isinstance(response, WSUpgradeResponse)
    assert (response.version, response.status, response.body) == (
        b"HTTP/1.1", HTTPStatus.SWITCHING_PROTOCOLS, None)
    parsed = parse_response(wire)
    validate_response(parsed, RFC_KEY, wire)
    assert list(response.headers.items()) == list(parsed.headers.items()) == [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]
    assert response.headers is response.headers
    response.headers.add("X-Later", "1")
    assert response.headers["x-later"] == "1"
    assert response.to_bytes() == wire[:-2] + b"X-Later: 1\r\n\r\n"
    response.headers = CIMultiDict({"A": "b"})
    assert list(response.headers.items()) == [("A", "b")]
    assert "status=101" in repr(response)
    with pytest.raises(TypeError):
        build_101_response(RFC_KEY, "not headers")  # type: ignore[arg-type]


def test_round_trip_preserves_non_ascii_header_bytes() -> None:
    """Header values survive parse and serialise byte for byte, whatever their encoding."""
    head = upgrade_head("X-Latin1: caf\udce9", "X-Utf8: café")
    request = parse_request(head)
    assert request.headers["X-Utf8"] == "café"
    response, wire = build_101_response(RFC_KEY, request.headers)
    assert b"X-Latin1: caf\xe9\r\n" in wire
    assert b"X-Utf8: caf\xc3\xa9\r\n" in wire


# ---------------------------------------------------------------------------------------------
# Client: build_request


def test_build_request_exact_bytes() -> None:
    """The request line and header order are fixed; extra headers come last."""
    url = parse_url("ws://example.com/chat?x=1")
    request, wire = build_request(url, RFC_KEY, {"Origin": "http://example.com"})
    assert wire == (
        b"GET /chat?x=1 HTTP/1.1\r\n"
        b"Host: example.com\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: http://example.com\r\n"
        b"\r\n"
    )
    assert isinstance(request, WSUpgradeRequest)
    assert (request.method, request.path, request.version) == (b"GET", b"/chat?x=1", b"HTTP/1.1")
    assert list(request.headers.items()) == [
        ("Host", "example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", RFC_KEY),
        ("Sec-WebSocket-Version", "13"),
        ("Origin", "http://example.com"),
    ]


def test_build_request_host_header_forms() -> None:
    """Host: no userinfo, IPv6 in brackets, default port omitted, IDNA host."""
    cases = {
        "ws://user:pw@h:80/": "h",
        "wss://h:8443/": "h:8443",
        "ws://[::1]:9000/": "[::1]:9000",
        "wss://Bücher.example/": "xn--bcher-kva.example",
    }
    for text, host in cases.items():
        request, wire = build_request(parse_url(text), RFC_KEY)
        assert request.headers["Host"] == host
        assert f"\r\nHost: {host}\r\n".encode() in wire


def test_build_request_host_override_and_repeats() -> None:
    """A Host in extra_headers replaces ours in place; other repeats are all sent."""
    url = parse_url("ws://10.0.0.1/")
    request, wire = build_request(
        url,
        RFC_KEY,
        [("host", "virtual.example"), ("Cookie", "a=1"), ("Cookie", "b=2")],
    )
    assert request.headers.getall("Host") == ["virtual.example"]
    assert wire.startswith(b"GET / HTTP/1.1\r\nHost: virtual.example\r\nUpgrade: websocket\r\n")
    assert request.headers.getall("Cookie") == ["a=1", "b=2"]
    assert wire.endswith(b"Cookie: a=1\r\nCookie: b=2\r\n\r\n")


def test_build_request_accepts_multidict() -> None:
    """A CIMultiDict keeps all its values."""
    extra: CIMultiDict[str] = CIMultiDict([("X-A", "1"), ("X-A", "2")])
    request, _ = build_request(parse_url("ws://h/"), RFC_KEY, extra)
    assert request.headers.getall("X-A") == ["1", "2"]


@pytest.mark.parametrize(
    "extra",
    [
        [("X-Evil", "a\r\nInjected: 1")],
        [("X-Evil", "a\nb")],
        [("X-Evil", "a\rb")],
        [("X-Evil", "a\x00b")],
        [("X-Evil\r\nInjected", "1")],
        [("X Evil", "1")],
        [("X-Evil:", "1")],
        [("", "1")],
        [("Host", "h\r\n")],
    ],
)
def test_build_request_refuses_injection(extra: List[Tuple[str, str]]) -> None:
    """CR, LF and other control characters, and non-token names, are a ValueError."""
    with pytest.raises(ValueError):
        build_request(parse_url("ws://h/"), RFC_KEY, extra)


def test_build_request_refuses_bad_key() -> None:
    """The key is a header value like any other."""
    with pytest.raises(ValueError):
        build_request(parse_url("ws://h/"), "abc\r\nX: 1")


def test_build_request_refuses_non_str_headers() -> None:
    """Header names and values must be str (bytes would be sent as their repr)."""
    with pytest.raises(TypeError):
        build_request(parse_url("ws://h/"), RFC_KEY, [("X-A", b"1")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        build_request(parse_url("ws://h/"), RFC_KEY, "X-A: 1")  # type: ignore[arg-type]


def test_build_request_allows_tab_in_value() -> None:
    """HTAB is a legal field-value character."""
    _, wire = build_request(parse_url("ws://h/"), RFC_KEY, [("X-A", "a\tb")])
    assert b"X-A: a\tb\r\n" in wire


# ---------------------------------------------------------------------------------------------
# Client: parse_response


@pytest.mark.parametrize("reason", ["Switching Protocols", "null", "X", "", "Ok\tthen"])
def test_parse_response_any_reason(reason: str) -> None:
    """Any printable reason phrase is accepted, even empty or "null"."""
    response = parse_response(ok_101_head().replace(b"Switching Protocols", reason.encode(), 1))
    assert response.status is HTTPStatus.SWITCHING_PROTOCOLS


def test_parse_response_without_reason() -> None:
    """The reason phrase (and the space before it) may be left out."""
    response = parse_response(response_head("Upgrade: websocket", line="HTTP/1.1 101"))
    assert response.status == 101


def test_parse_response_fields() -> None:
    """Headers are stripped of OWS, case-insensitive and repeatable; body is left to the caller."""
    head = response_head(
        "upgrade:websocket",
        "Connection:   Upgrade  ",
        "Set-Cookie: a=1",
        "Set-Cookie: b=2",
        "X-Empty:",
    )
    response = parse_response(head)
    assert response.version == b"HTTP/1.1"
    assert response.body is None
    assert response.headers["UPGRADE"] == "websocket"
    assert response.headers["connection"] == "Upgrade"
    assert response.headers.getall("set-cookie") == ["a=1", "b=2"]
    assert response.headers["X-Empty"] == ""


# Prefixes of the messages: picows's words (tests/test_picows_wording.py), then femtows's detail.
BAD_STATUS_LINE = "cannot upgrade, invalid HTTP status line in upgrade response: "
NOT_HTTP11 = "cannot upgrade, unknown protocol (expected HTTP/1.1) in upgrade response: "
BAD_HEADER = "cannot upgrade, malformed header in upgrade response: "
NOT_101 = "expected upgrade response with status 101 Switching Protocols, but received "


def test_parse_response_unknown_status_kept_as_int() -> None:
    """A code HTTPStatus does not know (a CDN's 522) stays an int, and is a status error."""
    head = response_head("Server: cdn", line="HTTP/1.1 522 Origin Connection Time-out")
    response = parse_response(head)
    assert response.status == 522
    assert type(response.status) is int
    with pytest.raises(WSInvalidStatusError) as info:
        validate_response(response, RFC_KEY, head, b"<html>")
    assert str(info.value) == NOT_101 + "522"
    assert info.value.response is response
    assert info.value.raw_body == b"<html>"


@pytest.mark.parametrize(
    ("head", "description"),
    [
        (
            b"HTTP/1.0 101 Switching Protocols\r\n\r\n",
            NOT_HTTP11 + "invalid status line b'HTTP/1.0 101 Switching Protocols'",
        ),
        (b"HTTP/2 101 X\r\n\r\n", NOT_HTTP11 + "invalid status line b'HTTP/2 101 X'"),
        (b"http/1.1 101 X\r\n\r\n", BAD_STATUS_LINE + "invalid status line b'http/1.1 101 X'"),
        (b"HTTP/1.1 10 X\r\n\r\n", BAD_STATUS_LINE + "invalid status line b'HTTP/1.1 10 X'"),
        (b"HTTP/1.1 1011 X\r\n\r\n", BAD_STATUS_LINE + "invalid status line b'HTTP/1.1 1011 X'"),
        (b"HTTP/1.1  101 X\r\n\r\n", BAD_STATUS_LINE + "invalid status line b'HTTP/1.1  101 X'"),
        (b"HTTP/1.1 abc X\r\n\r\n", BAD_STATUS_LINE + "invalid status line b'HTTP/1.1 abc X'"),
        (
            b"HTTP/1.1 101 X\x00\r\n\r\n",
            BAD_STATUS_LINE + "invalid status line b'HTTP/1.1 101 X\\x00'",
        ),
        (b"HTTP/1.1 099 X\r\n\r\n", BAD_STATUS_LINE + "invalid status code 99"),
        (b"HTTP/1.1 600 X\r\n\r\n", BAD_STATUS_LINE + "invalid status code 600"),
        (
            b"HTTP/1.1 101 X\r\nUpgrade: websocket\r\n",
            "response head is not terminated by CRLF CRLF",
        ),
        (b"HTTP/1.1 101 X\nUpgrade: websocket\n\n", "response head is not terminated by CRLF CRLF"),
        (
            b"HTTP/1.1 101 X\nUpgrade: websocket\r\n\r\n",
            BAD_STATUS_LINE + "invalid status line b'HTTP/1.1 101 X\\nUpgrade: websocket'",
        ),
        (b"HTTP/1.1 101 X\r\n folded\r\n\r\n", BAD_HEADER + "obsolete line folding is not allowed"),
        (
            b"HTTP/1.1 101 X\r\nA: 1\r\n\tfolded\r\n\r\n",
            BAD_HEADER + "obsolete line folding is not allowed",
        ),
        (b"HTTP/1.1 101 X\r\nNo colon\r\n\r\n", BAD_HEADER + "invalid header line b'No colon'"),
        (
            b"HTTP/1.1 101 X\r\nUpgrade : websocket\r\n\r\n",
            BAD_HEADER + "invalid header line b'Upgrade : websocket'",
        ),
        (b"HTTP/1.1 101 X\r\n: empty\r\n\r\n", BAD_HEADER + "invalid header line b': empty'"),
        (b"HTTP/1.1 101 X\r\nX(y): 1\r\n\r\n", BAD_HEADER + "invalid header line b'X(y): 1'"),
        (b"HTTP/1.1 101 X\r\nX: a\x00b\r\n\r\n", BAD_HEADER + "invalid header value b'X: a\\x00b'"),
        (b"HTTP/1.1 101 X\r\nX: a\rb\r\n\r\n", BAD_HEADER + "invalid header value b'X: a\\rb'"),
        (b"HTTP/1.1 101 X\r\nX: a\x7fb\r\n\r\n", BAD_HEADER + "invalid header value b'X: a\\x7fb'"),
        (b"HTTP/1.1 101 X\r\nA: 1\r\n\r\nB: 2\r\n\r\n", BAD_HEADER + "invalid header line b''"),
    ],
)
def test_parse_response_malformed(head: bytes, description: str) -> None:
    """Malformed heads raise WSInvalidMessageError carrying the raw head."""
    with pytest.raises(WSInvalidMessageError) as info:
        parse_response(head)
    assert str(info.value) == description
    assert info.value.raw_header == head
    assert info.value.response is None


def test_parse_response_obs_text_accepted() -> None:
    """obs-text (bytes 0x80-0xFF) is allowed in values and round-trips."""
    response = parse_response(response_head("X: caf\udce9"))
    assert response.headers["X"] == "caf\udce9"


def test_parse_response_header_count() -> None:
    """MAX_HEADERS headers are accepted; one more is refused."""
    lines = [f"X-{i}: {i}" for i in range(MAX_HEADERS)]
    assert len(parse_response(response_head(*lines)).headers) == MAX_HEADERS
    head = response_head(*lines, "X-Last: 1")
    with pytest.raises(WSInvalidMessageError) as info:
        parse_response(head)
    assert str(info.value) == f"upgrade response contains more than {MAX_HEADERS} headers"
    assert info.value.raw_header == head


def test_parse_response_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A head over MAX_HEAD_SIZE is refused (the core enforces it too, while reading)."""
    monkeypatch.setattr(handshake, "MAX_HEAD_SIZE", 100)
    head = response_head("X: " + "a" * 100)
    with pytest.raises(WSInvalidMessageError) as info:
        parse_response(head)
    assert str(info.value) == (
        "upgrade response headers exceed max_size threshold: 100 (response head exceeds 100 bytes)"
    )
    assert info.value.raw_header == head


# ---------------------------------------------------------------------------------------------
# Client: validate_response


@pytest.mark.parametrize(
    "head",
    [
        ok_101_head(),
        ok_101_head("Content-Length: 0"),
        ok_101_head("Connection: keep-alive, Upgrade", drop=("Connection",)),
        ok_101_head("Connection: keep-alive", "Connection: upgrade", drop=("Connection",)),
        ok_101_head("Connection: UPGRADE", drop=("Connection",)),
        ok_101_head("Upgrade: WebSocket", drop=("Upgrade",)),
    ],
)
def test_validate_response_ok(head: bytes) -> None:
    """A correct 101 passes; Content-Length: 0 and a token-list Connection are fine."""
    validate_response(parse_response(head), RFC_KEY, head)


def test_validate_response_status() -> None:
    """A status other than 101 is WSInvalidStatusError with everything attached."""
    head = response_head("Content-Length: 9", "Retry-After: 5", line="HTTP/1.1 503 Busy")
    response = parse_response(head)
    assert response.status is HTTPStatus.SERVICE_UNAVAILABLE
    with pytest.raises(WSInvalidStatusError) as info:
        validate_response(response, RFC_KEY, head, b"try later")
    exc = info.value
    assert str(exc) == NOT_101 + "503 Service Unavailable"
    assert exc.raw_header == head
    assert exc.raw_body == b"try later"
    assert exc.response is response
    assert exc.response.headers["Retry-After"] == "5"


@pytest.mark.parametrize(
    ("head", "exc_type", "description", "name", "value"),
    [
        (
            ok_101_head(drop=("Upgrade",)),
            WSInvalidUpgradeError,
            "cannot upgrade, invalid upgrade header: missing Upgrade header",
            "Upgrade",
            None,
        ),
        (
            ok_101_head("Upgrade: h2c", drop=("Upgrade",)),
            WSInvalidUpgradeError,
            "cannot upgrade, invalid upgrade header: 'h2c', expected 'websocket'",
            "Upgrade",
            "h2c",
        ),
        (
            ok_101_head("Upgrade: websocket"),
            WSInvalidUpgradeError,
            "cannot upgrade, invalid upgrade header: 'websocket, websocket', expected 'websocket'",
            "Upgrade",
            "websocket, websocket",
        ),
        (
            ok_101_head(drop=("Connection",)),
            WSInvalidUpgradeError,
            "cannot upgrade, invalid connection header: missing Connection header",
            "Connection",
            None,
        ),
        (
            ok_101_head("Connection: keep-alive", drop=("Connection",)),
            WSInvalidUpgradeError,
            "cannot upgrade, invalid connection header: 'keep-alive', expected 'upgrade'",
            "Connection",
            "keep-alive",
        ),
        (
            ok_101_head("Connection: upgraded", drop=("Connection",)),
            WSInvalidUpgradeError,
            "cannot upgrade, invalid connection header: 'upgraded', expected 'upgrade'",
            "Connection",
            "upgraded",
        ),
        (
            ok_101_head("Transfer-Encoding: chunked"),
            WSInvalidHeaderError,
            "101 response cannot have Transfer-Encoding but it has: 'chunked'",
            "Transfer-Encoding",
            "chunked",
        ),
        (
            ok_101_head("Content-Length: 10"),
            WSInvalidHeaderError,
            "101 response has non-zero Content-Length, but it can't have body: '10'",
            "Content-Length",
            "10",
        ),
        (
            ok_101_head("Content-Length: 0", "Content-Length: 0"),
            WSInvalidHeaderError,
            "101 response has invalid Content-Length header: '0, 0'",
            "Content-Length",
            "0, 0",
        ),
        (
            ok_101_head(drop=("Sec-WebSocket-Accept",)),
            WSInvalidHeaderError,
            "cannot upgrade, invalid sec-websocket-accept response: "
            "missing Sec-WebSocket-Accept header",
            "Sec-WebSocket-Accept",
            None,
        ),
        (
            ok_101_head(
                "Sec-WebSocket-Accept: " + compute_accept(generate_key()),
                drop=("Sec-WebSocket-Accept",),
            ),
            WSInvalidHeaderError,
            None,
            "Sec-WebSocket-Accept",
            None,
        ),
        (
            ok_101_head("Sec-WebSocket-Accept: " + RFC_ACCEPT),
            WSInvalidHeaderError,
            f"cannot upgrade, invalid sec-websocket-accept response: '{RFC_ACCEPT}, {RFC_ACCEPT}'",
            "Sec-WebSocket-Accept",
            f"{RFC_ACCEPT}, {RFC_ACCEPT}",
        ),
    ],
)
def test_validate_response_headers(
    head: bytes,
    exc_type: type,
    description: Optional[str],
    name: str,
    value: Optional[str],
) -> None:
    """Each header problem gives its exception type, header name and received value."""
    response = parse_response(head)
    with pytest.raises(WSHandshakeError) as info:
        validate_response(response, RFC_KEY, head, b"extra")
    exc = info.value
    assert type(exc) is exc_type
    assert isinstance(exc, WSInvalidHeaderError)
    assert exc.name == name
    if description is not None:
        assert str(exc) == description
        assert exc.value == value
    else:  # a wrong accept value: random, so only its shape is checked
        assert str(exc).startswith("cannot upgrade, invalid sec-websocket-accept response: '")
        assert exc.value == response.headers["Sec-WebSocket-Accept"]
    assert exc.raw_header == head
    assert exc.raw_body == b"extra"
    assert exc.response is response


# ---------------------------------------------------------------------------------------------
# Server: parse_request


def test_parse_request_fields() -> None:
    """method, path and version are bytes as received; headers a CIMultiDict of str."""
    request = parse_request(upgrade_head("X-A: 1", "x-a: 2", line="GET /a%20b?c=d HTTP/1.1"))
    assert request.method == b"GET"
    assert request.path == b"/a%20b?c=d"
    assert request.version == b"HTTP/1.1"
    assert isinstance(request.headers, CIMultiDict)
    assert request.headers.getall("X-A") == ["1", "2"]
    assert request.headers["host"] == "server.example.com"


def test_parse_request_other_methods_pass() -> None:
    """parse_request leaves the method to validate_request (the factory may serve HTTP)."""
    request = parse_request(request_head("Host: h", line="POST /health HTTP/1.1"))
    assert request.method == b"POST"
    rej = rejection(request_head("Host: h", line="POST /health HTTP/1.1"))
    assert rej.status is HTTPStatus.METHOD_NOT_ALLOWED
    assert rej.headers == [("Allow", "GET")]


def test_parse_request_absolute_form_target() -> None:
    """Any non-empty visible target is accepted (routing is the factory's business)."""
    request = parse_request(request_head("Host: h", line="GET http://h/x HTTP/1.1"))
    assert request.path == b"http://h/x"


def test_http_1_0_parsed_then_refused_by_validate_request() -> None:
    """HTTP/1.0 reaches the listener factory (which may serve plain HTTP); an upgrade over it
    is refused with 400 by validate_request."""
    request = parse_request(upgrade_head(line="GET / HTTP/1.0"))
    assert request.version == b"HTTP/1.0"
    rej = rejection(upgrade_head(line="GET / HTTP/1.0"))
    assert rej.status is HTTPStatus.BAD_REQUEST
    assert rej.reason == "WebSocket requires HTTP/1.1"
    assert rej.headers == []


def test_parse_request_later_minor_version() -> None:
    """HTTP/1.2 is compatible with 1.1 (RFC 9112 §2.5) and kept as sent."""
    request = parse_request(upgrade_head(line="GET / HTTP/1.2"))
    assert request.version == b"HTTP/1.2"


@pytest.mark.parametrize(
    ("head", "status", "reason"),
    [
        (upgrade_head(line="GET / HTTP/2.0"), 505, "HTTP version not supported"),
        (upgrade_head(line="GET / HTTP/0.9"), 505, "HTTP version not supported"),
        (upgrade_head(line="GET / HTTP/1"), 400, "Malformed request line"),
        (upgrade_head(line="GET / HTTP/1.1.1"), 400, "Malformed request line"),
        (upgrade_head(line="GET / http/1.1"), 400, "Malformed request line"),
        (upgrade_head(line="GET  HTTP/1.1"), 400, "Malformed request line"),
        (upgrade_head(line="GET HTTP/1.1"), 400, "Malformed request line"),
        (upgrade_head(line="GET  / HTTP/1.1"), 400, "Malformed request line"),
        (upgrade_head(line="GET / HTTP/1.1 "), 400, "Malformed request line"),
        (upgrade_head(line="GET /a b HTTP/1.1"), 400, "Malformed request line"),
        (upgrade_head(line="G(T / HTTP/1.1"), 400, "Malformed request line"),
        (upgrade_head(line="/ HTTP/1.1"), 400, "Malformed request line"),
        (upgrade_head(line="GET /caf\udce9 HTTP/1.1"), 400, "Malformed request line"),
        (upgrade_head(line="GET /\x7f HTTP/1.1"), 400, "Malformed request line"),
        (upgrade_head(line=""), 400, "Malformed request line"),
        (b"GET / HTTP/1.1\nHost: h\r\n\r\n", 400, "Malformed request line"),
        (b"GET / HTTP/1.1\r\nHost: h\r\n", 400, "Malformed request head"),
        (b"GET / HTTP/1.1\n\n", 400, "Malformed request head"),
        (upgrade_head(" folded"), 400, "Malformed request header"),
        (upgrade_head("\tfolded"), 400, "Malformed request header"),
        (upgrade_head("Host : h"), 400, "Malformed request header"),
        (upgrade_head("No-Colon"), 400, "Malformed request header"),
        (upgrade_head(": v"), 400, "Malformed request header"),
        (upgrade_head("X@Y: v"), 400, "Malformed request header"),
        (upgrade_head("X: a\x00b"), 400, "Malformed request header"),
        (upgrade_head("X: a\rb"), 400, "Malformed request header"),
        (upgrade_head("X: a\x1bb"), 400, "Malformed request header"),
        (upgrade_head("Transfer-Encoding: chunked"), 400, "Transfer-Encoding is not allowed"),
        (upgrade_head("Transfer-Encoding: identity"), 400, "Transfer-Encoding is not allowed"),
        (upgrade_head("Content-Length: 5"), 400, "Request body is not allowed"),
        (upgrade_head("Content-Length: 00"), 400, "Request body is not allowed"),
        (
            upgrade_head("Content-Length: 0", "Content-Length: 0"),
            400,
            "Request body is not allowed",
        ),
    ],
)
def test_parse_request_rejections(head: bytes, status: int, reason: str) -> None:
    """Each malformed request gets its exact status and a fixed, safe reason."""
    rej = rejection(head, validate=False)
    assert rej.status == status
    assert isinstance(rej.status, HTTPStatus)
    assert rej.reason == reason
    assert str(rej) == reason
    assert rej.headers == []


def test_parse_request_content_length_zero_ok() -> None:
    """A single Content-Length: 0 is harmless."""
    request = parse_request(upgrade_head("Content-Length: 0"))
    assert validate_request(request) == RFC_KEY


def test_parse_request_header_count() -> None:
    """MAX_HEADERS headers pass; one more is 431."""
    extra = [f"X-{i}: {i}" for i in range(MAX_HEADERS - 5)]
    assert validate_request(parse_request(upgrade_head(*extra))) == RFC_KEY
    rej = rejection(upgrade_head(*extra, "X-Last: 1"), validate=False)
    assert rej.status is HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    assert rej.reason == "Too many request headers"


def test_parse_request_size_limit() -> None:
    """A head over MAX_HEAD_SIZE is 431."""
    big = upgrade_head("Cookie: " + "a" * handshake.MAX_HEAD_SIZE)
    rej = rejection(big, validate=False)
    assert rej.status is HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    assert rej.reason == "Request header too large"


def test_parse_request_size_limit_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly MAX_HEAD_SIZE bytes is accepted."""
    head = upgrade_head()
    monkeypatch.setattr(handshake, "MAX_HEAD_SIZE", len(head))
    assert validate_request(parse_request(head)) == RFC_KEY
    monkeypatch.setattr(handshake, "MAX_HEAD_SIZE", len(head) - 1)
    assert rejection(head, validate=False).status == 431


# ---------------------------------------------------------------------------------------------
# Server: validate_request


def test_validate_request_firefox() -> None:
    """Firefox's ``Connection: keep-alive, Upgrade`` (refused by picows) is accepted."""
    head = (
        b"GET /chat HTTP/1.1\r\n"
        b"Host: localhost:9001\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
        b"Accept: */*\r\n"
        b"Accept-Language: en-US,en;q=0.5\r\n"
        b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: http://localhost:8000\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Connection: keep-alive, Upgrade\r\n"
        b"Sec-Fetch-Dest: empty\r\n"
        b"Sec-Fetch-Mode: websocket\r\n"
        b"Sec-Fetch-Site: same-site\r\n"
        b"Pragma: no-cache\r\n"
        b"Cache-Control: no-cache\r\n"
        b"Upgrade: websocket\r\n"
        b"\r\n"
    )
    assert validate_request(parse_request(head)) == RFC_KEY


@pytest.mark.parametrize(
    "extra_and_drop",
    [
        (("Connection: Upgrade, keep-alive",), ("Connection",)),
        (("Connection: keep-alive", "Connection: upgrade"), ("Connection",)),
        (("Connection: UPGRADE",), ("Connection",)),
        (("Upgrade: WebSocket",), ("Upgrade",)),
        (("Upgrade: h2c, websocket",), ("Upgrade",)),
        (("Sec-WebSocket-Version:  13 ",), ("Sec-WebSocket-Version",)),
    ],
)
def test_validate_request_token_lists(
    extra_and_drop: Tuple[Tuple[str, ...], Tuple[str, ...]],
) -> None:
    """Connection and Upgrade are case-insensitive token lists."""
    extra, drop = extra_and_drop
    assert validate_request(parse_request(upgrade_head(*extra, drop=drop))) == RFC_KEY


@pytest.mark.parametrize(
    ("head", "status", "reason", "headers"),
    [
        (
            upgrade_head(line="POST /chat HTTP/1.1"),
            405,
            "WebSocket upgrade requires GET",
            [("Allow", "GET")],
        ),
        (
            upgrade_head(line="get /chat HTTP/1.1"),
            405,
            "WebSocket upgrade requires GET",
            [("Allow", "GET")],
        ),
        (upgrade_head(drop=("Host",)), 400, "Missing or repeated Host header", []),
        (upgrade_head("Host: other"), 400, "Missing or repeated Host header", []),
        (
            upgrade_head(drop=("Upgrade",)),
            426,
            "WebSocket upgrade required",
            [("Upgrade", "websocket")],
        ),
        (
            request_head("Host: h", "Accept: text/html"),
            426,
            "WebSocket upgrade required",
            [("Upgrade", "websocket")],
        ),
        (
            upgrade_head("Upgrade: h2c", drop=("Upgrade",)),
            400,
            "Upgrade header must include websocket",
            [],
        ),
        (
            upgrade_head("Upgrade: websockets", drop=("Upgrade",)),
            400,
            "Upgrade header must include websocket",
            [],
        ),
        (
            upgrade_head(drop=("Connection",)),
            400,
            "Connection header must include upgrade",
            [],
        ),
        (
            upgrade_head("Connection: keep-alive", drop=("Connection",)),
            400,
            "Connection header must include upgrade",
            [],
        ),
        (
            upgrade_head(drop=("Sec-WebSocket-Version",)),
            400,
            "Missing or repeated Sec-WebSocket-Version header",
            [],
        ),
        (
            upgrade_head("Sec-WebSocket-Version: 13"),
            400,
            "Missing or repeated Sec-WebSocket-Version header",
            [],
        ),
        (
            upgrade_head("Sec-WebSocket-Version: 8", drop=("Sec-WebSocket-Version",)),
            426,
            "Unsupported WebSocket version",
            [("Sec-WebSocket-Version", "13")],
        ),
        (
            upgrade_head("Sec-WebSocket-Version: 13, 8", drop=("Sec-WebSocket-Version",)),
            426,
            "Unsupported WebSocket version",
            [("Sec-WebSocket-Version", "13")],
        ),
        (
            upgrade_head("Sec-WebSocket-Version: 013", drop=("Sec-WebSocket-Version",)),
            426,
            "Unsupported WebSocket version",
            [("Sec-WebSocket-Version", "13")],
        ),
        (
            upgrade_head(drop=("Sec-WebSocket-Key",)),
            400,
            "Missing or repeated Sec-WebSocket-Key header",
            [],
        ),
        (
            upgrade_head("Sec-WebSocket-Key: " + RFC_KEY),
            400,
            "Missing or repeated Sec-WebSocket-Key header",
            [],
        ),
    ],
)
def test_validate_request_rejections(
    head: bytes, status: int, reason: str, headers: List[Tuple[str, str]]
) -> None:
    """Each invalid upgrade gets its exact status, reason and required headers."""
    rej = rejection(head)
    assert rej.status == status
    assert isinstance(rej.status, HTTPStatus)
    assert rej.reason == reason
    assert rej.headers == headers


@pytest.mark.parametrize(
    "key",
    [
        "",
        "!!!!!!!!!!!!!!!!!!!!!!!!",
        "dGhlIHNhbXBsZSBub25jZQ",  # missing padding
        base64.b64encode(b"x" * 15).decode(),
        base64.b64encode(b"x" * 17).decode(),
        base64.b64encode(b"x" * 32).decode(),
        "dGhlIHNhbXBsZSBub25jZQ==" + "AAAA",
        "dGhlIHNhbXBsZSBub25j ZQ==",
        "dGhlIHNhbXBsZSBub25jZQ\udce9=",
    ],
)
def test_validate_request_bad_key(key: str) -> None:
    """Sec-WebSocket-Key must be base64 of exactly 16 bytes."""
    head = upgrade_head(f"Sec-WebSocket-Key: {key}", drop=("Sec-WebSocket-Key",))
    rej = rejection(head)
    assert rej.status is HTTPStatus.BAD_REQUEST
    assert rej.reason == "Invalid Sec-WebSocket-Key header"


def test_validate_request_returns_key() -> None:
    """The returned key is the one the client sent."""
    key = generate_key()
    head = upgrade_head(f"Sec-WebSocket-Key: {key}", drop=("Sec-WebSocket-Key",))
    assert validate_request(parse_request(head)) == key


# ---------------------------------------------------------------------------------------------
# Server: responses


def test_build_101_response_exact_bytes() -> None:
    """Upgrade, Connection and Sec-WebSocket-Accept, then the user's headers."""
    response, wire = build_101_response(RFC_KEY)
    assert wire == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"\r\n"
    )
    assert response.status is HTTPStatus.SWITCHING_PROTOCOLS
    assert response.version == b"HTTP/1.1"
    assert response.body is None
    assert response.to_bytes() == wire


def test_build_101_response_user_headers_cannot_override() -> None:
    """User headers are appended; ours (and framing headers) cannot be replaced."""
    user = WSUpgradeResponse.create_101_response(
        [
            ("Sec-WebSocket-Protocol", "chat"),
            ("connection", "close"),
            ("Upgrade", "h2c"),
            ("Sec-WebSocket-Accept", "forged"),
            ("Content-Length", "5"),
            ("Transfer-Encoding", "chunked"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ]
    )
    response, wire = build_101_response(RFC_KEY, user.headers)
    assert wire == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Protocol: chat\r\n"
        b"Set-Cookie: a=1\r\n"
        b"Set-Cookie: b=2\r\n"
        b"\r\n"
    )
    assert list(response.headers.items()) == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", RFC_ACCEPT),
        ("Sec-WebSocket-Protocol", "chat"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    validate_response(parse_response(wire), RFC_KEY, wire)


def test_build_101_response_refuses_injection() -> None:
    """A user header with CR/LF cannot split the response."""
    with pytest.raises(ValueError):
        build_101_response(RFC_KEY, {"Set-Cookie": "a=1\r\nX-Injected: 1"})
    headers: CIMultiDict[str] = CIMultiDict()
    headers["X"] = "1\n"
    with pytest.raises(ValueError):
        build_101_response(RFC_KEY, headers)


def test_build_error_response_exact_bytes() -> None:
    """Error responses always carry Content-Type, Content-Length and Connection: close."""
    assert build_error_response(HTTPStatus.BAD_REQUEST, b"Malformed request line") == (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 22\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"Malformed request line"
    )


def test_build_error_response_with_headers() -> None:
    """Rejection headers are sent; Connection and Content-Length are ours."""
    wire = build_error_response(
        HTTPStatus.UPGRADE_REQUIRED,
        b"Unsupported WebSocket version",
        [
            ("Sec-WebSocket-Version", "13"),
            ("Connection", "keep-alive"),
            ("Content-Length", "999"),
            ("Transfer-Encoding", "chunked"),
        ],
    )
    assert wire == (
        b"HTTP/1.1 426 Upgrade Required\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 29\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"Unsupported WebSocket version"
    )


def test_build_error_response_no_body_and_own_content_type() -> None:
    """No body means Content-Length: 0; a given Content-Type is kept."""
    wire = build_error_response(HTTPStatus.NOT_FOUND, None, {"Content-Type": "text/html"})
    assert wire == (
        b"HTTP/1.1 404 Not Found\r\n"
        b"Content-Type: text/html\r\n"
        b"Content-Length: 0\r\n"
        b"Connection: close\r\n"
        b"\r\n"
    )


def test_build_error_response_from_rejection() -> None:
    """What the server sends for a HandshakeRejection: its status, headers and reason."""
    rej = rejection(upgrade_head(line="PUT / HTTP/1.1"))
    wire = build_error_response(rej.status, rej.reason.encode(), rej.headers)
    assert wire == (
        b"HTTP/1.1 405 Method Not Allowed\r\n"
        b"Allow: GET\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 30\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"WebSocket upgrade requires GET"
    )


def test_build_error_response_refuses_injection() -> None:
    """Header injection is refused here too."""
    with pytest.raises(ValueError):
        build_error_response(HTTPStatus.FORBIDDEN, b"", [("X", "a\r\nb")])


# ---------------------------------------------------------------------------------------------
# WSUpgradeResponse and friends


def test_ok_response_to_bytes() -> None:
    """200 with a body: text/plain Content-Type by default, Content-Length added."""
    response = WSUpgradeResponse.create_ok_response(b"OK")
    assert response.status is HTTPStatus.OK
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.to_bytes() == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nOK"
    )


def test_ok_response_without_body() -> None:
    """No body: neither Content-Type nor Content-Length is invented."""
    response = WSUpgradeResponse.create_ok_response()
    assert response.body is None
    assert response.to_bytes() == b"HTTP/1.1 200 OK\r\n\r\n"


def test_error_response_to_bytes() -> None:
    """Extra headers first, then the defaults; to_bytes does not modify the object."""
    response = WSUpgradeResponse.create_error_response(
        403, b"nope", {"X-Reason": "policy", "Content-Length": "1"}
    )
    assert response.status is HTTPStatus.FORBIDDEN
    assert response.to_bytes() == (
        b"HTTP/1.1 403 Forbidden\r\n"
        b"X-Reason: policy\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 4\r\n"
        b"\r\n"
        b"nope"
    )
    assert response.headers.getall("Content-Length") == ["1"]


def test_to_bytes_adds_content_type_when_missing() -> None:
    """A body set after creation still gets Content-Type and Content-Length."""
    response = WSUpgradeResponse.create_error_response(HTTPStatus.SERVICE_UNAVAILABLE)
    response.body = b""
    assert response.to_bytes() == (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_error_response_unknown_status() -> None:
    """A 4xx/5xx code HTTPStatus does not know is kept as int, with an empty reason."""
    response = WSUpgradeResponse.create_error_response(599)
    assert response.status == 599
    assert response.to_bytes() == b"HTTP/1.1 599 \r\n\r\n"


@pytest.mark.parametrize("status", [200, 302, 399, 600])
def test_error_response_status_range(status: int) -> None:
    """create_error_response only takes 4xx and 5xx."""
    with pytest.raises(ValueError):
        WSUpgradeResponse.create_error_response(status)


def test_redirect_response() -> None:
    """Location replaces any given one; no body."""
    response = WSUpgradeResponse.create_redirect_response(
        HTTPStatus.FOUND, "wss://other.example/ws", [("Location", "old"), ("X-A", "1")]
    )
    assert response.status is HTTPStatus.FOUND
    assert response.body is None
    assert response.headers.getall("Location") == ["wss://other.example/ws"]
    assert response.to_bytes() == (
        b"HTTP/1.1 302 Found\r\nLocation: wss://other.example/ws\r\nX-A: 1\r\n\r\n"
    )


@pytest.mark.parametrize("status", [200, 299, 400, 101])
def test_redirect_response_status_range(status: int) -> None:
    """create_redirect_response only takes 3xx."""
    with pytest.raises(ValueError):
        WSUpgradeResponse.create_redirect_response(status, "/x")


def test_redirect_response_refuses_injection() -> None:
    """A Location with CR/LF is refused at once."""
    with pytest.raises(ValueError):
        WSUpgradeResponse.create_redirect_response(302, "/x\r\nSet-Cookie: evil=1")


def test_101_response() -> None:
    """create_101_response: Upgrade and Connection are fixed, extras follow."""
    response = WSUpgradeResponse.create_101_response(
        {"Sec-WebSocket-Protocol": "chat", "Connection": "close"}
    )
    assert response.status is HTTPStatus.SWITCHING_PROTOCOLS
    assert response.to_bytes() == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Protocol: chat\r\n"
        b"\r\n"
    )


def test_to_bytes_refuses_injection_added_later() -> None:
    """Headers mutated after creation are still checked when serialised."""
    response = WSUpgradeResponse.create_ok_response(b"x")
    response.headers["X-Evil"] = "a\r\nSet-Cookie: evil=1"
    with pytest.raises(ValueError):
        response.to_bytes()
    response = WSUpgradeResponse.create_ok_response(b"x")
    response.headers["Bad Name"] = "v"
    with pytest.raises(ValueError):
        response.to_bytes()
    response = WSUpgradeResponse.create_ok_response(b"x")
    response.version = b"HTTP/1.1\r\nX: 1"
    with pytest.raises(ValueError):
        response.to_bytes()


def test_create_refuses_invalid_headers() -> None:
    """Bad extra headers fail at creation, where the bug is."""
    with pytest.raises(ValueError):
        WSUpgradeResponse.create_ok_response(None, {"X": "a\nb"})
    with pytest.raises(TypeError):
        WSUpgradeResponse.create_error_response(400, None, {"X": 1})  # type: ignore[arg-type]


def test_default_constructors() -> None:
    """Both classes can be built empty (as in picows) or with all fields."""
    request = WSUpgradeRequest()
    assert (request.method, request.path, request.version) == (b"GET", b"/", b"HTTP/1.1")
    assert len(request.headers) == 0
    response = WSUpgradeResponse()
    assert (response.version, response.status, response.body) == (b"HTTP/1.1", HTTPStatus.OK, None)
    response = WSUpgradeResponse(b"HTTP/1.1", 404, CIMultiDict(), b"x")
    assert response.status is HTTPStatus.NOT_FOUND


def test_slots() -> None:
    """No per-instance __dict__ (these objects are made per connection)."""
    with pytest.raises(AttributeError):
        WSUpgradeRequest().extra = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        WSUpgradeResponse().extra = 1  # type: ignore[attr-defined]


def test_reprs() -> None:
    """reprs show every field."""
    request = WSUpgradeRequest(b"GET", b"/x", b"HTTP/1.1", CIMultiDict([("Host", "h")]))
    assert repr(request) == (
        "WSUpgradeRequest(method=b'GET', path=b'/x', version=b'HTTP/1.1', headers=[('Host', 'h')])"
    )
    response = WSUpgradeResponse(b"HTTP/1.1", HTTPStatus.NOT_FOUND, None, b"no")
    assert repr(response) == (
        "WSUpgradeResponse(version=b'HTTP/1.1', status=404, headers=[], body=b'no')"
    )


def test_response_with_listener() -> None:
    """A 101 needs a listener; an error response must not have one; others may go either way."""
    listener = object()
    ok = WSUpgradeResponseWithListener(WSUpgradeResponse.create_101_response(), listener)
    assert ok.listener is listener
    assert ok.response.status == 101
    with pytest.raises(ValueError):
        WSUpgradeResponseWithListener(WSUpgradeResponse.create_101_response(), None)
    with pytest.raises(ValueError):
        WSUpgradeResponseWithListener(WSUpgradeResponse.create_error_response(403), listener)
    health = WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(b"up"), None)
    assert health.listener is None
    redirect = WSUpgradeResponse.create_redirect_response(301, "/new")
    assert WSUpgradeResponseWithListener(redirect, None).response is redirect


def test_handshake_rejection() -> None:
    """HandshakeRejection keeps status, reason and headers (as a list of pairs)."""
    rej = HandshakeRejection(HTTPStatus.METHOD_NOT_ALLOWED, "nope", {"Allow": "GET"})
    assert rej.status is HTTPStatus.METHOD_NOT_ALLOWED
    assert rej.reason == "nope"
    assert str(rej) == "nope"
    assert rej.headers == [("Allow", "GET")]
    assert HandshakeRejection(HTTPStatus.BAD_REQUEST, "x").headers == []


def test_handshake_rejection_pickles() -> None:
    """HandshakeRejection survives pickling."""
    original = HandshakeRejection(HTTPStatus.UPGRADE_REQUIRED, "r", {"A": "b"})
    rej = pickle.loads(pickle.dumps(original))
    assert (rej.status, rej.reason, rej.headers) == (426, "r", [("A", "b")])


def test_response_with_listener_repr() -> None:
    """The repr shows both parts."""
    pair = WSUpgradeResponseWithListener(WSUpgradeResponse.create_error_response(404), None)
    assert repr(pair) == (
        "WSUpgradeResponseWithListener(WSUpgradeResponse(version=b'HTTP/1.1', status=404, "
        "headers=[], body=None), None)"
    )


@pytest.mark.parametrize("path", ["", "/a b", "/caf\u00e9", "/\r\nX: 1"])
def test_build_request_refuses_bad_target(path: str) -> None:
    """A hand-made WSParsedURL cannot smuggle an invalid request target."""
    url = dataclasses.replace(parse_url("ws://h/"), path=path)
    with pytest.raises(ValueError):
        build_request(url, RFC_KEY)


@pytest.mark.parametrize("status", [99, 600, 1000])
def test_to_bytes_refuses_bad_status(status: int) -> None:
    """Only three-digit codes 100-599 are written."""
    response = WSUpgradeResponse()
    response.status = status
    with pytest.raises(ValueError):
        response.to_bytes()


@pytest.mark.parametrize(
    "block",
    [
        b"Host: a",
        b"Host:a",
        b"A: 1\r\nA: 2\r\nb:3",  # repeated names keep their order
        b"X-Empty:\r\nX-Spaces:  \t v a l \t ",
        b"X-Utf8: caf\xc3\xa9\r\nX-Bytes: \xff\xfe\x80",  # UTF-8 and obs-text (surrogateescape)
        b"X-Split: \xc3\r\nY: \xa9",  # a UTF-8 sequence cut by CRLF stays two invalid bytes
        b"!#$%&'*+-.^_`|~09AZaz: v",  # every token character in a name
    ],
)
def test_header_block_fast_path_equals_line_by_line(block: bytes) -> None:
    """Valid header blocks are parsed in one regex pass and one decode; the result must be
    exactly what the line-by-line parser (which also produces the error messages) gives."""
    fast = handshake._parse_header_block(block)
    slow = handshake._parse_header_lines(block.split(b"\r\n"))
    assert list(fast.items()) == list(slow.items())
    request = handshake.parse_request(b"GET / HTTP/1.1\r\n" + block + b"\r\n\r\n")
    assert list(request.headers.items()) == list(slow.items())


@pytest.mark.parametrize(
    "block",
    [
        b"",  # an empty line where a header should be
        b"A: 1\r\n",
        b"A: 1\r\n\r\nB: 2",
        b"A: 1\r\n folded",
        b"A 1",
        b": 1",
        b"A: \x7f",
        b"A: 1\rB: 2",
    ],
)
def test_header_block_invalid_is_refused_like_line_by_line(block: bytes) -> None:
    with pytest.raises(handshake._MalformedHead) as fast:
        handshake._parse_header_block(block)
    with pytest.raises(handshake._MalformedHead) as slow:
        handshake._parse_header_lines(block.split(b"\r\n"))
    assert str(fast.value) == str(slow.value)


# -- WSUpgradeResponse.reason: a custom reason phrase on the status line ---------------------


@pytest.mark.parametrize(
    ("status", "reason", "status_line"),
    [
        (403, None, b"HTTP/1.1 403 Forbidden"),
        (403, "Go Away", b"HTTP/1.1 403 Go Away"),
        (200, "Tr\u00e8s bien\tok", b"HTTP/1.1 200 Tr\xe8s bien\tok"),  # obs-text as Latin-1
        (204, "", b"HTTP/1.1 204 "),
        (599, None, b"HTTP/1.1 599 "),
        (599, "Network Connect Timeout", b"HTTP/1.1 599 Network Connect Timeout"),
    ],
)
def test_response_reason_on_status_line(
    status: int, reason: Optional[str], status_line: bytes
) -> None:
    """``reason`` replaces the standard phrase; None keeps it (none for unknown codes)."""
    response = WSUpgradeResponse(b"HTTP/1.1", status, None, b"x", reason=reason)
    assert response.reason == reason
    assert response.to_bytes().split(b"\r\n")[0] == status_line


@pytest.mark.parametrize(
    "reason", ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "nul\x00", "del\x7f", "check \u2713"]
)
def test_response_reason_refuses_unsafe_text(reason: str) -> None:
    """CR, LF, other controls and characters Latin-1 cannot carry: ValueError, at construction
    and, for a value assigned later, when serialising; nothing reaches the wire."""
    with pytest.raises(ValueError, match="invalid character in the reason phrase"):
        WSUpgradeResponse(b"HTTP/1.1", 403, reason=reason)
    response = WSUpgradeResponse.create_error_response(403, b"no")
    response.reason = reason
    with pytest.raises(ValueError, match="invalid character in the reason phrase"):
        response.to_bytes()
    with pytest.raises(ValueError, match="invalid character in the reason phrase"):
        build_101_response(RFC_KEY, None, reason)


def test_response_reason_type_and_picows_signature() -> None:
    """picows's four positional arguments still work; ``reason`` is keyword-only and a str."""
    response = WSUpgradeResponse(b"HTTP/1.1", 404, CIMultiDict([("A", "b")]), b"no")
    assert response.reason is None
    assert WSUpgradeResponse.create_error_response(404).reason is None
    with pytest.raises(TypeError):
        WSUpgradeResponse(b"HTTP/1.1", 404, None, None, "Nope")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="reason phrase must be a str or None, not bytes"):
        WSUpgradeResponse(b"HTTP/1.1", 404, reason=b"Nope")  # type: ignore[arg-type]
    assert repr(WSUpgradeResponse(b"HTTP/1.1", 404, None, None, reason="Nope")) == (
        "WSUpgradeResponse(version=b'HTTP/1.1', status=404, headers=[], body=None, "
        "reason='Nope')"
    )


def test_build_101_response_with_reason() -> None:
    """A custom phrase on the 101; the standard head and extra headers otherwise unchanged."""
    response, wire = build_101_response(RFC_KEY, None, "Switching, gladly")
    assert wire == (
        b"HTTP/1.1 101 Switching, gladly\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + RFC_ACCEPT.encode() + b"\r\n\r\n"
    )
    assert response.reason == "Switching, gladly"
    assert response.headers["Sec-WebSocket-Accept"] == RFC_ACCEPT
    response, wire = build_101_response(RFC_KEY, {"X-A": "1"}, "")
    assert wire.startswith(b"HTTP/1.1 101 \r\n") and wire.endswith(b"\r\nX-A: 1\r\n\r\n")
    default, wire = build_101_response(RFC_KEY)
    assert default.reason is None
    assert wire.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")


@pytest.mark.parametrize(
    ("status_line", "reason"),
    [
        (b"HTTP/1.1 101 Switching Protocols", "Switching Protocols"),
        (b"HTTP/1.1 101 null", "null"),
        (b"HTTP/1.1 101 ", ""),
        (b"HTTP/1.1 101", None),
        (b"HTTP/1.1 403 Tr\xe8s interdit", "Tr\u00e8s interdit"),
    ],
)
def test_parse_response_keeps_reason(status_line: bytes, reason: Optional[str]) -> None:
    """A client's response carries the phrase the server sent (decoded as Latin-1)."""
    response = parse_response(status_line + b"\r\nUpgrade: websocket\r\n\r\n")
    assert response.reason == reason
