"""Small helpers of the opening handshake and framing (twin of ``websockets.utils``)."""

from __future__ import annotations

import base64
import hashlib
import os
import socket

from .frames import apply_mask

__all__ = ["accept_key", "apply_mask", "get_socket_name", "generate_key"]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""The GUID RFC 6455 §1.3 appends to ``Sec-WebSocket-Key``."""


def generate_key() -> str:
    """Return a random ``Sec-WebSocket-Key`` value (16 random bytes, base64)."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` value answering ``Sec-WebSocket-Key`` ``key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def get_socket_name(sock: socket.socket) -> str:
    """Return the socket's own address as text: ``host:port``, ``[host]:port`` or a path.

    Raises:
        AssertionError: a socket family other than IPv4, IPv6 or Unix (as websockets).
    """
    name = sock.getsockname()
    if sock.family == socket.AF_INET:
        return f"{name[0]}:{name[1]}"
    if sock.family == socket.AF_INET6:
        return f"[{name[0]}]:{name[1]}"
    if sock.family == socket.AF_UNIX:
        return str(name)
    raise AssertionError("unsupported socket family")
