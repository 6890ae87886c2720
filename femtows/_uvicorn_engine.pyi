"""Type stubs for the compiled uvicorn engine (femtows/_uvicorn_engine.pyx)."""

import asyncio
import collections
from typing import Any, Optional

from femtows._core.core import WSFrame, WSListener, WSTransport

_CONNECTING: int
_RESPONDING: int
_OPEN: int
_CLOSED: int

class Engine:
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    max_size: int
    max_queue: int
    _state: int
    _ws: Optional[WSTransport]
    _queue: collections.deque[dict[str, Any]]
    _waiter: Optional[asyncio.Future[dict[str, Any]]]
    _disconnect: Optional[dict[str, Any]]
    _writable: Optional[asyncio.Future[None]]
    _read_paused: bool
    _lost: bool
    _app_closed: bool
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def _deliver(self, message: dict[str, Any]) -> None: ...
    async def receive(self) -> dict[str, Any]: ...
    async def send(self, message: dict[str, Any]) -> None: ...

class Listener(WSListener):
    def __init__(self, engine: Engine) -> None: ...
    def on_ws_connected(self, transport: WSTransport) -> None: ...
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None: ...
    def on_ws_disconnected(self, transport: WSTransport) -> None: ...
