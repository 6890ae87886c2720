"""Connection sides and states: :class:`Side`, :class:`State` (twins of ``websockets.protocol``).

The Sans-I/O ``Protocol`` class of websockets is not provided yet (a later issue): the asyncio
API of :mod:`femtows.websockets` runs on the femtows engine, not on a Sans-I/O state machine.
"""

from __future__ import annotations

import enum

__all__ = ["Side", "State", "SEND_EOF"]


class Side(enum.IntEnum):
    """Which end of the connection: :attr:`SERVER` (0) or :attr:`CLIENT` (1)."""

    SERVER = 0
    CLIENT = 1


SERVER = Side.SERVER
CLIENT = Side.CLIENT


class State(enum.IntEnum):
    """State of a WebSocket connection: CONNECTING (0), OPEN (1), CLOSING (2), CLOSED (3)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


CONNECTING = State.CONNECTING
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED

SEND_EOF = b""
"""Sentinel meaning "half-close the TCP connection" in websockets' Sans-I/O output."""
