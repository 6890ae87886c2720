"""A Starlette WebSocket echo endpoint served by uvicorn with femtows's WebSocket protocol.

The application is plain Starlette: nothing in it knows about femtows. Only the server
configuration changes, ``ws=FemtowsProtocol`` (or ``--ws femtows.uvicorn:FemtowsProtocol`` on
uvicorn's command line)::

    python examples/uvicorn_echo.py --port 8000                  # femtows
    python examples/uvicorn_echo.py --port 0 --ws wsproto        # uvicorn's built-in wsproto
    uvicorn examples.uvicorn_echo:app --ws femtows.uvicorn:FemtowsProtocol

Prints ``LISTENING <port>`` (flushed) once the socket listens, then serves until SIGINT/SIGTERM
(graceful: open WebSockets get CLOSE 1012). tests/autobahn/run_autobahn.py --uvicorn runs the
Autobahn TestSuite against it.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any, Optional

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from femtows.uvicorn import FemtowsProtocol


async def echo(websocket: WebSocket) -> None:
    """Echo every message with its type until the client closes."""
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


app = Starlette(routes=[WebSocketRoute("/", echo), WebSocketRoute("/echo", echo)])


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ws", default="femtows",
                        help="femtows (default), or a uvicorn --ws value: websockets-sansio, "
                             "wsproto, websockets, an import string")
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"))
    # Autobahn's 9.* cases send messages up to 16 MiB.
    parser.add_argument("--max-size", type=int, default=32 * 1024 * 1024)
    args = parser.parse_args(argv)

    ws: Any = FemtowsProtocol if args.ws == "femtows" else args.ws
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    config = uvicorn.Config(app, host=args.host, port=sock.getsockname()[1], ws=ws,
                            loop=args.loop, ws_max_size=args.max_size, lifespan="off",
                            log_level="warning", ws_ping_interval=None)
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
