"""Echo server for the Autobahn TestSuite (fuzzingclient mode), written the websockets way.

The program is a websockets 17.4 program with ``websockets`` replaced by
``femtows.websockets`` in the import: ``async for message in ws: await ws.send(message)``,
messages reassembled and checked by the library (UTF-8, fragmentation, close codes),
``max_size=2**25`` (Autobahn 9.x sends 16 MiB messages), ``compression=None`` (the default
"deflate" offers nothing yet), no keepalive (Autobahn's long cases must not be pinged).
Autobahn 9.3/9.4 send 4 MiB messages in up to 65,536 fragments, over websockets 17.4's
default limit of 4,096 fragments per message: the limit is raised through websockets' own
knob, the WEBSOCKETS_MAX_FRAGMENTS environment variable (read at import time).

Prints ``LISTENING <port>`` (flushed) once listening, then serves forever:

    python examples/websockets/autobahn_echo_server.py --port 0 --loop uvloop
    kosoku -m fuzzingclient 127.0.0.1:<port>
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from typing import Awaitable, Optional

os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", str(2**17))

from femtows.websockets.asyncio.server import ServerConnection, serve  # noqa: E402
from femtows.websockets.exceptions import ConnectionClosed  # noqa: E402


async def echo(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass  # the peer failed the connection: nothing left to echo


async def main_server(host: str, port: int, ssl_context: Optional[ssl.SSLContext]) -> None:
    async with serve(
        echo, host, port, max_size=2**25, compression=None, ping_interval=None,
        ssl=ssl_context,
    ) as server:
        bound_port = server.sockets[0].getsockname()[1]
        print(f"LISTENING {bound_port}", flush=True)
        await server.serve_forever()


def run(main: Awaitable[None], loop_name: str) -> None:
    loop: asyncio.AbstractEventLoop
    if loop_name == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001, help="0 picks an ephemeral port")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve wss://")
    args = parser.parse_args()

    ssl_context: Optional[ssl.SSLContext] = None
    if args.tls:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls[0], args.tls[1])

    try:
        run(main_server(args.host, args.port, ssl_context), args.loop)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
