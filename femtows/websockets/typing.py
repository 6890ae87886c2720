"""Types used in the signatures of :mod:`femtows.websockets`, twins of ``websockets.typing``."""

from __future__ import annotations

import http
import logging
import os
from typing import Any, NewType, Optional, Sequence, Tuple, Union

__all__ = [
    "Data",
    "LoggerLike",
    "StatusLike",
    "Origin",
    "Subprotocol",
    "ExtensionName",
    "ExtensionParameter",
]

Data = Union[str, bytes]
"""A WebSocket message: :class:`str` for a text frame, :class:`bytes` for a binary frame."""

BytesLike = Union[bytes, bytearray, memoryview]
"""What is accepted where :class:`bytes` is expected."""

DataLike = Union[str, bytes, bytearray, memoryview]
"""What is accepted where :data:`Data` is expected."""

LoggerLike = Union[logging.Logger, "logging.LoggerAdapter[Any]"]
"""What is accepted where a :class:`logging.Logger` is expected."""

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
"""What is accepted where a filesystem path is expected."""

StatusLike = Union[http.HTTPStatus, int]
"""What is accepted where an :class:`http.HTTPStatus` is expected."""

Origin = NewType("Origin", str)
"""Value of an ``Origin`` header."""

Subprotocol = NewType("Subprotocol", str)
"""A subprotocol in a ``Sec-WebSocket-Protocol`` header."""

ExtensionName = NewType("ExtensionName", str)
"""Name of a WebSocket extension."""

ExtensionParameter = Tuple[str, Optional[str]]
"""A parameter of a WebSocket extension: ``(name, value or None)``."""

ExtensionHeader = Tuple[ExtensionName, Sequence[ExtensionParameter]]
"""An extension in a ``Sec-WebSocket-Extensions`` header."""

ConnectionOption = NewType("ConnectionOption", str)
"""An option in a ``Connection`` header."""

UpgradeProtocol = NewType("UpgradeProtocol", str)
"""A protocol in an ``Upgrade`` header."""
