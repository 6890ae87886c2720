"""Exceptions raised by femtows.

Every exception femtows raises on its own account derives from :class:`WSError`, so an
application can catch all of them in one place. OS-level errors (``ConnectionResetError``,
``ssl.SSLError``, ...) and a handshake timeout (``asyncio.TimeoutError``) are deliberately *not*
wrapped: they keep their usual types so that generic networking code keeps working.

The hierarchy and the constructor signatures are the same as picows's, so code that catches or
raises picows exceptions works unchanged after switching the import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple

if TYPE_CHECKING:
    from .handshake import WSUpgradeResponse

__all__ = [
    "WSError",
    "WSHandshakeError",
    "WSInvalidHeaderError",
    "WSInvalidMessageError",
    "WSInvalidStatusError",
    "WSInvalidURL",
    "WSInvalidUpgradeError",
    "WSProtocolError",
    "WSProxyError",
]


class WSError(Exception):
    """Base class of every exception that femtows raises itself.

    Catch it to handle any femtows-specific failure (bad URL, failed handshake, protocol
    violation) without also swallowing unrelated errors.
    """


class WSHandshakeError(WSError):
    """The HTTP upgrade (opening handshake) of a client connection failed.

    Raised by ``ws_connect``. It keeps everything the server sent, so that the application can log
    it or act on it (for example read a ``Retry-After`` header from a 503).

    Args:
        description: Human-readable explanation; it is also ``str(exc)``.
        raw_header: The response head as received (status line and headers, up to and including
            the blank line), when one was received.
        raw_body: Bytes received after the head, if any.
        response: The parsed response, when the head could be parsed.

    Attributes:
        description: See Args.
        raw_header: See Args.
        raw_body: See Args.
        response: See Args.
    """

    description: str
    raw_header: Optional[bytes]
    raw_body: Optional[bytes]
    response: Optional[WSUpgradeResponse]

    def __init__(
        self,
        description: str,
        raw_header: Optional[bytes] = None,
        raw_body: Optional[bytes] = None,
        response: Optional[WSUpgradeResponse] = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.raw_header = raw_header
        self.raw_body = raw_body
        self.response = response

    def __str__(self) -> str:
        return self.description

    def __reduce__(self) -> Tuple[Any, ...]:
        # Exceptions are pickled as ``cls(*self.args)``; our args hold only the description, so
        # hand the full constructor arguments to pickle (used by multiprocessing, for example).
        return (
            type(self),
            (self.description, self.raw_header, self.raw_body, self.response),
        )


class WSInvalidMessageError(WSHandshakeError):
    """The server's upgrade response could not be read as an HTTP/1.1 response.

    Raised when the response head is malformed or larger than the limit, or when the server closed
    the connection before sending a complete head.
    """


class WSInvalidStatusError(WSHandshakeError):
    """The server answered the upgrade request with a status other than 101.

    ``exc.response.status`` holds the status; ``exc.response.headers`` and ``exc.raw_body`` hold
    what the server sent with it.
    """


class WSInvalidHeaderError(WSHandshakeError):
    """A header of the server's upgrade response is missing or has a wrong value.

    Args:
        description: Human-readable explanation; it is also ``str(exc)``.
        name: Name of the offending header.
        value: Its value as received, or None when the header was missing.
        raw_header: See :class:`WSHandshakeError`.
        raw_body: See :class:`WSHandshakeError`.
        response: See :class:`WSHandshakeError`.

    Attributes:
        name: See Args.
        value: See Args.
    """

    name: str
    value: Optional[str]

    def __init__(
        self,
        description: str,
        name: str,
        value: Optional[str] = None,
        raw_header: Optional[bytes] = None,
        raw_body: Optional[bytes] = None,
        response: Optional[WSUpgradeResponse] = None,
    ) -> None:
        super().__init__(description, raw_header, raw_body, response)
        self.name = name
        self.value = value

    def __reduce__(self) -> Tuple[Any, ...]:
        return (
            type(self),
            (
                self.description,
                self.name,
                self.value,
                self.raw_header,
                self.raw_body,
                self.response,
            ),
        )


class WSInvalidUpgradeError(WSInvalidHeaderError):
    """The ``Upgrade`` or ``Connection`` header of the upgrade response is wrong.

    Usually means the peer is not a WebSocket server at all (a plain HTTP server, or a proxy that
    does not pass upgrades through).
    """


class WSProtocolError(WSError):
    """A WebSocket protocol violation, with the close code to report it with.

    femtows raises it when the peer breaks RFC 6455. Applications may raise it themselves from an
    ``on_ws_*`` callback to close the connection with a code of their choosing (for example
    ``WSCloseCode.POLICY_VIOLATION``) instead of the generic internal-error code.

    Args:
        code: The WebSocket close code (a ``WSCloseCode`` or a plain int).
        message: Human-readable explanation; it is also ``str(exc)``.

    Attributes:
        code: See Args.
        message: See Args.
    """

    code: int
    message: str

    def __init__(self, code: int, message: str) -> None:
        # args == (code, message), as in picows, so that pickling rebuilds the same object.
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class WSInvalidURL(WSError):
    """A URL given to femtows is not usable (wrong scheme, no host, bad port, ...).

    ``str(exc)`` names the URL and the reason. Any password in the URL is masked in that text,
    because exception messages end up in logs; the ``url`` attribute keeps the URL unchanged.

    Args:
        url: The URL as given.
        msg: Why it was refused.

    Attributes:
        url: See Args.
        msg: See Args.
    """

    url: str
    msg: str

    def __init__(self, url: str, msg: str) -> None:
        super().__init__(url, msg)
        self.url = url
        self.msg = msg

    def __str__(self) -> str:
        return f"invalid URL {redact_url(self.url)!r}: {self.msg}"


class WSProxyError(WSError, ConnectionError):
    """The proxy given to ``ws_connect`` could not open a tunnel to the WebSocket server.

    Raised when the proxy cannot be reached, refuses the tunnel (an HTTP status other than 2xx,
    a SOCKS error reply), answers with something that is not a valid proxy response, or closes
    the connection before the tunnel is open. It is also a ``ConnectionError`` (hence an
    ``OSError``), so code that retries on connection failures handles it without knowing about
    proxies. The original error, when there is one (a python-socks exception, an ``OSError``),
    is chained as ``__cause__``.

    Args:
        message: Human-readable explanation; it is also ``str(exc)``. It must not contain the
            proxy password: build it from the redacted ``proxy``.
        proxy: The proxy URL with its password replaced by ``***`` (see :func:`redact_url`).
        status: The HTTP status of an HTTP(S) proxy's refusal (407 for bad credentials, 403,
            502, ...), None when no HTTP status applies (SOCKS, network errors, malformed
            answers).

    Attributes:
        message: See Args.
        proxy: See Args.
        status: See Args.
    """

    message: str
    proxy: Optional[str]
    status: Optional[int]

    def __init__(
        self, message: str, proxy: Optional[str] = None, status: Optional[int] = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.proxy = proxy
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.message, self.proxy, self.status))


def redact_url(url: str) -> str:
    """Return ``url`` with the password of its userinfo (if any) replaced by ``***``.

    Use it for any URL that goes into a log line or an exception message: proxy URLs in
    particular carry credentials.
    """
    _, sep, rest = url.partition("://")
    if not sep:
        return url
    end = len(rest)
    for delim in "/?#":
        pos = rest.find(delim)
        if pos != -1:
            end = min(end, pos)
    authority = rest[:end]
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    if not colon:
        return url
    prefix = url[: len(url) - len(rest)]
    return f"{prefix}{user}:***@{hostport}{rest[end:]}"
