"""femtows.websockets.http11 against websockets.http11 (17.4): Request/Response, defaults,
serialize and the generator-based parsers, side by side."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Callable, Generator

import pytest
import websockets.datastructures as ref_ds
import websockets.http11 as ref

from femtows.version import __version__
from femtows.websockets import datastructures as ds
from femtows.websockets import exceptions as exc
from femtows.websockets import http11
from tests.websockets.reference import needs_reference, require_reference


class _Stream:
    """A finished in-memory stream with websockets' read_line/read_exact/read_to_eof contract."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read_line(
        self, m: int, too_long: type[Exception] = RuntimeError
    ) -> Generator[None, None, bytes]:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise EOFError("stream ends before newline")
        if end + 1 - self.pos > m:
            raise too_long(f"read {end + 1 - self.pos} bytes, expected no more than {m} bytes")
        line, self.pos = self.data[self.pos : end + 1], end + 1
        return line
        yield  # pragma: no cover

    def read_exact(self, n: int) -> Generator[None, None, bytes]:
        if self.pos + n > len(self.data):
            raise EOFError("stream ends early")
        chunk, self.pos = self.data[self.pos : self.pos + n], self.pos + n
        return chunk
        yield  # pragma: no cover

    def read_to_eof(
        self, m: int, too_long: type[Exception] = RuntimeError
    ) -> Generator[None, None, bytes]:
        if len(self.data) - self.pos > m:
            raise too_long(
                f"read {len(self.data) - self.pos} bytes, expected no more than {m} bytes"
            )
        chunk, self.pos = self.data[self.pos :], len(self.data)
        return chunk
        yield  # pragma: no cover


def _run(gen: Generator[None, None, Any]) -> Any:
    try:
        next(gen)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("parser asked for more data")


def _outcome(parse: Callable[[], Any]) -> Any:
    try:
        message = parse()
    except Exception as error:  # noqa: BLE001 - compared by type name and text
        return ("error", type(error).__name__, str(error))
    return ("ok", message.serialize(), list(message.headers.raw_items()))


REQUESTS = [
    b"GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nX:   spaced  \t\r\n\r\n",
    b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"",
    b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: " + b"y" * 9000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 129 + b"\r\n",
    b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
]


def _marked(raws: list[bytes], *needing_reference: int) -> list[Any]:
    return [
        pytest.param(raw, marks=needs_reference) if i in needing_reference else raw
        for i, raw in enumerate(raws)
    ]


# Older websockets refuse, word or serialize these otherwise (HTTP/1.0, duplicate
# Content-Length, the too-long/too-many exception types, non-UTF-8 paths).
@pytest.mark.parametrize("raw", _marked(REQUESTS, 1, 2, 9, 14, 15, 16, 17))
def test_request_parse(raw: bytes) -> None:
    ours = _outcome(lambda: _run(http11.Request.parse(_Stream(raw).read_line)))
    theirs = _outcome(lambda: _run(ref.Request.parse(_Stream(raw).read_line)))
    assert ours == theirs


RESPONSES = [
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
    b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nbody until eof",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 099 OK\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 200\r\n\r\n",
    b"HTTP/1.1 200 \x7f\r\n\r\n",
    b"HTTP/1.1 200 caf\xe9\r\n\r\n",
]


# Older websockets word bad sizes otherwise and fail on a non-UTF-8 reason phrase.
@pytest.mark.parametrize("raw", _marked(RESPONSES, 4, 8, 16))
@pytest.mark.parametrize("proxy", [False, True])
def test_response_parse(raw: bytes, proxy: bool) -> None:
    if proxy:
        require_reference()  # older websockets' Response.parse has no proxy argument
    def parse(mod: Any) -> Callable[[], Any]:
        def run() -> Any:
            s = _Stream(raw)
            kwargs = {"proxy": True} if proxy else {}
            return _run(mod.Response.parse(s.read_line, s.read_exact, s.read_to_eof, **kwargs))

        return run

    assert _outcome(parse(http11)) == _outcome(parse(ref))


def test_security_error_types() -> None:
    with pytest.raises(exc.RequestLineTooLong):
        _run(http11.Request.parse(_Stream(REQUESTS[14]).read_line))
    with pytest.raises(exc.HeaderLineTooLong):
        _run(http11.Request.parse(_Stream(REQUESTS[15]).read_line))
    with pytest.raises(exc.TooManyHeaders, match="expected no more than 128 headers"):
        _run(http11.Request.parse(_Stream(REQUESTS[16]).read_line))
    s = _Stream(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 10)
    with pytest.raises(exc.StatusLineTooLong):
        _run(
            http11.Response.parse(
                _Stream(b"HTTP/1.1 200 " + b"x" * 9000 + b"\r\n").read_line,
                s.read_exact,
                s.read_to_eof,
            )
        )


def test_dataclasses_and_serialize() -> None:
    request = http11.Request("/x", ds.Headers(Host="h"))
    assert (request.method, request.protocol) == ("GET", "HTTP/1.1")
    ref_request = ref.Request("/x", ref_ds.Headers(Host="h"))
    assert request.serialize() == ref_request.serialize() == b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
    response = http11.Response(403, "Forbidden", ds.Headers(X="1"), b"no")
    ref_response = ref.Response(403, "Forbidden", ref_ds.Headers(X="1"), b"no")
    assert response.serialize() == ref_response.serialize()
    assert http11.Response(101, "Switching Protocols", ds.Headers()).body == b""
    with pytest.warns(DeprecationWarning, match="Request.exception is deprecated"):
        assert request.exception is None
    with pytest.warns(DeprecationWarning, match="Response.exception is deprecated"):
        assert response.exception is None


def test_defaults() -> None:
    version = "{}.{}".format(*sys.version_info)
    if "WEBSOCKETS_USER_AGENT" not in os.environ:
        assert http11.USER_AGENT == f"Python/{version} femtows/{__version__}"
    if "WEBSOCKETS_SERVER" not in os.environ:
        assert http11.SERVER == f"Python/{version} femtows/{__version__}"
    assert (http11.MAX_NUM_HEADERS, http11.MAX_LINE_LENGTH, http11.MAX_BODY_SIZE) == (
        ref.MAX_NUM_HEADERS,
        ref.MAX_LINE_LENGTH,
        ref.MAX_BODY_SIZE,
    )


def test_environment_overrides() -> None:
    code = (
        "from femtows.websockets import http11; "
        "print(http11.USER_AGENT, http11.SERVER, http11.MAX_NUM_HEADERS, http11.MAX_LINE_LENGTH,"
        " http11.MAX_BODY_SIZE, sep='|')"
    )
    env = dict(
        os.environ,
        WEBSOCKETS_USER_AGENT="agent/1",
        WEBSOCKETS_SERVER="srv/2",
        WEBSOCKETS_MAX_NUM_HEADERS="7",
        WEBSOCKETS_MAX_LINE_LENGTH="100",
        WEBSOCKETS_MAX_BODY_SIZE="1_000",
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "agent/1|srv/2|7|100|1000"
