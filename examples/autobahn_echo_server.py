"""Naive echo server for the Autobahn TestSuite (fuzzingclient mode).

Written with the core API exactly as a picows program would be: every data frame is
echoed back as it arrived (same opcode, CONTINUATION frames included, same fin bit),
with no reassembly and no validation of its own. Strictness (UTF-8, fragmentation
rules, close codes, control frames, ...) is the library's job. PINGs are answered by
the library's auto-pong.

Prints ``LISTENING <port>`` (flushed) once listening, then serves forever:

    python examples/autobahn_echo_server.py --port 0 --loop uvloop
    kosoku -m fuzzingclient 127.0.0.1:<port>

With ``--compression`` the server accepts permessage-deflate offers (``compression="deflate"``):
frames arrive decompressed and the echo is compressed again by the library (Autobahn 12.*, 13.*).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from typing import Awaitable, Optional

from femtows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

# Autobahn 9.1.6 / 9.2.6 send a single 16 MiB frame; leave room above that.
MAX_FRAME_SIZE = 32 * 1024 * 1024

DATA_FRAMES = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION)


class EchoListener(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in DATA_FRAMES:
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)
        # PING is answered by the library (auto-pong); an unsolicited PONG is not echoed
        # (Autobahn 2.7-2.9 expect nothing back).


def listener_factory(request: WSUpgradeRequest) -> WSListener:
    return EchoListener()


async def serve(
    host: str, port: int, ssl_context: Optional[ssl.SSLContext], compression: Optional[str] = None
) -> None:
    server = await ws_create_server(
        listener_factory, host, port, max_frame_size=MAX_FRAME_SIZE, ssl=ssl_context,
        compression=compression,
    )
    bound_port = server.sockets[0].getsockname()[1]
    print(f"LISTENING {bound_port}", flush=True)
    async with server:
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001, help="0 picks an ephemeral port")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve wss://")
    parser.add_argument(
        "--compression", action="store_true", help="accept permessage-deflate offers"
    )
    args = parser.parse_args()

    ssl_context: Optional[ssl.SSLContext] = None
    if args.tls:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls[0], args.tls[1])

    try:
        compression = "deflate" if args.compression else None
        run(serve(args.host, args.port, ssl_context, compression), args.loop)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
