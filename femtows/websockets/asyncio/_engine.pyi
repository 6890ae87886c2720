"""Type stubs for the compiled engine (femtows/websockets/asyncio/_engine.pyx)."""

import asyncio
from typing import Any, AsyncIterator, Dict, List, Literal, Optional, Tuple, Union, overload

from femtows._core.core import WSFrame, WSListener, WSTransport

MAX_FRAGMENTS: int

class _StreamEnded(Exception): ...

class Engine(WSListener):
    _wst: WSTransport
    _loop: asyncio.AbstractEventLoop
    _state: int
    _is_client: bool
    _q_high: int
    _q_low: int
    _recv_busy: bool
    _stream_ended: bool
    _rx_open: bool
    _max_message: int
    _max_fragment: int
    _discard: bool
    _send_in_progress: Optional[asyncio.Future[None]]
    _write_paused: bool
    _drain_waiters: List[asyncio.Future[None]]
    _pending_pings: Dict[bytes, Tuple[asyncio.Future[float], float]]
    _handoff_op: int
    _debug: bool
    def _put_back(self, entries: List[Tuple[int, bool, Any]]) -> None: ...
    async def _get_frame(self) -> Tuple[int, bool, Any]: ...
    @overload
    async def recv(self, decode: Literal[True]) -> str: ...
    @overload
    async def recv(self, decode: Literal[False]) -> bytes: ...
    @overload
    async def recv(self, decode: Optional[bool] = None) -> Union[str, bytes]: ...
    async def _recv_assemble(self, decode: Optional[bool]) -> Any: ...
    async def send(self, message: Any, *, text: Optional[bool] = None) -> None: ...
    async def _drain(self) -> None: ...
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None: ...

class MessageIterator(AsyncIterator[Any]):
    def __init__(self, connection: Any) -> None: ...
    def __aiter__(self) -> MessageIterator: ...
    async def __anext__(self) -> Any: ...
    async def aclose(self) -> None: ...
