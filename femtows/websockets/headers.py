"""Parsers and builders for the HTTP headers of the WebSocket handshake.

Twins of ``websockets.headers`` (17.4): same functions, same results and the same
:exc:`~femtows.websockets.exceptions.InvalidHeaderFormat` texts
(``"invalid Connection header: expected token at 0 in ,"``). The grammar is RFC 7230's
``1#item`` lists (empty elements tolerated) and RFC 6455 §9.1 for extensions.
Parsers take the header value and a position and return ``(value, new position)``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar, cast

from .datastructures import Headers
from .exceptions import InvalidHeaderFormat, InvalidHeaderValue, InvalidUpgrade
from .typing import (
    ConnectionOption,
    ExtensionHeader,
    ExtensionName,
    ExtensionParameter,
    Subprotocol,
    UpgradeProtocol,
)

__all__ = [
    "build_host",
    "parse_connection",
    "parse_upgrade",
    "parse_extension",
    "build_extension",
    "parse_subprotocol",
    "build_subprotocol",
    "validate_subprotocols",
    "build_www_authenticate_basic",
    "parse_authorization_basic",
    "build_authorization_basic",
]

T = TypeVar("T")

_TOKEN = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_token_re = re.compile(_TOKEN)
_OWS_re = re.compile(r"[\t ]*")
_quoted_string_re = re.compile(r'"((?:[\t\x20\x21\x23-\x5b\x5d-\x7e]|\\[\t\x20-\x7e\x80-\xff])*)"')
_quoted_pair_re = re.compile(r"\\([\t\x20-\x7e\x80-\xff])")
_quotable_re = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_protocol_re = re.compile(_TOKEN + r"(?:/" + _TOKEN + r")?")
_token68_re = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def build_host(host: str, port: int, secure: bool, *, always_include_port: bool = False) -> str:
    """Return a ``Host`` header value: IPv6 literals bracketed, the port added when it is not
    the scheme's default (or always, with ``always_include_port``)."""
    try:
        is_ipv6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        is_ipv6 = False
    if is_ipv6:
        host = f"[{host}]"
    default_port = 443 if secure else 80
    if always_include_port or port != default_port:
        return f"{host}:{port}"
    return host


def peek_ahead(header: str, pos: int) -> Optional[str]:
    """Return the character at ``pos``, or ``None`` at the end of ``header``."""
    return header[pos] if pos < len(header) else None


def parse_OWS(header: str, pos: int) -> int:
    """Skip optional whitespace (spaces and tabs) at ``pos``; return the new position."""
    match = _OWS_re.match(header, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def parse_token(header: str, pos: int, header_name: str) -> Tuple[str, int]:
    """Parse a token at ``pos``.

    Raises:
        InvalidHeaderFormat: there is no token at ``pos``.
    """
    match = _token_re.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(header_name, "expected token", header, pos)
    return match.group(), match.end()


def parse_quoted_string(header: str, pos: int, header_name: str) -> Tuple[str, int]:
    """Parse a quoted string at ``pos`` and return it unquoted.

    Raises:
        InvalidHeaderFormat: there is no quoted string at ``pos``.
    """
    match = _quoted_string_re.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(header_name, "expected quoted string", header, pos)
    return _quoted_pair_re.sub(r"\1", match.group(1)), match.end()


def build_quoted_string(value: str) -> str:
    """Quote ``value`` (reverse of :func:`parse_quoted_string`).

    Raises:
        ValueError: ``value`` contains characters a quoted string cannot carry.
    """
    if not _quotable_re.fullmatch(value):
        raise ValueError("invalid characters for quoted-string encoding")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _skip_commas(header: str, pos: int) -> int:
    # RFC 7230 §7: recipients must accept and ignore empty list elements.
    while peek_ahead(header, pos) == ",":
        pos = parse_OWS(header, pos + 1)
    return pos


def parse_list(
    parse_item: Callable[[str, int, str], Tuple[T, int]],
    header: str,
    pos: int,
    header_name: str,
) -> List[T]:
    """Parse a comma-separated ``1#item`` list from ``pos`` to the end of ``header``.

    Raises:
        InvalidHeaderFormat: an item is invalid or two items are not separated by a comma.
    """
    items: List[T] = []
    pos = _skip_commas(header, pos)
    while True:
        item, pos = parse_item(header, pos, header_name)
        items.append(item)
        pos = parse_OWS(header, pos)
        if pos == len(header):
            return items
        if header[pos] != ",":
            raise InvalidHeaderFormat(header_name, "expected comma", header, pos)
        pos = _skip_commas(header, pos)
        if pos == len(header):
            return items


def parse_connection_option(
    header: str, pos: int, header_name: str
) -> Tuple[ConnectionOption, int]:
    """Parse one ``Connection`` option at ``pos``."""
    token, pos = parse_token(header, pos, header_name)
    return ConnectionOption(token), pos


def parse_connection(header: str) -> List[ConnectionOption]:
    """Parse a ``Connection`` header into its options.

    Raises:
        InvalidHeaderFormat: the header is malformed.
    """
    return parse_list(parse_connection_option, header, 0, "Connection")


def parse_upgrade_protocol(header: str, pos: int, header_name: str) -> Tuple[UpgradeProtocol, int]:
    """Parse one ``Upgrade`` protocol (``name`` or ``name/version``) at ``pos``."""
    match = _protocol_re.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(header_name, "expected protocol", header, pos)
    return UpgradeProtocol(match.group()), match.end()


def parse_upgrade(header: str) -> List[UpgradeProtocol]:
    """Parse an ``Upgrade`` header into its protocols.

    Raises:
        InvalidHeaderFormat: the header is malformed.
    """
    return parse_list(parse_upgrade_protocol, header, 0, "Upgrade")


def check_upgrade_headers(headers: Headers) -> None:
    """Check the ``Connection: upgrade`` and ``Upgrade: websocket`` headers of an opening
    handshake (request or response, RFC 6455 §4.1/§4.2.1).

    Raises:
        InvalidUpgrade: a header is missing or does not ask for the WebSocket upgrade.
        InvalidHeaderFormat: a header is malformed.
    """
    connection: List[str] = []
    for value in headers.get_all("Connection"):
        connection.extend(parse_connection(value))
    if not any(value.lower() == "upgrade" for value in connection):
        raise InvalidUpgrade("Connection", ", ".join(connection) if connection else None)
    upgrade: List[str] = []
    for value in headers.get_all("Upgrade"):
        upgrade.extend(parse_upgrade(value))
    if not (len(upgrade) == 1 and upgrade[0].lower() == "websocket"):
        raise InvalidUpgrade("Upgrade", ", ".join(upgrade) if upgrade else None)


def parse_extension_item_param(
    header: str, pos: int, header_name: str
) -> Tuple[ExtensionParameter, int]:
    """Parse one extension parameter (``name`` or ``name=value``) at ``pos``.

    A quoted value must be a token once unquoted (RFC 6455 §9.1).
    """
    name, pos = parse_token(header, pos, header_name)
    pos = parse_OWS(header, pos)
    value: Optional[str] = None
    if peek_ahead(header, pos) == "=":
        pos = parse_OWS(header, pos + 1)
        if peek_ahead(header, pos) == '"':
            start = pos
            value, pos = parse_quoted_string(header, pos, header_name)
            if not _token_re.fullmatch(value):
                raise InvalidHeaderFormat(
                    header_name, "invalid quoted header content", header, start
                )
        else:
            value, pos = parse_token(header, pos, header_name)
        pos = parse_OWS(header, pos)
    return (name, value), pos


def parse_extension_item(header: str, pos: int, header_name: str) -> Tuple[ExtensionHeader, int]:
    """Parse one extension and its ``;``-separated parameters at ``pos``."""
    name, pos = parse_token(header, pos, header_name)
    pos = parse_OWS(header, pos)
    parameters: List[ExtensionParameter] = []
    while peek_ahead(header, pos) == ";":
        pos = parse_OWS(header, pos + 1)
        parameter, pos = parse_extension_item_param(header, pos, header_name)
        parameters.append(parameter)
    return (ExtensionName(name), parameters), pos


def parse_extension(header: str) -> List[ExtensionHeader]:
    """Parse a ``Sec-WebSocket-Extensions`` header.

    Returns ``[(extension name, [(parameter name, value or None), ...]), ...]``.

    Raises:
        InvalidHeaderFormat: the header is malformed.
    """
    return parse_list(parse_extension_item, header, 0, "Sec-WebSocket-Extensions")


parse_extension_list = parse_extension  # older name, kept like websockets


def build_extension_item(name: ExtensionName, parameters: Sequence[ExtensionParameter]) -> str:
    """Build one extension with its parameters (values are tokens: never quoted)."""
    parts = [cast(str, name)]
    parts.extend(key if value is None else f"{key}={value}" for key, value in parameters)
    return "; ".join(parts)


def build_extension(extensions: Sequence[ExtensionHeader]) -> str:
    """Build a ``Sec-WebSocket-Extensions`` header (reverse of :func:`parse_extension`)."""
    return ", ".join(build_extension_item(name, params) for name, params in extensions)


build_extension_list = build_extension  # older name, kept like websockets


def parse_subprotocol_item(header: str, pos: int, header_name: str) -> Tuple[Subprotocol, int]:
    """Parse one subprotocol at ``pos``."""
    token, pos = parse_token(header, pos, header_name)
    return Subprotocol(token), pos


def parse_subprotocol(header: str) -> List[Subprotocol]:
    """Parse a ``Sec-WebSocket-Protocol`` header into its subprotocols.

    Raises:
        InvalidHeaderFormat: the header is malformed.
    """
    return parse_list(parse_subprotocol_item, header, 0, "Sec-WebSocket-Protocol")


parse_subprotocol_list = parse_subprotocol  # older name, kept like websockets


def build_subprotocol(subprotocols: Sequence[Subprotocol]) -> str:
    """Build a ``Sec-WebSocket-Protocol`` header (reverse of :func:`parse_subprotocol`)."""
    return ", ".join(subprotocols)


build_subprotocol_list = build_subprotocol  # older name, kept like websockets


def validate_subprotocols(subprotocols: Sequence[Subprotocol]) -> None:
    """Check that ``subprotocols`` is a list of tokens.

    Raises:
        TypeError: it is a ``str`` or not a sequence.
        ValueError: an item is not a token.
    """
    if not isinstance(subprotocols, Sequence):
        raise TypeError("subprotocols must be a list")
    if isinstance(subprotocols, str):
        raise TypeError("subprotocols must be a list, not a str")
    for subprotocol in subprotocols:
        if not _token_re.fullmatch(subprotocol):
            raise ValueError(f"invalid subprotocol: {subprotocol}")


def build_www_authenticate_basic(realm: str) -> str:
    """Build a ``WWW-Authenticate`` header asking for HTTP Basic credentials (RFC 7617)."""
    return f"Basic realm={build_quoted_string(realm)}, charset={build_quoted_string('UTF-8')}"


def parse_token68(header: str, pos: int, header_name: str) -> Tuple[str, int]:
    """Parse a token68 (RFC 7235) at ``pos``."""
    match = _token68_re.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(header_name, "expected token68", header, pos)
    return match.group(), match.end()


def parse_end(header: str, pos: int, header_name: str) -> None:
    """Check that ``pos`` is the end of ``header``.

    Raises:
        InvalidHeaderFormat: there is trailing data.
    """
    if pos < len(header):
        raise InvalidHeaderFormat(header_name, "trailing data", header, pos)


def parse_authorization_basic(header: str) -> Tuple[str, str]:
    """Parse an ``Authorization: Basic ...`` header into ``(username, password)``.

    Bytes that are not UTF-8 come back as surrogate escapes.

    Raises:
        InvalidHeaderFormat: the header is malformed.
        InvalidHeaderValue: the scheme is not Basic, or the credentials are not
            base64-encoded ``username:password``.
    """
    scheme, pos = parse_token(header, 0, "Authorization")
    if scheme.lower() != "basic":
        raise InvalidHeaderValue("Authorization", f"unsupported scheme: {scheme}")
    if peek_ahead(header, pos) != " ":
        raise InvalidHeaderFormat("Authorization", "expected space after scheme", header, pos)
    credentials, pos = parse_token68(header, pos + 1, "Authorization")
    parse_end(header, pos, "Authorization")
    try:
        decoded = base64.b64decode(credentials.encode())
    except binascii.Error:
        raise InvalidHeaderValue("Authorization", "expected base64-encoded credentials") from None
    username, colon, password = decoded.decode(errors="surrogateescape").partition(":")
    if not colon:
        raise InvalidHeaderValue("Authorization", "expected username:password credentials")
    return username, password


def build_authorization_basic(username: str, password: str) -> str:
    """Build an ``Authorization: Basic ...`` header value (reverse of
    :func:`parse_authorization_basic`).

    Raises:
        ValueError: ``username`` contains a colon (it could not be parsed back).
    """
    if ":" in username:
        raise ValueError("username must not contain a colon")
    raw = f"{username}:{password}".encode(errors="surrogateescape")
    return "Basic " + base64.b64encode(raw).decode()
