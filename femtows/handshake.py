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

# permessage-deflate negotiation lives in femtows.deflate; its names stay importable from here.
from .deflate import (
    PERMESSAGE_DEFLATE,
    DeflateNegotiationError,
    ExtensionParams,
    WSDeflateConfig,
    WSDeflateParams,
    deflate_offer,
    negotiate_deflate_for_101,
    negotiate_deflate_from_response,
    negotiate_deflate_offer,
    negotiate_deflate_request,
    negotiate_deflate_response,
    parse_extensions,
)
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
    "ExtensionParams",
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
