"""Serve an ASGI app with uvicorn inside the running event loop, on 127.0.0.1 and a free port.

    async with serve_uvicorn(app, ws="wsproto") as server:
        url = server.url("/echo")          # ws://127.0.0.1:<port>/echo

``ws`` is anything uvicorn's ``Config(ws=...)`` takes: a protocol class (``FemtowsProtocol``),
a built-in name (``"websockets-sansio"``, ``"wsproto"``) or an import string.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, AsyncIterator

import uvicorn

from femtows.uvicorn import FemtowsProtocol

# The implementations the tests compare: femtows, and uvicorn's built-in ones.
WS_IMPLS: dict[str, Any] = {
    "femtows": FemtowsProtocol,
    "websockets-sansio": "websockets-sansio",
    "wsproto": "wsproto",
}
STOP_TIMEOUT = 15.0


class RunningServer:
    """A started uvicorn server: its port, URLs, and the server object itself."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Future[None], port: int,
                 scheme: str) -> None:
        self.server = server
        self.task = task
        self.port = port
        self.scheme = scheme

    async def stop(self) -> None:
        """Shut uvicorn down as on SIGTERM (graceful: open WebSockets get 1012) and wait."""
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), STOP_TIMEOUT)
        except BaseException:
            self.task.cancel()
            raise

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


@contextlib.asynccontextmanager
async def serve_uvicorn(app: Any, ws: Any, **config: Any) -> AsyncIterator[RunningServer]:
    """Run ``uvicorn.Server(Config(app, ws=ws, **config))`` for the duration of the block,
    then shut it down gracefully (open WebSockets get 1012) and wait for it."""
    config.setdefault("log_config", None)  # leave logging alone: records reach caplog
    config.setdefault("log_level", "warning")
    config.setdefault("lifespan", "off")
    config.setdefault("timeout_graceful_shutdown", 5)
    # A socket that listens before uvicorn starts: clients may connect at once (the kernel
    # queues them until uvicorn accepts), no waiting for startup.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    cfg = uvicorn.Config(app, host="127.0.0.1", port=port, ws=ws, **config)
    server = uvicorn.Server(cfg)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    running = RunningServer(server, task, port, "wss" if cfg.is_ssl else "ws")
    try:
        yield running
    finally:
        await running.stop()

