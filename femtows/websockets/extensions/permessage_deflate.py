"""permessage-deflate (RFC 7692) with websockets 17.4's classes, parameters and errors.

The factories are configuration: they translate to :class:`femtows.handshake.WSDeflateConfig`
(``to_config()``), which the core negotiates and then runs (zlib from Cython, frame by frame,
inflate capped at ``max_size``). ``process_request_params`` / ``process_response_params`` call
the same negotiation functions as the core and raise websockets' exception types.
``PerMessageDeflate`` is the negotiated extension; its ``encode`` / ``decode`` work on
:class:`~femtows.websockets.frames.Frame` objects with the ``zlib`` module, for code that calls
them directly.
"""

from __future__ import annotations

import zlib
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

from ... import handshake
from ..exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)
from ..frames import CTRL_OPCODES, Frame, Opcode
from ..typing import ExtensionName, ExtensionParameter
from .base import ClientExtensionFactory, Extension, ServerExtensionFactory

__all__ = [
    "PerMessageDeflate",
    "ClientPerMessageDeflateFactory",
    "enable_client_permessage_deflate",
    "ServerPerMessageDeflateFactory",
    "enable_server_permessage_deflate",
]

_TAIL = b"\x00\x00\xff\xff"
# zlib.compressobj keywords the core can honour (wbits comes from the negotiation).
_CORE_SETTINGS = {"level": "compress_level", "memLevel": "mem_level"}


def _websockets_error(exc: handshake.DeflateNegotiationError) -> NegotiationError:
    """The websockets exception for a negotiation failure found by femtows.handshake."""
    if exc.kind == "duplicate":
        return DuplicateParameter(exc.name or "")
    if exc.kind == "name":
        return InvalidParameterName(exc.name or "")
    if exc.kind == "value":
        return InvalidParameterValue(exc.name or "", exc.value)
    return NegotiationError(str(exc))


def _core_settings(compress_settings: Optional[Dict[str, Any]]) -> Tuple[int, int]:
    """``(compress_level, mem_level)`` from ``compress_settings``; ValueError for keywords the
    core does not support.

    Without a ``level`` key the core compresses at level 1 (websockets leaves zlib's default,
    6): about 2x less CPU per compressed message for 13-15% more bytes on JSON
    (docs/compression.md); ``compress_settings={"memLevel": 5, "level": 6}`` sends the bytes
    websockets would."""
    out: Dict[str, int] = {"compress_level": 1, "mem_level": 8}
    for key, value in (compress_settings or {}).items():
        if key == "method" and value == zlib.DEFLATED:
            continue
        if key == "strategy" and value == zlib.Z_DEFAULT_STRATEGY:
            continue
        if key not in _CORE_SETTINGS:
            raise ValueError(
                f"compress_settings[{key!r}] is not supported by femtows (level and memLevel "
                f"are)"
            )
        out[_CORE_SETTINGS[key]] = int(value)
    return out["compress_level"], out["mem_level"]


def _params_list(header: str) -> List[ExtensionParameter]:
    """The parameters of an agreed ``permessage-deflate; ...`` answer."""
    return list(handshake.parse_extensions([header])[0][1])


class PerMessageDeflate(Extension):
    """The negotiated permessage-deflate extension of one connection.

    Args:
        remote_no_context_takeover: The peer resets its compressor after each message.
        local_no_context_takeover: We reset ours after each message.
        remote_max_window_bits: The peer's window, 8-15.
        local_max_window_bits: Ours, 9-15 (zlib cannot compress with 8).
        compress_settings: ``zlib.compressobj`` keywords but ``wbits``.
    """

    name = ExtensionName("permessage-deflate")

    def __init__(
        self,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        compress_settings: Optional[Dict[Any, Any]] = None,
    ) -> None:
        if compress_settings is None:
            compress_settings = {}
        assert remote_no_context_takeover in (False, True)
        assert local_no_context_takeover in (False, True)
        assert 8 <= remote_max_window_bits <= 15
        assert 9 <= local_max_window_bits <= 15
        assert "wbits" not in compress_settings
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_max_window_bits = remote_max_window_bits
        self.local_max_window_bits = local_max_window_bits
        self.compress_settings = compress_settings
        self._decoder: Any = None
        self._encoder: Any = None
        self._decoding = False  # a compressed message is being decoded

    @classmethod
    def from_params(
        cls, params: handshake.WSDeflateParams, compress_settings: Optional[Dict[Any, Any]] = None
    ) -> PerMessageDeflate:
        """The extension for parameters the core negotiated (``transport.compression``)."""
        return cls(
            params.remote_no_context_takeover,
            params.local_no_context_takeover,
            params.remote_max_window_bits,
            params.local_max_window_bits,
            compress_settings,
        )

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate("
            f"remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"local_max_window_bits={self.local_max_window_bits})"
        )

    def decode(self, frame: Frame, *, max_size: Optional[int] = None) -> Frame:
        """Decompress a frame of a compressed message (others are returned as they are).

        Raises:
            ProtocolError: RSV1 on a continuation frame, or invalid deflate data.
            PayloadTooBig: The decompressed payload exceeds ``max_size``.
        """
        if frame.opcode in CTRL_OPCODES:
            return frame
        if frame.opcode is Opcode.CONT:
            if not self._decoding:
                return frame
            if frame.rsv1:
                raise ProtocolError("RSV1 bit set in continuation frame")
        else:
            if not frame.rsv1:
                return frame
            self._decoding = True
            if self._decoder is None or self.remote_no_context_takeover:
                self._decoder = zlib.decompressobj(wbits=-self.remote_max_window_bits)
        if frame.fin:
            self._decoding = False
        data = bytes(frame.data) + (_TAIL if frame.fin else b"")
        limit = 0 if max_size is None else max_size
        try:
            out = self._decoder.decompress(data, limit)
            if self._decoder.unconsumed_tail:
                raise PayloadTooBig(None, max_size)
        except zlib.error as exc:
            raise ProtocolError("decompression failed") from exc
        return Frame(frame.opcode, out, frame.fin, False, frame.rsv2, frame.rsv3)

    def encode(self, frame: Frame) -> Frame:
        """Compress a data frame (RSV1 set on the first frame of the message)."""
        if frame.opcode in CTRL_OPCODES:
            return frame
        if frame.opcode is not Opcode.CONT and (
            self._encoder is None or self.local_no_context_takeover
        ):
            self._encoder = zlib.compressobj(
                wbits=-self.local_max_window_bits, **self.compress_settings
            )
        data = self._encoder.compress(frame.data) + self._encoder.flush(zlib.Z_SYNC_FLUSH)
        if frame.fin:
            data = data[:-4]
        return Frame(
            frame.opcode, data, frame.fin, frame.opcode is not Opcode.CONT, frame.rsv2, frame.rsv3
        )


class ClientPerMessageDeflateFactory(ClientExtensionFactory):
    """Client side of permessage-deflate (RFC 7692 §7.1); websockets 17.4's parameters.

    Args:
        server_no_context_takeover: Ask the server not to use context takeover.
        client_no_context_takeover: Promise not to use it ourselves.
        server_max_window_bits: Largest server window to accept, 8-15, or None.
        client_max_window_bits: Our window limit, 9-15, True (offer the parameter without a
            value: the server may pick), or None.
        compress_settings: ``zlib.compressobj`` keywords but ``wbits`` (femtows honours
            ``level`` and ``memLevel``).

    Raises:
        ValueError: A value is out of range, or ``compress_settings`` contains ``wbits``.
    """

    name = ExtensionName("permessage-deflate")

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: Optional[int] = None,
        client_max_window_bits: Union[int, Literal[True], None] = True,
        compress_settings: Optional[Dict[str, Any]] = None,
    ) -> None:
        if not (server_max_window_bits is None or 8 <= server_max_window_bits <= 15):
            raise ValueError("server_max_window_bits must be between 8 and 15")
        if not (
            client_max_window_bits is None
            or client_max_window_bits is True
            or 9 <= client_max_window_bits <= 15
        ):
            raise ValueError("client_max_window_bits must be between 9 and 15")
        if compress_settings is not None and "wbits" in compress_settings:
            raise ValueError(
                "compress_settings must not include wbits, set client_max_window_bits instead"
            )
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_settings = compress_settings

    def to_config(self) -> handshake.WSDeflateConfig:
        """The core's configuration for this factory (``ws_connect(compression=...)``).

        Raises:
            ValueError: ``compress_settings`` has keywords the core does not support.
        """
        level, mem_level = _core_settings(self.compress_settings)
        return handshake.WSDeflateConfig(
            server_no_context_takeover=self.server_no_context_takeover,
            client_no_context_takeover=self.client_no_context_takeover,
            server_max_window_bits=self.server_max_window_bits,
            client_max_window_bits=self.client_max_window_bits,
            compress_level=level,
            mem_level=mem_level,
        )

    def get_request_params(self) -> List[ExtensionParameter]:
        """The offer's parameters, in websockets' order."""
        return _params_list(handshake.deflate_offer(self.to_config()))

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> PerMessageDeflate:
        """Check the server's answer against the offer; return the extension.

        Raises:
            NegotiationError: (or DuplicateParameter, InvalidParameterName,
                InvalidParameterValue) the answer is not acceptable.
        """
        if any(other.name == self.name for other in accepted_extensions):
            raise NegotiationError(f"received duplicate {self.name}")
        try:
            agreed = handshake.negotiate_deflate_response(self.to_config(), list(params))
        except handshake.DeflateNegotiationError as exc:
            raise _websockets_error(exc) from None
        return PerMessageDeflate.from_params(agreed, self.compress_settings)


def enable_client_permessage_deflate(
    extensions: Optional[Sequence[ClientExtensionFactory]],
) -> Sequence[ClientExtensionFactory]:
    """``extensions`` plus permessage-deflate with websockets' client defaults
    (``client_max_window_bits`` offered, memLevel 5), unless already there."""
    if extensions is None:
        extensions = []
    if not any(factory.name == ClientPerMessageDeflateFactory.name for factory in extensions):
        extensions = list(extensions) + [
            ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5})
        ]
    return extensions


class ServerPerMessageDeflateFactory(ServerExtensionFactory):
    """Server side of permessage-deflate (RFC 7692 §7.1); websockets 17.4's parameters.

    Args:
        server_no_context_takeover: Never use context takeover ourselves.
        client_no_context_takeover: Require the client not to use it.
        server_max_window_bits: Our window limit, 9-15, or None.
        client_max_window_bits: The client's window limit, 8-15, or None; applied when the
            client offers the parameter.
        compress_settings: ``zlib.compressobj`` keywords but ``wbits``.
        require_client_max_window_bits: Decline offers without ``client_max_window_bits``.

    Raises:
        ValueError: A value is out of range, ``compress_settings`` contains ``wbits``, or
            ``require_client_max_window_bits`` without ``client_max_window_bits``.
    """

    name = ExtensionName("permessage-deflate")

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: Optional[int] = None,
        client_max_window_bits: Optional[int] = None,
        compress_settings: Optional[Dict[str, Any]] = None,
        require_client_max_window_bits: bool = False,
    ) -> None:
        if not (server_max_window_bits is None or 9 <= server_max_window_bits <= 15):
            raise ValueError("server_max_window_bits must be between 9 and 15")
        if not (client_max_window_bits is None or 8 <= client_max_window_bits <= 15):
            raise ValueError("client_max_window_bits must be between 8 and 15")
        if compress_settings is not None and "wbits" in compress_settings:
            raise ValueError(
                "compress_settings must not include wbits, set server_max_window_bits instead"
            )
        if client_max_window_bits is None and require_client_max_window_bits:
            raise ValueError(
                "require_client_max_window_bits is enabled, "
                "but client_max_window_bits isn't configured"
            )
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_settings = compress_settings
        self.require_client_max_window_bits = require_client_max_window_bits

    def to_config(self) -> handshake.WSDeflateConfig:
        """The core's configuration for this factory (``ws_create_server(compression=...)``).

        Raises:
            ValueError: ``compress_settings`` has keywords the core does not support.
        """
        level, mem_level = _core_settings(self.compress_settings)
        return handshake.WSDeflateConfig(
            server_no_context_takeover=self.server_no_context_takeover,
            client_no_context_takeover=self.client_no_context_takeover,
            server_max_window_bits=self.server_max_window_bits,
            client_max_window_bits=self.client_max_window_bits,
            require_client_max_window_bits=self.require_client_max_window_bits,
            compress_level=level,
            mem_level=mem_level,
        )

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> Tuple[List[ExtensionParameter], PerMessageDeflate]:
        """Accept one offer: the answer's parameters and the extension.

        Raises:
            NegotiationError: (or a subclass) the offer must be declined.
        """
        if any(other.name == self.name for other in accepted_extensions):
            raise NegotiationError(f"skipped duplicate {self.name}")
        try:
            agreed = handshake.negotiate_deflate_offer(self.to_config(), list(params))
        except handshake.DeflateNegotiationError as exc:
            raise _websockets_error(exc) from None
        return (
            _params_list(agreed.header),
            PerMessageDeflate.from_params(agreed, self.compress_settings),
        )


def enable_server_permessage_deflate(
    extensions: Optional[Sequence[ServerExtensionFactory]],
) -> Sequence[ServerExtensionFactory]:
    """``extensions`` plus permessage-deflate with websockets' server defaults (window bits
    12/12, memLevel 5), unless already there."""
    if extensions is None:
        extensions = []
    if not any(factory.name == ServerPerMessageDeflateFactory.name for factory in extensions):
        extensions = list(extensions) + [
            ServerPerMessageDeflateFactory(
                server_max_window_bits=12,
                client_max_window_bits=12,
                compress_settings={"memLevel": 5},
            )
        ]
    return extensions
