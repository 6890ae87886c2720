"""Base classes of WebSocket extensions, with websockets 17.4's names and methods.

femtows runs permessage-deflate inside its core (zlib from Cython, frame by frame), so the
drop-in does not call ``encode`` / ``decode`` per frame; the classes keep websockets' interface
for code that implements or inspects extensions.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from ..frames import Frame
from ..typing import ExtensionName, ExtensionParameter

__all__ = ["Extension", "ClientExtensionFactory", "ServerExtensionFactory"]


class Extension:
    """A negotiated extension, one per connection.

    Attributes:
        name: The extension token, e.g. ``"permessage-deflate"``.
    """

    name: ExtensionName

    def decode(self, frame: Frame, *, max_size: Optional[int] = None) -> Frame:
        """Decode an incoming frame.

        Args:
            frame: The frame as received.
            max_size: Largest payload allowed after decoding, or None.

        Raises:
            PayloadTooBig: The decoded payload exceeds ``max_size``.
            ProtocolError: The frame is invalid for this extension.
        """
        raise NotImplementedError

    def encode(self, frame: Frame) -> Frame:
        """Encode an outgoing frame."""
        raise NotImplementedError


class ClientExtensionFactory:
    """Client side of an extension's negotiation.

    Attributes:
        name: The extension token.
    """

    name: ExtensionName

    def get_request_params(self) -> Sequence[ExtensionParameter]:
        """The parameters to offer in ``Sec-WebSocket-Extensions``."""
        raise NotImplementedError

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> Extension:
        """Check the server's answer; return the extension to use.

        Raises:
            NegotiationError: The answer is not acceptable.
        """
        raise NotImplementedError


class ServerExtensionFactory:
    """Server side of an extension's negotiation.

    Attributes:
        name: The extension token.
    """

    name: ExtensionName

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> Tuple[List[ExtensionParameter], Extension]:
        """Accept an offer: return the answer's parameters and the extension to use.

        Raises:
            NegotiationError: The offer must be declined (the next one is tried).
        """
        raise NotImplementedError
