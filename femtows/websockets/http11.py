"""HTTP/1.1 handshake messages: :class:`Request`, :class:`Response`, ``USER_AGENT``, ``SERVER``.

Twins of ``websockets.http11`` (17.4). ``Request.parse`` / ``Response.parse`` are
generator-based coroutines over ``read_line`` / ``read_exact`` / ``read_to_eof`` callables, as in
websockets' Sans-I/O layer; the femtows engine parses handshakes in ``femtows.handshake`` and
builds these objects from the result.

Limits come from the environment like websockets: ``WEBSOCKETS_MAX_NUM_HEADERS`` (128),
``WEBSOCKETS_MAX_LINE_LENGTH`` (8192), ``WEBSOCKETS_MAX_BODY_SIZE`` (1 MiB).
``WEBSOCKETS_USER_AGENT`` and ``WEBSOCKETS_SERVER`` override the default ``User-Agent`` and
``Server`` headers, which name femtows (``Python/3.x femtows/<version>``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import warnings
from typing import Callable, Generator, Optional, Type, Union

from ..version import __version__ as _femtows_version
from .datastructures import Headers
from .exceptions import (
    HeaderLineTooLong,
    RequestLineTooLong,
    SecurityError,
    StatusLineTooLong,
    TooManyHeaders,
)

__all__ = ["SERVER", "USER_AGENT", "Request", "Response"]

PYTHON_VERSION = "{}.{}".format(*sys.version_info)

USER_AGENT = os.environ.get(
    "WEBSOCKETS_USER_AGENT", f"Python/{PYTHON_VERSION} femtows/{_femtows_version}"
)
"""Default ``User-Agent`` header of client requests."""

SERVER = os.environ.get("WEBSOCKETS_SERVER", f"Python/{PYTHON_VERSION} femtows/{_femtows_version}")
"""Default ``Server`` header of server responses."""

MAX_NUM_HEADERS = int(os.environ.get("WEBSOCKETS_MAX_NUM_HEADERS", "128"))
"""Most headers accepted in a request or response."""

MAX_LINE_LENGTH = int(os.environ.get("WEBSOCKETS_MAX_LINE_LENGTH", "8192"))
"""Longest request, status or header line accepted (8 KiB, the usual HTTP server default)."""

MAX_BODY_SIZE = int(os.environ.get("WEBSOCKETS_MAX_BODY_SIZE", "1_048_576"))
"""Largest response body read (bodies carry error messages, not files)."""

ReadLine = Callable[[int, Type[Exception]], Generator[None, None, Union[bytes, bytearray]]]
ReadExact = Callable[[int], Generator[None, None, Union[bytes, bytearray]]]

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_HEX_DIGITS = re.compile(rb"[0-9a-fA-F]{1,15}")


def _shown(raw: Union[bytes, bytearray]) -> str:
    """Bytes made printable for an error message."""
    return raw.decode(errors="backslashreplace")


@dataclasses.dataclass
class Request:
    """A WebSocket handshake request.

    Attributes:
        path: request target (path and optional query), not decoded.
        headers: request headers.
        method: ``"GET"`` for WebSocket handshakes.
        protocol: ``"HTTP/1.1"`` for WebSocket handshakes.
    """

    path: str
    headers: Headers
    method: str = "GET"
    protocol: str = "HTTP/1.1"
    _exception: Optional[Exception] = None

    @property
    def exception(self) -> Optional[Exception]:
        """Deprecated (websockets 10.3): the exception that made the handshake fail."""
        warnings.warn(
            "Request.exception is deprecated; use ServerProtocol.handshake_exc instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._exception

    @classmethod
    def parse(cls, read_line: ReadLine) -> Generator[None, None, Request]:
        """Parse a request head (generator-based coroutine). The body, if any, is not read.

        Raises:
            EOFError: the stream ended before the end of the head.
            RequestLineTooLong, HeaderLineTooLong, TooManyHeaders: a limit was exceeded.
            UnicodeDecodeError: the method or path is not ASCII.
            ValueError: the head is malformed or announces a body.
            NotImplementedError: the request uses Transfer-Encoding.
        """
        try:
            line = yield from parse_line(read_line, RequestLineTooLong)
        except EOFError as exc:
            raise EOFError("connection closed while reading HTTP request line") from exc
        parts = line.split(b" ", 2)
        if len(parts) != 3:
            raise ValueError(f"invalid HTTP request line: {_shown(line)}")
        raw_method, raw_path, raw_protocol = parts
        if raw_protocol not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise ValueError(f"unsupported protocol; expected HTTP/1.1 or HTTP/1.0: {_shown(line)}")
        method = raw_method.decode("ascii")
        protocol = raw_protocol.decode("ascii")
        path = raw_path.decode("ascii")
        headers = yield from parse_headers(read_line)
        if "Transfer-Encoding" in headers:
            raise NotImplementedError("transfer codings aren't supported")
        if any(value != "0" for value in headers.get_all("Content-Length")):
            raise ValueError("unsupported request body")
        return cls(path, headers, method, protocol)

    def serialize(self) -> bytes:
        """Return the request head as bytes (the request line must be ASCII)."""
        return f"{self.method} {self.path} {self.protocol}\r\n".encode() + self.headers.serialize()


@dataclasses.dataclass
class Response:
    """A WebSocket handshake response.

    Attributes:
        status_code: e.g. 101, 404.
        reason_phrase: e.g. ``"Switching Protocols"``.
        headers: response headers.
        body: response body (empty for a 101).
    """

    status_code: int
    reason_phrase: str
    headers: Headers
    body: Union[bytes, bytearray] = b""
    _exception: Optional[Exception] = None

    @property
    def exception(self) -> Optional[Exception]:
        """Deprecated (websockets 10.3): the exception that made the handshake fail."""
        warnings.warn(
            "Response.exception is deprecated; use ClientProtocol.handshake_exc instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._exception

    @classmethod
    def parse(
        cls,
        read_line: ReadLine,
        read_exact: ReadExact,
        read_to_eof: ReadLine,
        proxy: bool = False,
    ) -> Generator[None, None, Response]:
        """Parse a response head and its body (generator-based coroutine).

        Args:
            proxy: parse a proxy's answer to CONNECT: HTTP/1.0 allowed, no body read.

        Raises:
            EOFError: the stream ended before the end of the response.
            StatusLineTooLong, HeaderLineTooLong, TooManyHeaders, SecurityError: a limit
                was exceeded.
            ValueError: the response is malformed.
            NotImplementedError: a transfer coding other than chunked.
        """
        try:
            line = yield from parse_line(read_line, StatusLineTooLong)
        except EOFError as exc:
            raise EOFError("connection closed while reading HTTP status line") from exc
        parts = line.split(b" ", 2)
        if len(parts) != 3:
            raise ValueError(f"invalid HTTP status line: {_shown(line)}")
        protocol, raw_code, raw_reason = parts
        if proxy and protocol not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise ValueError(f"unsupported protocol; expected HTTP/1.1 or HTTP/1.0: {_shown(line)}")
        if not proxy and protocol != b"HTTP/1.1":
            raise ValueError(f"unsupported protocol; expected HTTP/1.1: {_shown(line)}")
        if not _DIGITS.fullmatch(raw_code):
            raise ValueError(f"invalid status code; expected integer; got {_shown(raw_code)}")
        status_code = int(raw_code)
        if not 100 <= status_code <= 599:
            raise ValueError(f"invalid status code; expected 100–599; got {_shown(raw_code)}")
        if not _FIELD_VALUE.fullmatch(raw_reason):
            raise ValueError(f"invalid HTTP reason phrase: {_shown(raw_reason)}")
        reason = raw_reason.decode("iso-8859-1")
        headers = yield from parse_headers(read_line)
        body: Union[bytes, bytearray] = b""
        if not proxy:
            body = yield from read_body(status_code, headers, read_line, read_exact, read_to_eof)
        return cls(status_code, reason, headers, body)

    def serialize(self) -> bytes:
        """Return the response (status line, headers, body) as bytes."""
        head = f"HTTP/1.1 {self.status_code} {self.reason_phrase}\r\n".encode("iso-8859-1")
        return head + self.headers.serialize() + bytes(self.body)


def parse_line(
    read_line: ReadLine, too_long_exc_type: Type[Exception] = SecurityError
) -> Generator[None, None, Union[bytes, bytearray]]:
    """Read one CRLF-terminated line (at most ``MAX_LINE_LENGTH``) and strip the CRLF.

    Raises:
        EOFError: the line does not end with CRLF.
    """
    line = yield from read_line(MAX_LINE_LENGTH, too_long_exc_type)
    if line[-2:] != b"\r\n":
        raise EOFError("line without CRLF")
    return line[:-2]


def parse_headers(read_line: ReadLine) -> Generator[None, None, Headers]:
    """Read header lines up to the empty line (no obsolete line folding).

    Raises:
        EOFError, HeaderLineTooLong, TooManyHeaders, ValueError.
    """
    headers = Headers()
    for _ in range(MAX_NUM_HEADERS + 1):
        try:
            line = yield from parse_line(read_line, HeaderLineTooLong)
        except EOFError as exc:
            raise EOFError("connection closed while reading HTTP headers") from exc
        if not line:
            return headers
        name, colon, value = bytes(line).partition(b":")
        if not colon:
            raise ValueError(f"invalid HTTP header line: {_shown(line)}")
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid HTTP header name: {_shown(name)}")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise ValueError(f"invalid HTTP header value: {_shown(value)}")
        headers.set_insecure(name.decode("ascii"), value.decode("iso-8859-1"))
    raise TooManyHeaders(f"expected no more than {MAX_NUM_HEADERS} headers")


def read_body(
    status_code: int,
    headers: Headers,
    read_line: ReadLine,
    read_exact: ReadExact,
    read_to_eof: ReadLine,
) -> Generator[None, None, Union[bytes, bytearray]]:
    """Read a response body: chunked, by Content-Length, or to EOF (at most MAX_BODY_SIZE).

    Raises:
        SecurityError: the body or a chunk is too large, or a size is malformed.
        NotImplementedError: a transfer coding other than chunked.
    """
    if status_code < 200 or status_code in (204, 304):
        return b""
    coding = headers.get("Transfer-Encoding")
    if coding is not None:
        if coding != "chunked":
            raise NotImplementedError(f"transfer coding {coding} isn't supported")
        body = b""
        while True:
            size_line = yield from parse_line(read_line, SecurityError)
            raw_size = bytes(size_line).split(b";", 1)[0]
            if not _HEX_DIGITS.fullmatch(raw_size):
                raise SecurityError(f"invalid chunk size: {_shown(raw_size)}")
            size = int(raw_size, 16)
            if size == 0:
                break
            if len(body) + size > MAX_BODY_SIZE:
                raise SecurityError(f"chunk too large: {size} bytes after {len(body)} bytes")
            body += yield from read_exact(size)
            if (yield from read_exact(2)) != b"\r\n":
                raise ValueError("chunk without CRLF")
        yield from parse_headers(read_line)  # trailer
        return body
    raw_length = headers.get("Content-Length")
    if raw_length is not None:
        if not _DIGITS.fullmatch(raw_length.encode("iso-8859-1")):
            raise SecurityError(f"invalid content length: {raw_length}")
        length = int(raw_length)
        if length > MAX_BODY_SIZE:
            raise SecurityError(f"body too large: {length} bytes")
        return (yield from read_exact(length))
    return (yield from read_to_eof(MAX_BODY_SIZE, SecurityError))
