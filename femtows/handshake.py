"""The WebSocket opening handshake (RFC 6455 §4): HTTP/1.1 upgrade, client and server side.

Everything here is a pure function of its inputs: no sockets, no event loop. The core reads bytes
until the end of the HTTP head (enforcing :data:`MAX_HEAD_SIZE` itself) and hands the head to
:func:`parse_request` / :func:`parse_response`; it writes what :func:`build_request`,
:func:`build_101_response` and :func:`build_error_response` return.

Client side::

    key = generate_key()
    request, wire = build_request(parsed_url, key, extra_headers)
    ...send wire, read the head...
    response = parse_response(head)            # WSInvalidMessageError
    validate_response(response, key, head)     # WSInvalidStatusError / WSInvalidHeaderError

Server side::

    request = parse_request(head)              # HandshakeRejection (400 / 431 / 505)
    ...the user's factory sees ``request``...
    key = validate_request(request)            # HandshakeRejection (400 / 405 / 426)
    response, wire = build_101_response(key, user_headers)

Parsing is strict on purpose (a lenient HTTP parser in front of another one is how request
smuggling happens): CRLF line endings only, header names must be tokens, no obs-fold, no bytes
that HTTP forbids in field values, bounded size and header count.

Header values are decoded from UTF-8 with ``surrogateescape`` and encoded back the same way, so a
value survives a parse / serialise round trip byte for byte whatever its encoding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections import abc
from http import HTTPStatus
from typing import (
    TYPE_CHECKING,
    Any,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
)

from multidict import CIMultiDict

from .errors import (
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
)

if TYPE_CHECKING:
    from .url import WSParsedURL

__all__ = [
    "DeflateNegotiationError",
    "MAX_HEADERS",
    "PERMESSAGE_DEFLATE",
    "WSDeflateConfig",
    "WSDeflateParams",
    "deflate_offer",
    "negotiate_deflate_for_101",
    "negotiate_deflate_from_response",
    "negotiate_deflate_offer",
    "negotiate_deflate_request",
    "negotiate_deflate_response",
    "parse_extensions",
    "MAX_HEAD_SIZE",
    "WS_GUID",
    "HandshakeRejection",
    "WSHeadersLike",
    "WSUpgradeRequest",
    "WSUpgradeResponse",
    "WSUpgradeResponseWithListener",
    "build_101_response",
    "build_error_response",
    "build_request",
    "compute_accept",
    "generate_key",
    "parse_request",
    "parse_response",
    "validate_request",
    "validate_response",
]


def _limit_from_env(name: str, default: int) -> int:
    """Read a positive integer limit from the environment, falling back to ``default``."""
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {text!r}")
    return value


#: Largest HTTP head (request or status line plus headers plus the blank line) accepted, in bytes.
#: 16 KiB holds any real browser handshake with its cookies (Node.js uses the same default and
#: nginx allows 4 x 8 KiB lines), while bounding what a peer can make us buffer before it has
#: proved to speak WebSocket. Override with the FEMTOWS_MAX_HEAD_SIZE environment variable.
MAX_HEAD_SIZE: int = _limit_from_env("FEMTOWS_MAX_HEAD_SIZE", 16 * 1024)

#: Largest number of header lines accepted in a request or response. Each header costs a Python
#: object, so this bounds CPU and memory per handshake independently of their size; browsers send
#: about 15. Override with the FEMTOWS_MAX_HEADERS environment variable.
MAX_HEADERS: int = _limit_from_env("FEMTOWS_MAX_HEADERS", 128)

#: The GUID appended to Sec-WebSocket-Key before hashing (RFC 6455 §1.3).
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Headers accepted wherever femtows takes extra headers: a mapping (including a CIMultiDict,
#: whose repeated keys are all kept) or an iterable of ``(name, value)`` pairs.
WSHeadersLike = Union[Mapping[str, str], Iterable[Tuple[str, str]]]

_TEXT_PLAIN = "text/plain; charset=utf-8"

# RFC 9110 §5.6.2 token.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
_TOKEN_STR_RE = re.compile(_TOKEN.decode("ascii"))
# "Name:" then the rest of the line; the value is checked separately.
_HEADER_LINE_RE = re.compile(rb"(" + _TOKEN + rb"):(.*)", re.DOTALL)
# RFC 9110 §5.5 field-value: visible characters, SP, HTAB and obs-text. No other control byte.
_FIELD_VALUE_RE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
# Every header line of a head at once (joined by CRLF): "Name:value" lines only, in one regex
# pass. A head that does not match is parsed line by line to say what is wrong with it.
_HEADER_LINE_STRICT = _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*"
_HEADER_BLOCK_RE = re.compile(_HEADER_LINE_STRICT + rb"(?:\r\n" + _HEADER_LINE_STRICT + rb")*")
# RFC 9112 §4. The reason phrase is optional and may be anything printable (even "null").
_STATUS_LINE_RE = re.compile(rb"HTTP/1\.1 ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
# A reason phrase we send, as str: the same characters, obs-text being sent as Latin-1.
_REASON_RE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# RFC 9112 §3: method SP request-target SP HTTP-version, single spaces only.
_REQUEST_LINE_RE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) (HTTP/([0-9])\.([0-9]))")
_HTTP_VERSION_RE = re.compile(rb"HTTP/[0-9]\.[0-9]")
# Characters never allowed in a header value we send: every control but HTAB (CR and LF would
# let a value inject headers or a whole response).
_BAD_VALUE_CHARS_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


# ---------------------------------------------------------------------------------------------
# Public types


class WSUpgradeRequest:
    """An HTTP upgrade request: the one a client sent, or the one a server received.

    ``method``, ``path`` and ``version`` are bytes exactly as on the wire (as in picows); header
    names and values are str.

    Args:
        method: Request method, e.g. ``b"GET"``.
        path: Request target, e.g. ``b"/chat?room=1"``.
        version: HTTP version, ``b"HTTP/1.1"``.
        headers: Request headers; a new empty CIMultiDict when omitted.

    Attributes:
        method: See Args.
        path: See Args.
        version: See Args.
        headers: See Args.
    """

    __slots__ = ("method", "path", "version", "headers")

    method: bytes
    path: bytes
    version: bytes
    headers: CIMultiDict[str]

    def __init__(
        self,
        method: bytes = b"GET",
        path: bytes = b"/",
        version: bytes = b"HTTP/1.1",
        headers: Optional[CIMultiDict[str]] = None,
    ) -> None:
        self.method = method
        self.path = path
        self.version = version
        self.headers = CIMultiDict() if headers is None else headers

    def __repr__(self) -> str:
        return (
            f"WSUpgradeRequest(method={self.method!r}, path={self.path!r}, "
            f"version={self.version!r}, headers={list(self.headers.items())!r})"
        )


class WSUpgradeResponse:
    """An HTTP response to an upgrade request: received by a client, or sent by a server.

    A server's listener factory may return one (see the ``create_*`` constructors) to answer with
    something other than the default 101, e.g. a health-check page or a redirect.

    Args:
        version: HTTP version, ``b"HTTP/1.1"``.
        status: Status code. An ``http.HTTPStatus`` whenever the code is one the standard library
            knows; a plain int otherwise (e.g. 522 from a CDN), so that such responses are still
            reported as a status error rather than as a malformed message.
        headers: Response headers; a new empty CIMultiDict when omitted.
        body: Response body, or None for no body.
        reason: The reason phrase of the status line (keyword only; a femtows addition, picows
            has none). None, the default, sends the standard phrase of ``status`` (none for a
            code ``http.HTTPStatus`` does not know). Any text of tabs, spaces, visible ASCII and
            U+0080-U+00FF (sent as Latin-1), as RFC 9112 §4 allows; may be empty. On a
            response a client received, the phrase the server sent.

    Attributes:
        version: See Args.
        status: See Args.
        headers: See Args.
        body: See Args.
        reason: See Args. Checked again when the response is serialised, so a value assigned
            later cannot inject a header either.

    Raises:
        TypeError: ``reason`` is not a str or None.
        ValueError: ``reason`` contains CR, LF, another control character, or a character above
            U+00FF.
    """

    __slots__ = ("version", "status", "headers", "body", "reason")

    version: bytes
    status: Union[HTTPStatus, int]
    headers: CIMultiDict[str]
    body: Optional[bytes]
    reason: Optional[str]

    def __init__(
        self,
        version: bytes = b"HTTP/1.1",
        status: Union[HTTPStatus, int] = HTTPStatus.OK,
        headers: Optional[CIMultiDict[str]] = None,
        body: Optional[bytes] = None,
        *,
        reason: Optional[str] = None,
    ) -> None:
        self.version = version
        self.status = _to_status(status)
        self.headers = CIMultiDict() if headers is None else headers
        self.body = body
        self.reason = _check_reason(reason)

    def __repr__(self) -> str:
        reason = "" if self.reason is None else f", reason={self.reason!r}"
        return (
            f"WSUpgradeResponse(version={self.version!r}, status={int(self.status)}, "
            f"headers={list(self.headers.items())!r}, body={self.body!r}{reason})"
        )

    @staticmethod
    def create_ok_response(
        body: Optional[bytes] = None, extra_headers: Optional[WSHeadersLike] = None
    ) -> WSUpgradeResponse:
        """Create a 200 OK response, e.g. for a health check served on the WebSocket port.

        Args:
            body: Response body. When given and ``extra_headers`` has no Content-Type, the
                Content-Type is ``text/plain; charset=utf-8``.
            extra_headers: Headers to send.

        Returns:
            A new response.

        Raises:
            TypeError: A header name or value is not a str.
            ValueError: A header name is not a token or a value has control characters.
        """
        return _new_response(HTTPStatus.OK, body, extra_headers)

    @staticmethod
    def create_error_response(
        status: Union[int, HTTPStatus],
        body: Optional[bytes] = None,
        extra_headers: Optional[WSHeadersLike] = None,
    ) -> WSUpgradeResponse:
        """Create an error response to refuse the upgrade (401, 403, 404, 503, ...).

        Args:
            status: A 4xx or 5xx status.
            body: Response body; Content-Type defaults as in :meth:`create_ok_response`.
            extra_headers: Headers to send (e.g. ``WWW-Authenticate`` or ``Retry-After``).

        Returns:
            A new response.

        Raises:
            ValueError: ``status`` is not between 400 and 599, or a header is invalid.
            TypeError: A header name or value is not a str.
        """
        if not 400 <= int(status) <= 599:
            raise ValueError(f"error response status must be 4xx or 5xx, got {int(status)}")
        return _new_response(status, body, extra_headers)

    @staticmethod
    def create_redirect_response(
        status: Union[int, HTTPStatus],
        location: str,
        extra_headers: Optional[WSHeadersLike] = None,
    ) -> WSUpgradeResponse:
        """Create a redirect; femtows clients follow it (up to ``max_redirects``).

        Args:
            status: A 3xx status (301, 302, 303, 307 or 308 are the ones clients follow).
            location: The target URL, sent as the Location header (replacing any in
                ``extra_headers``).
            extra_headers: Other headers to send.

        Returns:
            A new response.

        Raises:
            ValueError: ``status`` is not 3xx, or a header (``location`` included) is invalid.
            TypeError: A header name or value is not a str.
        """
        if not 300 <= int(status) <= 399:
            raise ValueError(f"redirect response status must be 3xx, got {int(status)}")
        response = _new_response(status, None, extra_headers)
        _check_header("Location", location)
        response.headers["Location"] = location
        return response

    @staticmethod
    def create_101_response(extra_headers: Optional[WSHeadersLike] = None) -> WSUpgradeResponse:
        """Create a 101 Switching Protocols response that accepts the upgrade.

        Useful when the listener factory wants to add headers (``Sec-WebSocket-Protocol``,
        ``Set-Cookie``, ...) to the upgrade. The server adds ``Sec-WebSocket-Accept`` itself when
        it sends the response.

        Args:
            extra_headers: Headers to send. ``Upgrade`` and ``Connection`` are femtows's and
                cannot be overridden.

        Returns:
            A new response.

        Raises:
            TypeError: A header name or value is not a str.
            ValueError: A header name is not a token or a value has control characters.
        """
        headers: CIMultiDict[str] = CIMultiDict()
        headers["Upgrade"] = "websocket"
        headers["Connection"] = "Upgrade"
        for name, value in _header_items(extra_headers):
            if name.lower() not in ("upgrade", "connection"):
                headers.add(name, value)
        return WSUpgradeResponse(b"HTTP/1.1", HTTPStatus.SWITCHING_PROTOCOLS, headers, None)

    def to_bytes(self) -> bytes:
        """Serialise the response for the wire.

        When ``body`` is not None, a Content-Length matching it replaces any given one, and
        Content-Type ``text/plain; charset=utf-8`` is added if there is none. The object itself is
        not modified.

        Returns:
            Status line, headers, blank line and body.

        Raises:
            ValueError: The version is not ``HTTP/x.y``, a header name is not a token, a header
                value or the reason phrase contains CR, LF or another control character (header
                injection).
        """
        headers: List[Tuple[str, str]] = list(self.headers.items())
        if self.body is not None:
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            if not any(k.lower() == "content-type" for k, _ in headers):
                headers.append(("Content-Type", _TEXT_PLAIN))
            headers.append(("Content-Length", str(len(self.body))))
        return _serialize_response(self.version, self.status, headers, self.body, self.reason)


class WSUpgradeResponseWithListener:
    """What a server's listener factory may return: a response together with its listener.

    Args:
        response: The response to send.
        listener: The listener for the connection; required for a 101 response, and must be None
            for an error (status >= 400) response, which closes the connection.

    Attributes:
        response: See Args.
        listener: See Args.

    Raises:
        ValueError: The listener does not fit the status.
    """

    __slots__ = ("response", "listener")

    response: WSUpgradeResponse
    listener: Any

    def __init__(self, response: WSUpgradeResponse, listener: Optional[Any]) -> None:
        if response.status == HTTPStatus.SWITCHING_PROTOCOLS and listener is None:
            raise ValueError("a 101 Switching Protocols response needs a listener")
        if response.status >= 400 and listener is not None:
            raise ValueError("an error response (status >= 400) must not have a listener")
        self.response = response
        self.listener = listener

    def __repr__(self) -> str:
        return f"WSUpgradeResponseWithListener({self.response!r}, {self.listener!r})"


class HandshakeRejection(Exception):
    """The server refuses a handshake with an HTTP error status (internal to femtows).

    ``reason`` is a short fixed text chosen by femtows, safe to send to the peer as the body: it
    never contains an exception's text or anything the peer sent.

    Args:
        status: The status to answer with.
        reason: Short description of the problem; also ``str(exc)``.
        headers: Headers the error response must carry (e.g. ``Allow`` for a 405).

    Attributes:
        status: See Args.
        reason: See Args.
        headers: The headers, as a list of ``(name, value)`` pairs.
    """

    status: HTTPStatus
    reason: str
    headers: List[Tuple[str, str]]

    def __init__(
        self, status: HTTPStatus, reason: str, headers: Optional[WSHeadersLike] = None
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = _header_items(headers)

    def __str__(self) -> str:
        return self.reason

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.status, self.reason, self.headers))


# ---------------------------------------------------------------------------------------------
# Keys


def generate_key() -> str:
    """Return a fresh Sec-WebSocket-Key: base64 of 16 random bytes from the OS CSPRNG."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def compute_accept(key: str) -> str:
    """Return the Sec-WebSocket-Accept value for ``key``: base64(SHA-1(key + GUID)).

    SHA-1 is used as RFC 6455 requires, as a checksum rather than for security; it is flagged
    so, which keeps it working on FIPS-restricted systems.
    """
    digest = hashlib.sha1((key + WS_GUID).encode("ascii"), usedforsecurity=False).digest()
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


# ---------------------------------------------------------------------------------------------
# Client side


def build_request(
    url: WSParsedURL, key: str, extra_headers: Optional[WSHeadersLike] = None
) -> Tuple[WSUpgradeRequest, bytes]:
    """Build the client's upgrade request.

    Headers, in order: Host, Upgrade, Connection, Sec-WebSocket-Key, Sec-WebSocket-Version, then
    ``extra_headers``. A Host in ``extra_headers`` replaces the generated one (useful to connect
    to an address while naming a virtual host); other extra headers are appended, repeats kept.

    Args:
        url: The parsed WebSocket URL.
        key: The Sec-WebSocket-Key (see :func:`generate_key`).
        extra_headers: Additional headers.

    Returns:
        The request (its headers are exactly the ones sent) and its wire bytes.

    Raises:
        TypeError: A header name or value is not a str.
        ValueError: A header name is not a token, a header value contains CR, LF or another
            control character, or the URL's resource name cannot go into a request line.
    """
    target = url.resource_name
    if not target or not target.isascii() or re.search(r"[\x00-\x20\x7f]", target):
        raise ValueError(f"invalid request target {target!r}")

    headers: CIMultiDict[str] = CIMultiDict()
    headers["Host"] = url.host_header
    headers["Upgrade"] = "websocket"
    headers["Connection"] = "Upgrade"
    headers["Sec-WebSocket-Key"] = key
    headers["Sec-WebSocket-Version"] = "13"
    host_replaced = False
    for name, value in _header_items(extra_headers):
        if name.lower() == "host" and not host_replaced:
            headers["Host"] = value  # replaces in place, keeping the first position
            host_replaced = True
        else:
            headers.add(name, value)

    path = target.encode("ascii")
    lines = [b"GET " + path + b" HTTP/1.1"]
    lines.extend(_encode_header(k, v) for k, v in headers.items())
    wire = b"\r\n".join(lines) + b"\r\n\r\n"
    return WSUpgradeRequest(b"GET", path, b"HTTP/1.1", headers), wire


def parse_response(head: bytes) -> WSUpgradeResponse:
    """Parse the head of the server's answer to the upgrade request.

    Args:
        head: The bytes up to and including the blank line (``b"\\r\\n\\r\\n"``).

    Returns:
        The response, with ``body`` None (bytes after the head are the caller's). A status that
        ``http.HTTPStatus`` does not know (100-599) is kept as a plain int. ``reason`` is the
        phrase as received (decoded as Latin-1), None when the status line has none.

    Raises:
        WSInvalidMessageError: The head is too large, does not end with a blank line, or its status
            line, a header line or the number of headers is invalid. ``raw_header`` is ``head``.
    """
    # Messages start with picows's words where picows fails the same response (see errors.py).
    head = bytes(head)
    if len(head) > MAX_HEAD_SIZE:
        raise WSInvalidMessageError(
            f"upgrade response headers exceed max_size threshold: {MAX_HEAD_SIZE} "
            f"(response head exceeds {MAX_HEAD_SIZE} bytes)",
            raw_header=head,
        )
    if not head.endswith(b"\r\n\r\n"):
        raise WSInvalidMessageError("response head is not terminated by CRLF CRLF", raw_header=head)
    status_line, crlf, header_block = head[:-4].partition(b"\r\n")
    match = _STATUS_LINE_RE.fullmatch(status_line)
    if match is None:
        if not status_line.lower().startswith(b"http/1.1 "):
            raise WSInvalidMessageError(
                "cannot upgrade, unknown protocol (expected HTTP/1.1) in upgrade response: "
                f"invalid status line {_show(status_line)}",
                raw_header=head,
            )
        raise WSInvalidMessageError(
            "cannot upgrade, invalid HTTP status line in upgrade response: "
            f"invalid status line {_show(status_line)}",
            raw_header=head,
        )
    code = int(match.group(1))
    if code < 100 or code > 599:
        raise WSInvalidMessageError(
            "cannot upgrade, invalid HTTP status line in upgrade response: "
            f"invalid status code {code}",
            raw_header=head,
        )
    try:
        headers = _parse_header_block(header_block if crlf else None)
    except _MalformedHead as exc:
        if exc.too_many:
            message = f"upgrade response contains more than {MAX_HEADERS} headers"
        else:
            message = f"cannot upgrade, malformed header in upgrade response: {exc.message}"
        raise WSInvalidMessageError(message, raw_header=head) from None
    phrase = match.group(2)
    reason = None if phrase is None else phrase.decode("latin-1")
    return WSUpgradeResponse(b"HTTP/1.1", code, headers, None, reason=reason)


def validate_response(
    response: WSUpgradeResponse, key: str, raw_header: bytes, raw_body: Optional[bytes] = None
) -> None:
    """Check that the server accepted the upgrade requested with ``key`` (RFC 6455 §4.1).

    Args:
        response: The parsed response.
        key: The Sec-WebSocket-Key the request carried.
        raw_header: The response head, attached to any exception.
        raw_body: Bytes received after the head, attached to any exception.

    Raises:
        WSInvalidStatusError: The status is not 101.
        WSInvalidUpgradeError: Upgrade is not ``websocket``, or Connection lacks ``upgrade``.
        WSInvalidHeaderError: Transfer-Encoding is present, Content-Length is not 0, or
            Sec-WebSocket-Accept is missing or wrong.
    """
    headers = response.headers
    # Every exception carries what was received, for the application to log or inspect.
    extra = (raw_header, raw_body, response)

    status = response.status
    if status != HTTPStatus.SWITCHING_PROTOCOLS:
        raise WSInvalidStatusError(
            "expected upgrade response with status 101 Switching Protocols, but received "
            f"{_status_text(status)}",
            *extra,
        )

    upgrade = _joined(headers, "Upgrade")
    if upgrade is None:
        raise WSInvalidUpgradeError(
            "cannot upgrade, invalid upgrade header: missing Upgrade header",
            "Upgrade",
            None,
            *extra,
        )
    if upgrade.lower() != "websocket":
        raise WSInvalidUpgradeError(
            f"cannot upgrade, invalid upgrade header: {upgrade!r}, expected 'websocket'",
            "Upgrade",
            upgrade,
            *extra,
        )

    connection = _joined(headers, "Connection")
    if connection is None:
        raise WSInvalidUpgradeError(
            "cannot upgrade, invalid connection header: missing Connection header",
            "Connection",
            None,
            *extra,
        )
    if "upgrade" not in _tokens(headers.getall("Connection")):
        raise WSInvalidUpgradeError(
            f"cannot upgrade, invalid connection header: {connection!r}, expected 'upgrade'",
            "Connection",
            connection,
            *extra,
        )

    transfer_encoding = _joined(headers, "Transfer-Encoding")
    if transfer_encoding is not None:
        raise WSInvalidHeaderError(
            f"101 response cannot have Transfer-Encoding but it has: {transfer_encoding!r}",
            "Transfer-Encoding",
            transfer_encoding,
            *extra,
        )
    content_length = _joined(headers, "Content-Length")
    if content_length is not None and content_length != "0":
        what = (
            "101 response has non-zero Content-Length, but it can't have body"
            if content_length.isdigit()
            else "101 response has invalid Content-Length header"
        )
        raise WSInvalidHeaderError(
            f"{what}: {content_length!r}",
            "Content-Length",
            content_length,
            *extra,
        )

    accept = _joined(headers, "Sec-WebSocket-Accept")
    if accept is None:
        raise WSInvalidHeaderError(
            "cannot upgrade, invalid sec-websocket-accept response: "
            "missing Sec-WebSocket-Accept header",
            "Sec-WebSocket-Accept",
            None,
            *extra,
        )
    if accept != compute_accept(key):
        raise WSInvalidHeaderError(
            f"cannot upgrade, invalid sec-websocket-accept response: {accept!r}",
            "Sec-WebSocket-Accept",
            accept,
            *extra,
        )


# ---------------------------------------------------------------------------------------------
# Server side


def parse_request(head: bytes) -> WSUpgradeRequest:
    """Parse the head of an HTTP request received by the server.

    Only HTTP framing is checked here; WebSocket-specific headers (and the method) are checked by
    :func:`validate_request`, so that a listener factory can still serve plain HTTP requests.

    Args:
        head: The bytes up to and including the blank line (``b"\\r\\n\\r\\n"``).

    Returns:
        The request.

    Raises:
        HandshakeRejection: 431 when the head exceeds :data:`MAX_HEAD_SIZE` or has more than
            :data:`MAX_HEADERS` headers; 505 for an HTTP major version other than 1; 400 for
            a malformed request line or header line, any Transfer-Encoding, or a
            Content-Length that is repeated or not 0. (HTTP/1.0 is parsed; validate_request
            refuses it.)
    """
    head = bytes(head)
    if len(head) > MAX_HEAD_SIZE:
        raise HandshakeRejection(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request header too large"
        )
    if not head.endswith(b"\r\n\r\n"):
        raise HandshakeRejection(HTTPStatus.BAD_REQUEST, "Malformed request head")
    request_line, crlf, header_block = head[:-4].partition(b"\r\n")
    match = _REQUEST_LINE_RE.fullmatch(request_line)
    if match is None:
        raise HandshakeRejection(HTTPStatus.BAD_REQUEST, "Malformed request line")
    method, target, version = match.group(1, 2, 3)
    if match.group(4) != b"1":
        raise HandshakeRejection(
            HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP version not supported"
        )
    # HTTP/1.0 (minor 0) is parsed: the listener factory may answer it with plain HTTP;
    # validate_request refuses it for an upgrade.
    try:
        headers = _parse_header_block(header_block if crlf else None)
    except _MalformedHead as exc:
        if exc.too_many:
            raise HandshakeRejection(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many request headers"
            ) from None
        raise HandshakeRejection(HTTPStatus.BAD_REQUEST, "Malformed request header") from None

    # A GET carrying a body could hide a second request from an intermediary (smuggling).
    if "Transfer-Encoding" in headers:
        raise HandshakeRejection(HTTPStatus.BAD_REQUEST, "Transfer-Encoding is not allowed")
    content_length = headers.getall("Content-Length", [])
    if len(content_length) > 1 or (content_length and content_length[0] != "0"):
        raise HandshakeRejection(HTTPStatus.BAD_REQUEST, "Request body is not allowed")

    return WSUpgradeRequest(method, target, version, headers)


def validate_request(request: WSUpgradeRequest) -> str:
    """Check that ``request`` is a valid WebSocket upgrade request (RFC 6455 §4.2.1).

    ``Connection`` and ``Upgrade`` are parsed as token lists, so ``Connection: keep-alive,
    Upgrade`` (as Firefox sends) is accepted.

    Args:
        request: The parsed request.

    Returns:
        The Sec-WebSocket-Key, for :func:`build_101_response`.

    Raises:
        HandshakeRejection: 405 (with ``Allow: GET``) for a method other than GET; 400 for
            HTTP/1.0 (WebSocket needs HTTP/1.1); 426 (with
            ``Upgrade: websocket``) when there is no Upgrade header at all; 426 (with
            ``Sec-WebSocket-Version: 13``) for a version other than 13; 400 when Host is missing
            or repeated, Upgrade lacks ``websocket``, Connection lacks ``upgrade``,
            Sec-WebSocket-Version is missing or repeated, or Sec-WebSocket-Key is missing,
            repeated or not base64 of 16 bytes.
    """
    headers = request.headers
    if request.method != b"GET":
        raise HandshakeRejection(
            HTTPStatus.METHOD_NOT_ALLOWED, "WebSocket upgrade requires GET", [("Allow", "GET")]
        )
    if request.version == b"HTTP/1.0":
        # RFC 9112 §2.5 makes a later 1.x minor version compatible with 1.1; HTTP/1.0 has no
        # Upgrade mechanism at all.
        raise HandshakeRejection(HTTPStatus.BAD_REQUEST, "WebSocket requires HTTP/1.1")

    if len(headers.getall("Host", [])) != 1:
        raise HandshakeRejection(HTTPStatus.BAD_REQUEST, "Missing or repeated Host header")

    upgrade = headers.getall("Upgrade", [])
    if not upgrade:
        # RFC 9110 §15.5.22: a 426 must say which protocol to upgrade to.
        raise HandshakeRejection(
            HTTPStatus.UPGRADE_REQUIRED, "WebSocket upgrade required", [("Upgrade", "websocket")]
        )
    # (The usual single values are recognised without splitting them into token lists.)
    if (len(upgrade) != 1 or upgrade[0] not in _UPGRADE_WEBSOCKET) and "websocket" not in _tokens(
        upgrade
    ):
        raise HandshakeRejection(HTTPStatus.BAD_REQUEST, "Upgrade header must include websocket")

    connection = headers.getall("Connection", [])
    if (
        len(connection) != 1 or connection[0] not in _CONNECTION_UPGRADE
    ) and "upgrade" not in _tokens(connection):
        raise HandshakeRejection(HTTPStatus.BAD_REQUEST, "Connection header must include upgrade")

    versions = headers.getall("Sec-WebSocket-Version", [])
    if len(versions) != 1:
        # RFC 6455 §11.3.5: the header must appear exactly once in a request.
        raise HandshakeRejection(
            HTTPStatus.BAD_REQUEST, "Missing or repeated Sec-WebSocket-Version header"
        )
    if versions[0] != "13":
        # RFC 6455 §4.2.2: tell the client which version we speak.
        raise HandshakeRejection(
            HTTPStatus.UPGRADE_REQUIRED,
            "Unsupported WebSocket version",
            [("Sec-WebSocket-Version", "13")],
        )

    keys = headers.getall("Sec-WebSocket-Key", [])
    if len(keys) != 1:
        raise HandshakeRejection(
            HTTPStatus.BAD_REQUEST, "Missing or repeated Sec-WebSocket-Key header"
        )
    key = keys[0]
    try:
        raw_key = base64.b64decode(key.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raw_key = b""
    if len(raw_key) != 16:
        raise HandshakeRejection(HTTPStatus.BAD_REQUEST, "Invalid Sec-WebSocket-Key header")
    return key


_UPGRADE_WEBSOCKET = frozenset({"websocket", "WebSocket"})
_CONNECTION_UPGRADE = frozenset({"Upgrade", "upgrade", "keep-alive, Upgrade"})


def build_101_response(
    key: str,
    extra_headers: Union[WSHeadersLike, CIMultiDict[str], None] = None,
    reason: Optional[str] = None,
) -> Tuple[WSUpgradeResponse, bytes]:
    """Build the server's 101 Switching Protocols response accepting the upgrade.

    Headers, in order: Upgrade, Connection, Sec-WebSocket-Accept, then ``extra_headers``. The
    extra headers cannot replace those three, and Content-Length / Transfer-Encoding (which a
    101 must not carry, RFC 9110 §8.6 and §6.1) are dropped from them: both sides being
    femtows's business, such values are ignored rather than sent.

    Args:
        key: The client's Sec-WebSocket-Key (validated by :func:`validate_request`).
        extra_headers: Additional headers, e.g. the headers of a response made with
            :meth:`WSUpgradeResponse.create_101_response`.
        reason: A reason phrase other than "Switching Protocols" (see
            :attr:`WSUpgradeResponse.reason`); None for the standard one.

    Returns:
        The response (its headers are exactly the ones sent) and its wire bytes.

    Raises:
        TypeError: A header name or value is not a str.
        ValueError: A header name is not a token, or a value or ``reason`` has control
            characters.
    """
    accept = compute_accept(key)
    # The status line and the three fixed headers are constants (plus base64): no checks.
    head = _101_HEAD + accept.encode("ascii")
    if reason is not None:
        _check_reason(reason)
        head = b"HTTP/1.1 101 " + reason.encode("latin-1") + head[len(_101_STATUS_LINE):]
        extra_headers = [] if extra_headers is None else extra_headers
    if extra_headers is None:
        # The usual case: the response's headers are built only if someone reads them (a
        # CIMultiDict kept by every connection costs ~0.5 KiB).
        return _Default101Response(key), head + b"\r\n\r\n"
    headers = _headers_101(accept)
    lines = [head]
    for name, value in _header_items(extra_headers):  # checked here
        if name.lower() not in _RESERVED_101_HEADERS:
            headers.add(name, value)
            lines.append(name.encode("ascii") + b": " + value.encode("utf-8", "surrogateescape"))
    response = WSUpgradeResponse(
        b"HTTP/1.1", HTTPStatus.SWITCHING_PROTOCOLS, headers, None, reason=reason
    )
    return response, b"\r\n".join(lines) + b"\r\n\r\n"


def _headers_101(accept: str) -> CIMultiDict[str]:
    return CIMultiDict(
        (("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept))
    )


_response_headers_slot = WSUpgradeResponse.__dict__["headers"]


class _Default101Response(WSUpgradeResponse):
    """The 101 a server sent without extra headers: a WSUpgradeResponse whose ``headers`` are
    built from the client's key when first read (then kept, and mutable, as usual)."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self.version = b"HTTP/1.1"
        self.status = HTTPStatus.SWITCHING_PROTOCOLS
        self.body = None
        self.reason = None
        self._key = key

    @property
    def headers(self) -> CIMultiDict[str]:
        try:
            return _response_headers_slot.__get__(self)  # type: ignore[no-any-return]
        except AttributeError:
            headers = _headers_101(compute_accept(self._key))
            _response_headers_slot.__set__(self, headers)
            return headers

    @headers.setter
    def headers(self, value: CIMultiDict[str]) -> None:
        _response_headers_slot.__set__(self, value)


_101_STATUS_LINE = b"HTTP/1.1 101 Switching Protocols"
_101_HEAD = (
    _101_STATUS_LINE + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: "
)


_RESERVED_101_HEADERS = frozenset(
    {"upgrade", "connection", "sec-websocket-accept", "content-length", "transfer-encoding"}
)


def build_error_response(
    status: Union[HTTPStatus, int],
    body: Optional[bytes] = None,
    headers: Optional[WSHeadersLike] = None,
) -> bytes:
    """Build a complete response that refuses the upgrade and precedes closing the connection.

    Used for the server's own refusals (400, 404, 405, 426, 431, 500, 505) and for any response
    other than 101 that a listener factory returns. The output always has
    ``Content-Type`` (``text/plain; charset=utf-8`` unless ``headers`` sets one),
    ``Content-Length`` and ``Connection: close``; Connection, Content-Length and
    Transfer-Encoding in ``headers`` are replaced.

    Args:
        status: The status.
        body: The body; None sends an empty one.
        headers: Additional headers, e.g. ``HandshakeRejection.headers``.

    Returns:
        The wire bytes.

    Raises:
        TypeError: A header name or value is not a str.
        ValueError: A header name is not a token or a value has control characters.
    """
    payload = b"" if body is None else bytes(body)
    items = [
        (k, v)
        for k, v in _header_items(headers)
        if k.lower() not in ("connection", "content-length", "transfer-encoding")
    ]
    if not any(k.lower() == "content-type" for k, _ in items):
        items.append(("Content-Type", _TEXT_PLAIN))
    items.append(("Content-Length", str(len(payload))))
    items.append(("Connection", "close"))
    return _serialize_response(b"HTTP/1.1", _to_status(status), items, payload)


# ---------------------------------------------------------------------------------------------
# Private helpers


class _MalformedHead(Exception):
    """A header block failed to parse; converted by each caller into its own error type."""

    def __init__(self, message: str, too_many: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.too_many = too_many


def _parse_header_block(block: Optional[bytes]) -> CIMultiDict[str]:
    """Parse the header lines of a head (between the first line and the blank line, joined by
    CRLF; None when there are none) into a CIMultiDict, strictly."""
    if block is None:
        return CIMultiDict()
    # Names are ASCII and no UTF-8 sequence can span a CRLF, so decoding the block at once
    # gives the same strings as decoding each name and value.
    lines = block.decode("utf-8", "surrogateescape").split("\r\n")
    if len(lines) > MAX_HEADERS:
        raise _MalformedHead(f"more than {MAX_HEADERS} headers", too_many=True)
    if _HEADER_BLOCK_RE.fullmatch(block) is None:
        return _parse_header_lines(block.split(b"\r\n"))  # raises, saying what is wrong
    # Valid as a whole, checked in one regex pass. The usual lines of an upgrade request come
    # from a fixed table, other names are shared when known: no new strings for them (less
    # work, and less memory for every connection's request.headers).
    pairs = []
    for line in lines:
        pair = _COMMON_LINES.get(line)
        if pair is None:
            name, _, value = line.partition(":")
            pair = (_COMMON_NAMES.get(name, name), value.strip(" \t"))
        pairs.append(pair)
    return CIMultiDict(pairs)


# Header names and whole lines that most upgrade requests carry, as ``(name, value)`` pairs
# (a fixed table: nothing a peer sends is added to it).
_COMMON_NAMES = {
    name: name
    for name in (
        "Host",
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Protocol",
        "Origin",
        "User-Agent",
        "Pragma",
        "Cache-Control",
        "Accept-Encoding",
        "Accept-Language",
        "Cookie",
        "Authorization",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Real-IP",
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "origin",
        "user-agent",
    )
}
_COMMON_LINES = {
    f"{name}: {value}": (_COMMON_NAMES[name], value)
    for name, value in (
        ("Upgrade", "websocket"),
        ("Upgrade", "WebSocket"),
        ("upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Connection", "upgrade"),
        ("connection", "upgrade"),
        ("Connection", "keep-alive, Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("sec-websocket-version", "13"),
        ("Pragma", "no-cache"),
        ("Cache-Control", "no-cache"),
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
        ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ("Accept-Encoding", "gzip, deflate, br"),
        ("Accept-Encoding", "gzip, deflate"),
    )
}


def _parse_header_lines(lines: List[bytes]) -> CIMultiDict[str]:
    """Parse header lines (without their CRLF) into a CIMultiDict, strictly, line by line."""
    if len(lines) > MAX_HEADERS:
        raise _MalformedHead(f"more than {MAX_HEADERS} headers", too_many=True)
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise _MalformedHead("obsolete line folding is not allowed")
        match = _HEADER_LINE_RE.fullmatch(line)
        if match is None:
            raise _MalformedHead(f"invalid header line {_show(line)}")
        value = match.group(2).strip(b" \t")
        if _FIELD_VALUE_RE.fullmatch(value) is None:
            raise _MalformedHead(f"invalid header value {_show(line)}")
        headers.add(match.group(1).decode("ascii"), value.decode("utf-8", "surrogateescape"))
    return headers


def _header_items(headers: Union[WSHeadersLike, CIMultiDict[str], None]) -> List[Tuple[str, str]]:
    """Turn any accepted header collection into a checked list of ``(name, value)`` pairs."""
    if headers is None:
        return []
    if isinstance(headers, (str, bytes, bytearray)):
        raise TypeError("headers must be a mapping or an iterable of (name, value) pairs")
    pairs: Iterable[Tuple[str, str]]
    if isinstance(headers, abc.Mapping):
        pairs = headers.items()
    else:
        pairs = headers
    items: List[Tuple[str, str]] = []
    for pair in pairs:
        name, value = pair
        _check_header(name, value)
        items.append((name, value))
    return items


def _check_header(name: object, value: object) -> None:
    """Refuse a header that could not be sent as it is (or would inject others)."""
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError("header names and values must be str")
    if _TOKEN_STR_RE.fullmatch(name) is None:
        raise ValueError(f"invalid header name {name!r}")
    if _BAD_VALUE_CHARS_RE.search(value) is not None:
        raise ValueError(f"invalid character in the value of header {name!r}")


def _check_reason(reason: Optional[str]) -> Optional[str]:
    """Return ``reason`` if it can be sent as a reason phrase (RFC 9112 §4: HTAB, SP, VCHAR,
    obs-text), else raise."""
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise TypeError(f"the reason phrase must be a str or None, not {type(reason).__name__}")
    if _REASON_RE.fullmatch(reason) is None:
        raise ValueError(f"invalid character in the reason phrase {reason!r}")
    return reason


def _encode_header(name: str, value: str) -> bytes:
    _check_header(name, value)
    return name.encode("ascii") + b": " + value.encode("utf-8", "surrogateescape")


def _serialize_response(
    version: bytes,
    status: Union[HTTPStatus, int],
    headers: Iterable[Tuple[str, str]],
    body: Optional[bytes],
    reason: Optional[str] = None,
) -> bytes:
    if _HTTP_VERSION_RE.fullmatch(version) is None:
        raise ValueError(f"invalid HTTP version {version!r}")
    code = int(status)
    if not 100 <= code <= 599:
        raise ValueError(f"invalid status code {code}")
    if reason is None:
        phrase = status.phrase.encode("ascii") if isinstance(status, HTTPStatus) else b""
    else:
        _check_reason(reason)
        phrase = reason.encode("latin-1")
    lines = [b"%s %d %s" % (version, code, phrase)]
    lines.extend(_encode_header(k, v) for k, v in headers)
    wire = b"\r\n".join(lines) + b"\r\n\r\n"
    if body:
        wire += bytes(body)
    return wire


def _new_response(
    status: Union[HTTPStatus, int], body: Optional[bytes], extra_headers: Optional[WSHeadersLike]
) -> WSUpgradeResponse:
    headers: CIMultiDict[str] = CIMultiDict(_header_items(extra_headers))
    if body is not None and "Content-Type" not in headers:
        headers["Content-Type"] = _TEXT_PLAIN
    return WSUpgradeResponse(b"HTTP/1.1", status, headers, body)


def _to_status(code: Union[HTTPStatus, int]) -> Union[HTTPStatus, int]:
    """Return ``code`` as an HTTPStatus when the standard library knows it, else as an int."""
    try:
        return HTTPStatus(code)
    except ValueError:
        return int(code)


def _status_text(status: Union[HTTPStatus, int]) -> str:
    if isinstance(status, HTTPStatus):
        return f"{status.value} {status.phrase}"
    return str(status)


def _joined(headers: CIMultiDict[str], name: str) -> Optional[str]:
    """All values of header ``name`` joined with ", ", or None when it is absent."""
    values = headers.getall(name, [])
    return ", ".join(values) if values else None


def _tokens(values: Iterable[str]) -> List[str]:
    """Lower-cased elements of comma-separated header values (RFC 9110 §5.6.1 lists)."""
    return [
        item.strip(" \t").lower() for value in values for item in value.split(",") if item.strip()
    ]


def _show(line: bytes) -> str:
    """A short, printable rendering of a peer-supplied line for an error message."""
    text = repr(line[:80])
    return text + "..." if len(line) > 80 else text


# ---------------------------------------------------------------------------------------------
# permessage-deflate negotiation (RFC 7692 §7.1)
#
# One implementation for both APIs: the core calls these functions with a WSDeflateConfig, the
# websockets drop-in's extension factories translate their parameters into one and map
# DeflateNegotiationError.kind onto websockets' exception types.

#: The extension token of permessage-deflate.
PERMESSAGE_DEFLATE = "permessage-deflate"

_DEFLATE_PARAMS = (
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
)
# Window sizes a *value* may carry. 8 parses but zlib cannot compress with a 256-byte window
# (madler/zlib#171: it silently uses 9), so whichever side would have to compress with 8 refuses.
_WINDOW_BITS_VALUES = {str(bits): bits for bits in range(8, 16)}

# RFC 6455 §9.1 / RFC 9110 §5.6: extension-list = 1#( token *( ";" token [ "=" value ] ) ).
_OWS = r"[ \t]*"
_EXT_PARAM_RE = re.compile(
    _OWS + r";" + _OWS + r"(" + _TOKEN.decode() + r")(?:" + _OWS + r"=" + _OWS
    + r"(?:(" + _TOKEN.decode() + r')|"((?:[^"\\]|\\.)*)"))?'
)
_EXT_NAME_RE = re.compile(_OWS + r"(" + _TOKEN.decode() + r")")


class DeflateNegotiationError(ValueError):
    """A permessage-deflate offer or answer cannot be accepted.

    Args:
        kind: ``"duplicate"`` (a parameter appears twice), ``"name"`` (unknown parameter),
            ``"value"`` (a parameter has a value it may not have) or ``"negotiation"`` (the
            parameters are valid but incompatible with the configuration or the offer).
        message: Human-readable explanation; also ``str(exc)``.
        name: The parameter concerned, when there is one.
        value: Its value, when there is one.

    Attributes:
        kind: See Args.
        name: See Args.
        value: See Args.
    """

    def __init__(
        self, kind: str, message: str, name: Optional[str] = None, value: Optional[str] = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.value = value


ExtensionParams = List[Tuple[str, Optional[str]]]


def parse_extensions(values: Iterable[str]) -> List[Tuple[str, ExtensionParams]]:
    """Parse ``Sec-WebSocket-Extensions`` header values (RFC 6455 §9.1).

    Args:
        values: Every value of the header (repeated headers form one list).

    Returns:
        ``[(name, [(param, value or None), ...]), ...]`` in order. Quoted values are unquoted;
        names are kept as sent (extension tokens compare case-insensitively, callers lower()).

    Raises:
        ValueError: The header is not a valid extension list.
    """
    result: List[Tuple[str, ExtensionParams]] = []
    for header in values:
        pos = 0
        end = len(header)
        while True:
            # Empty list elements (", ,") are allowed by RFC 9110 §5.6.1.
            while pos < end and header[pos] in " \t,":
                pos += 1
            if pos == end:
                break
            match = _EXT_NAME_RE.match(header, pos)
            if match is None:
                raise ValueError(f"invalid extension list {header!r} at offset {pos}")
            name = match.group(1)
            pos = match.end()
            params: ExtensionParams = []
            while True:
                param = _EXT_PARAM_RE.match(header, pos)
                if param is None:
                    break
                value: Optional[str] = param.group(2)
                quoted = param.group(3)
                if quoted is not None:
                    value = re.sub(r"\\(.)", r"\1", quoted)
                    # RFC 6455 §9.1: a quoted value must be a token once unquoted.
                    if _TOKEN_STR_RE.fullmatch(value) is None:
                        raise ValueError(f"invalid quoted parameter value in {header!r}")
                params.append((param.group(1), value))
                pos = param.end()
            while pos < end and header[pos] in " \t":
                pos += 1
            if pos < end and header[pos] != ",":
                raise ValueError(f"invalid extension list {header!r} at offset {pos}")
            result.append((name, params))
    return result


class WSDeflateConfig:
    """What to offer (client) or accept (server) for permessage-deflate (RFC 7692).

    Pass one as ``compression=`` to ``ws_connect`` / ``ws_create_server``; ``"deflate"`` means
    ``WSDeflateConfig.client()`` or ``WSDeflateConfig.server()``.

    On a **client**, the four parameters are the offer: ``True`` sends a flag (or, for
    ``client_max_window_bits``, the bare parameter saying "you may limit my window"), an int
    sends that value. The server's answer is checked against the offer.

    On a **server**, they are limits applied to every acceptable offer: ``*_no_context_takeover``
    True forces it; ``server_max_window_bits`` caps the server's window; ``client_max_window_bits``
    caps the client's window when the client allows it (with
    ``require_client_max_window_bits`` an offer that does not is declined).

    Args:
        server_no_context_takeover: The server resets its compressor after every message.
        client_no_context_takeover: The client resets its compressor after every message.
        server_max_window_bits: 8-15 (9-15 on a server, which compresses with it), or None.
        client_max_window_bits: 9-15 on a client (8 cannot be compressed with), 8-15 on a
            server, True (client only: offer without a value), or None.
        require_client_max_window_bits: Server only: decline offers without
            client_max_window_bits (needs client_max_window_bits set).
        compress_level: zlib level for what we send, 0-9 or -1 (zlib's default, 6). The
            default, 1 (``Z_BEST_SPEED``, as aiohttp), compresses market-data JSON about 2.1x
            faster than 6 for 13-15% more bytes (docs/compression.md).
        mem_level: zlib memLevel for what we send, 1-9; default 5, as websockets (memory per
            compressor is about ``2**(window_bits + 2) + 2**(mem_level + 9)`` bytes).

    Raises:
        ValueError: A value is out of range or does not fit the role.
    """

    __slots__ = (
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
        "require_client_max_window_bits",
        "compress_level",
        "mem_level",
    )

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: Optional[int]
    client_max_window_bits: Union[int, bool, None]
    require_client_max_window_bits: bool
    compress_level: int
    mem_level: int

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: Optional[int] = None,
        client_max_window_bits: Union[int, bool, None] = None,
        require_client_max_window_bits: bool = False,
        compress_level: int = 1,
        mem_level: int = 5,
    ) -> None:
        for name, bits in (
            ("server_max_window_bits", server_max_window_bits),
            ("client_max_window_bits", client_max_window_bits),
        ):
            if bits is None or bits is True:
                continue
            if bits is False or not isinstance(bits, int) or not 8 <= bits <= 15:
                raise ValueError(f"{name} must be between 8 and 15, got {bits!r}")
        if require_client_max_window_bits and not isinstance(client_max_window_bits, int):
            raise ValueError(
                "require_client_max_window_bits needs client_max_window_bits to be set"
            )
        if not (compress_level == -1 or 0 <= compress_level <= 9):
            raise ValueError(f"compress_level must be -1 or 0-9, got {compress_level!r}")
        if not 1 <= mem_level <= 9:
            raise ValueError(f"mem_level must be 1-9, got {mem_level!r}")
        self.server_no_context_takeover = bool(server_no_context_takeover)
        self.client_no_context_takeover = bool(client_no_context_takeover)
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.require_client_max_window_bits = bool(require_client_max_window_bits)
        self.compress_level = compress_level
        self.mem_level = mem_level

    @classmethod
    def client(cls) -> WSDeflateConfig:
        """What ``compression="deflate"`` means on a client: offer ``client_max_window_bits``
        (the server may shrink our window), nothing else; level 1, memLevel 5."""
        return cls(client_max_window_bits=True)

    @classmethod
    def server(cls) -> WSDeflateConfig:
        """What ``compression="deflate"`` means on a server: accept any valid offer, with our
        window at 12 bits (and the client's too when it lets us choose), as websockets'
        servers do: a server holds many connections, and this keeps zlib's state per
        connection at websockets' size (15-bit windows at memLevel 8 cost twice the RAM)."""
        return cls(server_max_window_bits=12, client_max_window_bits=12)

    def check_role(self, is_client: bool) -> None:
        """Raise ValueError if the configuration cannot be used by this side."""
        if is_client:
            if self.require_client_max_window_bits:
                raise ValueError("require_client_max_window_bits is a server option")
            if self.client_max_window_bits == 8:
                raise ValueError("client_max_window_bits must be 9-15 on a client (zlib)")
        else:
            if self.client_max_window_bits is True:
                raise ValueError("client_max_window_bits=True is a client offer; give 8-15")
            if self.server_max_window_bits == 8:
                raise ValueError("server_max_window_bits must be 9-15 on a server (zlib)")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"WSDeflateConfig({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WSDeflateConfig):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))


class WSDeflateParams:
    """The permessage-deflate parameters agreed for one connection (seen from our side).

    Attributes:
        remote_no_context_takeover: The peer resets its compressor after every message.
        local_no_context_takeover: We reset ours after every message.
        remote_max_window_bits: The peer's LZ77 window (our decompressor's size), 8-15.
        local_max_window_bits: Our LZ77 window, 9-15.
        compress_level: zlib level we compress with.
        mem_level: zlib memLevel we compress with.
        header: The agreed extension as it appears in the 101 response.
    """

    __slots__ = (
        "remote_no_context_takeover",
        "local_no_context_takeover",
        "remote_max_window_bits",
        "local_max_window_bits",
        "compress_level",
        "mem_level",
        "header",
    )

    remote_no_context_takeover: bool
    local_no_context_takeover: bool
    remote_max_window_bits: int
    local_max_window_bits: int
    compress_level: int
    mem_level: int
    header: str

    def __init__(
        self,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        compress_level: int = 1,
        mem_level: int = 5,
        header: str = PERMESSAGE_DEFLATE,
    ) -> None:
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_max_window_bits = remote_max_window_bits
        self.local_max_window_bits = local_max_window_bits
        self.compress_level = compress_level
        self.mem_level = mem_level
        self.header = header

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"WSDeflateParams({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WSDeflateParams):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))


_DeflateValues = Tuple[bool, bool, Optional[int], Union[int, bool, None]]


def _deflate_values(params: ExtensionParams, in_request: bool) -> _DeflateValues:
    """The four parameters of one offer or answer; DeflateNegotiationError when malformed."""
    snct = cnct = False
    smwb: Optional[int] = None
    cmwb: Union[int, bool, None] = None
    seen = set()
    for name, value in params:
        if name not in _DEFLATE_PARAMS:
            raise DeflateNegotiationError("name", f"unknown parameter {name!r}", name, value)
        if name in seen:
            raise DeflateNegotiationError("duplicate", f"duplicate parameter {name}", name, value)
        seen.add(name)
        if name.endswith("no_context_takeover"):
            if value is not None:
                raise DeflateNegotiationError(
                    "value", f"{name} takes no value, got {value!r}", name, value
                )
            if name == "server_no_context_takeover":
                snct = True
            else:
                cnct = True
            continue
        if value is None and name == "client_max_window_bits" and in_request:
            cmwb = True
            continue
        bits = _WINDOW_BITS_VALUES.get(value) if value is not None else None
        if bits is None:
            raise DeflateNegotiationError(
                "value", f"invalid value {value!r} for {name}", name, value
            )
        if name == "server_max_window_bits":
            smwb = bits
        else:
            cmwb = bits
    return snct, cnct, smwb, cmwb


def _format_deflate(
    snct: bool, cnct: bool, smwb: Optional[int], cmwb: Union[int, bool, None]
) -> str:
    parts = [PERMESSAGE_DEFLATE]
    if snct:
        parts.append("server_no_context_takeover")
    if cnct:
        parts.append("client_no_context_takeover")
    if smwb is not None:
        parts.append(f"server_max_window_bits={smwb}")
    if cmwb is True:
        parts.append("client_max_window_bits")
    elif cmwb:
        parts.append(f"client_max_window_bits={cmwb}")
    return "; ".join(parts)


def deflate_offer(config: WSDeflateConfig) -> str:
    """The client's ``Sec-WebSocket-Extensions`` value offering ``config``."""
    config.check_role(True)
    return _format_deflate(
        config.server_no_context_takeover,
        config.client_no_context_takeover,
        config.server_max_window_bits,
        config.client_max_window_bits,
    )


def negotiate_deflate_offer(
    config: WSDeflateConfig, params: ExtensionParams
) -> WSDeflateParams:
    """Server side: accept one permessage-deflate offer under ``config`` (RFC 7692 §7.1).

    Returns:
        The agreed parameters; ``header`` is the extension to put in the 101 response.

    Raises:
        DeflateNegotiationError: The offer must be declined.
    """
    snct, cnct, smwb, cmwb = _deflate_values(params, in_request=True)
    if config.server_no_context_takeover:
        snct = True
    if config.client_no_context_takeover:
        cnct = True
    # server_max_window_bits: the client's limit on our window; ours may be smaller.
    limit = config.server_max_window_bits
    if limit is not None and (smwb is None or smwb > limit):
        smwb = limit
    if smwb == 8:
        raise DeflateNegotiationError(
            "negotiation", "server_max_window_bits=8 is not supported (zlib), use 9",
            "server_max_window_bits", "8",
        )
    # client_max_window_bits: we may only limit the client's window if it offered the param.
    wanted = config.client_max_window_bits
    if wanted is None:
        if cmwb is True:
            cmwb = None
    elif cmwb is None:
        if config.require_client_max_window_bits:
            raise DeflateNegotiationError(
                "negotiation", "client_max_window_bits required but not offered",
                "client_max_window_bits",
            )
    elif cmwb is True or cmwb > wanted:
        cmwb = wanted
    header = _format_deflate(snct, cnct, smwb, cmwb)
    return WSDeflateParams(
        remote_no_context_takeover=cnct,
        local_no_context_takeover=snct,
        remote_max_window_bits=int(cmwb) if cmwb else 15,
        local_max_window_bits=smwb or 15,
        compress_level=config.compress_level,
        mem_level=config.mem_level,
        header=header,
    )


def negotiate_deflate_request(
    config: WSDeflateConfig, headers: CIMultiDict[str]
) -> Optional[WSDeflateParams]:
    """Server side: pick the first acceptable permessage-deflate offer of a request.

    Offers that must be declined (RFC 7692 §5: unknown or duplicate parameters, invalid values,
    or a configuration we cannot accept) are skipped; other extensions are ignored.

    Returns:
        The agreed parameters, or None when no offer is acceptable (compression stays off).

    Raises:
        HandshakeRejection: 400 when ``Sec-WebSocket-Extensions`` is not a valid list.
    """
    values = headers.getall("Sec-WebSocket-Extensions", [])
    if not values:
        return None
    try:
        offers = parse_extensions(values)
    except ValueError:
        raise HandshakeRejection(
            HTTPStatus.BAD_REQUEST, "Invalid Sec-WebSocket-Extensions header"
        ) from None
    for name, params in offers:
        if name.lower() != PERMESSAGE_DEFLATE:
            continue
        try:
            return negotiate_deflate_offer(config, params)
        except DeflateNegotiationError:
            continue
    return None


def negotiate_deflate_response(
    config: WSDeflateConfig, params: ExtensionParams
) -> WSDeflateParams:
    """Client side: check the server's permessage-deflate answer against our offer.

    Raises:
        DeflateNegotiationError: The answer is invalid or does not match the offer.
    """
    snct, cnct, smwb, cmwb = _deflate_values(params, in_request=False)
    if config.server_no_context_takeover and not snct:
        raise DeflateNegotiationError(
            "negotiation", "expected server_no_context_takeover", "server_no_context_takeover"
        )
    if config.client_no_context_takeover:
        cnct = True
    offered = config.server_max_window_bits
    if offered is not None:
        if smwb is None:
            raise DeflateNegotiationError(
                "negotiation", "expected server_max_window_bits", "server_max_window_bits"
            )
        if smwb > offered:
            raise DeflateNegotiationError(
                "negotiation", f"server_max_window_bits={smwb} exceeds the offered {offered}",
                "server_max_window_bits", str(smwb),
            )
    ours = config.client_max_window_bits
    if ours is None or ours is False:
        if cmwb is not None:
            raise DeflateNegotiationError(
                "negotiation", "client_max_window_bits in the answer but not in the offer",
                "client_max_window_bits", str(cmwb),
            )
    elif ours is not True:
        if cmwb is None:
            cmwb = ours
        elif cmwb > ours:
            raise DeflateNegotiationError(
                "negotiation", f"client_max_window_bits={cmwb} exceeds the offered {ours}",
                "client_max_window_bits", str(cmwb),
            )
    if cmwb == 8:
        raise DeflateNegotiationError(
            "negotiation", "client_max_window_bits=8 is not supported (zlib), use 9",
            "client_max_window_bits", "8",
        )
    return WSDeflateParams(
        remote_no_context_takeover=snct,
        local_no_context_takeover=cnct,
        remote_max_window_bits=smwb or 15,
        local_max_window_bits=int(cmwb) if cmwb else 15,
        compress_level=config.compress_level,
        mem_level=config.mem_level,
        header=_format_deflate(*_deflate_values(params, in_request=False)),
    )


def negotiate_deflate_from_response(
    config: WSDeflateConfig, response: WSUpgradeResponse, raw_header: bytes = b""
) -> Optional[WSDeflateParams]:
    """Client side: the permessage-deflate parameters a 101 response agreed to, if any.

    Raises:
        WSInvalidHeaderError: ``Sec-WebSocket-Extensions`` is malformed, names an extension
            we did not offer, accepts permessage-deflate twice, or its answer does not match
            our offer.
    """
    values = response.headers.getall("Sec-WebSocket-Extensions", [])
    if not values:
        return None
    joined = ", ".join(values)

    def fail(message: str) -> WSInvalidHeaderError:
        return WSInvalidHeaderError(
            message, "Sec-WebSocket-Extensions", joined, raw_header or None, None, response
        )

    try:
        answers = parse_extensions(values)
    except ValueError:
        raise fail(f"invalid Sec-WebSocket-Extensions header {joined!r}") from None
    agreed: Optional[WSDeflateParams] = None
    for name, params in answers:
        if name.lower() != PERMESSAGE_DEFLATE:
            raise fail(f"server accepted extension {name!r}, which was not offered")
        if agreed is not None:
            raise fail("server accepted permessage-deflate twice")
        try:
            agreed = negotiate_deflate_response(config, params)
        except DeflateNegotiationError as exc:
            raise fail(f"invalid permessage-deflate answer: {exc}") from None
    return agreed


def negotiate_deflate_for_101(
    config: WSDeflateConfig,
    request_headers: CIMultiDict[str],
    response_headers: Optional[CIMultiDict[str]],
) -> Tuple[Optional[WSDeflateParams], bool]:
    """Server side, as the core runs it: ``(params, add_header)``.

    Without a ``Sec-WebSocket-Extensions`` in the listener factory's own 101, the core answers
    ``params.header`` itself (``add_header`` True). If the factory answered already (the
    websockets drop-in computes the same answer with :func:`negotiate_deflate_request` so that
    ``process_response`` sees it), compression runs only when that answer is exactly the one
    ``config`` gives; any other answer is the factory's own business (None).

    Raises:
        HandshakeRejection: 400 for a malformed request header.
    """
    params = negotiate_deflate_request(config, request_headers)
    answered = response_headers.getall("Sec-WebSocket-Extensions", []) if response_headers else []
    if params is None or not answered:
        return params, params is not None
    try:
        items = parse_extensions(answered)
        for name, values in items:
            if name.lower() == PERMESSAGE_DEFLATE and _format_deflate(
                *_deflate_values(values, in_request=False)
            ) == params.header:
                return params, False
    except (ValueError, DeflateNegotiationError):
        pass
    return None, False
