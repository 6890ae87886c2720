"""permessage-deflate negotiation (RFC 7692 §7.1): what a client offers, what a server accepts.

One implementation for both APIs: the core (``ws_connect`` / ``ws_create_server`` with
``compression=``) calls these functions with a :class:`WSDeflateConfig`; the websockets drop-in's
extension factories (``femtows.websockets.extensions.permessage_deflate``) translate their
parameters into one and map :attr:`DeflateNegotiationError.kind` onto websockets' exception
types. Plain Python, no sockets: the codec itself is ``femtows/_core/pmd.pyx``.

Split out of ``femtows.handshake`` (which re-exports every name here) to keep that module to the
HTTP upgrade itself.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Iterable, List, Optional, Tuple, Union

from multidict import CIMultiDict

from .errors import WSInvalidHeaderError

if TYPE_CHECKING:
    from .handshake import WSUpgradeResponse

__all__ = [
    "DeflateNegotiationError",
    "ExtensionParams",
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
]

# RFC 9110 §5.6.2 token (the same grammar as femtows.handshake's).
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_STR_RE = re.compile(_TOKEN)

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
    _OWS + r";" + _OWS + r"(" + _TOKEN + r")(?:" + _OWS + r"=" + _OWS
    + r"(?:(" + _TOKEN + r')|"((?:[^"\\]|\\.)*)"))?'
)
_EXT_NAME_RE = re.compile(_OWS + r"(" + _TOKEN + r")")


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
        from .handshake import HandshakeRejection  # handshake imports this module

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
