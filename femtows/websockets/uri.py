"""WebSocket URIs and proxies: :func:`parse_uri`, :class:`WebSocketURI`, :class:`Proxy`,
:func:`parse_proxy`, :func:`get_proxy`.

Twins of ``websockets.uri`` and ``websockets.proxy`` (17.4), with the same
:exc:`~femtows.websockets.exceptions.InvalidURI` / ``InvalidProxy`` messages. User information
is percent-decoded; IRIs (non-ASCII URIs) are converted to URIs (IDNA host, percent-encoded
path and query). :func:`get_proxy` reads the environment (``ws_proxy``/``wss_proxy``,
``socks_proxy``, ``https_proxy``, ``http_proxy``, ``no_proxy``) through
:mod:`urllib.request`, like websockets.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
import urllib.request
from typing import Optional, Tuple

from .exceptions import InvalidProxy, InvalidURI

__all__ = ["parse_uri", "WebSocketURI", "Proxy", "parse_proxy", "get_proxy"]

# gen-delims and sub-delims of RFC 3987: left as they are when percent-encoding an IRI.
DELIMS = ":/?#[]@!$&'()*+,;="


@dataclasses.dataclass
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URI.

    Attributes:
        secure: ``True`` for ``wss``.
        host: lower-cased host name or address.
        port: the port, 80 or 443 when the URI has none.
        path: may be empty.
        query: may be empty.
        username: from the user information, percent-decoded, or ``None``.
        password: likewise.
    """

    secure: bool
    host: str
    port: int
    path: str
    query: str
    username: Optional[str] = None
    password: Optional[str] = None

    @property
    def resource_name(self) -> str:
        """The request target: path (``/`` if empty) and ``?query`` if any."""
        target = self.path or "/"
        return f"{target}?{self.query}" if self.query else target

    @property
    def user_info(self) -> Optional[Tuple[str, str]]:
        """``(username, password)``, or ``None`` without user information."""
        if self.username is None:
            return None
        assert self.password is not None
        return self.username, self.password


def _credentials(
    parsed: urllib.parse.ParseResult, reject: type[Exception], text: str
) -> Tuple[Optional[str], Optional[str]]:
    username, password = parsed.username, parsed.password
    if username is None:
        return None, None
    # A username without a password makes no sense for HTTP Basic auth.
    if password is None:
        raise reject(text, "username provided without password")
    return (
        urllib.parse.unquote(username, errors="strict"),
        urllib.parse.unquote(password, errors="strict"),
    )


def _is_ascii(text: str) -> bool:
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        return False
    return True


def parse_uri(uri: str) -> WebSocketURI:
    """Parse and check a WebSocket URI.

    Raises:
        InvalidURI: the scheme is not ws/wss, there is no host, there is a fragment, or there
            is a username without password.
        ValueError: the port is not a number in 0-65535 (raised by :mod:`urllib.parse`, as in
            websockets).
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("ws", "wss"):
        raise InvalidURI(uri, "scheme isn't ws or wss")
    if parsed.hostname is None:
        raise InvalidURI(uri, "hostname isn't provided")
    if parsed.fragment:
        raise InvalidURI(uri, "fragment identifier is meaningless")
    secure = parsed.scheme == "wss"
    host = parsed.hostname
    port = parsed.port or (443 if secure else 80)
    path, query = parsed.path, parsed.query
    username, password = _credentials(parsed, InvalidURI, uri)
    if not _is_ascii(uri):
        # An IRI: convert it to the URI it stands for.
        host = host.encode("idna").decode()
        path = urllib.parse.quote(path, safe=DELIMS)
        query = urllib.parse.quote(query, safe=DELIMS)
    return WebSocketURI(secure, host, port, path, query, username, password)


PROXY_SCHEMES = ("socks5h", "socks5", "socks4a", "socks4", "https", "http")


@dataclasses.dataclass
class Proxy:
    """A parsed proxy address.

    Attributes:
        scheme: ``"socks5h"``, ``"socks5"``, ``"socks4a"``, ``"socks4"``, ``"https"`` or
            ``"http"``.
        host: lower-cased host name or address.
        port: the port, 80 (443 for https) when the address has none.
        username: from the user information, percent-decoded, or ``None``.
        password: likewise.
    """

    scheme: str
    host: str
    port: int
    username: Optional[str] = None
    password: Optional[str] = None

    @property
    def user_info(self) -> Optional[Tuple[str, str]]:
        """``(username, password)``, or ``None`` without user information."""
        if self.username is None:
            return None
        assert self.password is not None
        return self.username, self.password


def parse_proxy(proxy: str) -> Proxy:
    """Parse and check a proxy address such as ``http://user:pass@host:3128``.

    Raises:
        InvalidProxy: unsupported scheme, no host, a path, query or fragment, or a username
            without password.
    """
    parsed = urllib.parse.urlparse(proxy)
    if parsed.scheme not in PROXY_SCHEMES:
        raise InvalidProxy(proxy, f"scheme {parsed.scheme} isn't supported")
    if parsed.hostname is None:
        raise InvalidProxy(proxy, "hostname isn't provided")
    if parsed.path not in ("", "/"):
        raise InvalidProxy(proxy, "path is meaningless")
    if parsed.query:
        raise InvalidProxy(proxy, "query is meaningless")
    if parsed.fragment:
        raise InvalidProxy(proxy, "fragment is meaningless")
    host = parsed.hostname
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    username, password = _credentials(parsed, InvalidProxy, proxy)
    if not _is_ascii(proxy):
        host = host.encode("idna").decode()
    return Proxy(parsed.scheme, host, port, username, password)


def get_proxy(uri: WebSocketURI) -> Optional[str]:
    """Return the proxy configured in the environment for ``uri``, or ``None``.

    ``no_proxy`` wins; then a proxy for the WebSocket scheme itself (``wss_proxy`` /
    ``ws_proxy``), then SOCKS (``socks_proxy``; an ``http://`` value means ``socks5h://``),
    then ``https_proxy``, then (for ``ws://`` only) ``http_proxy``.
    """
    if urllib.request.proxy_bypass(f"{uri.host}:{uri.port}"):
        return None
    proxies = urllib.request.getproxies()
    order = ("wss", "socks", "https") if uri.secure else ("ws", "socks", "https", "http")
    for scheme in order:
        proxy = proxies.get(scheme)
        if proxy is None:
            continue
        if scheme == "socks" and proxy.startswith("http://"):
            proxy = "socks5h://" + proxy[len("http://") :]
        return proxy
    return None
