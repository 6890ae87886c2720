"""Echo server for the Autobahn TestSuite (fuzzingclient mode) on the threading API.

A websockets 17.4 ``websockets.sync`` program with the import pointed at
``femtows.websockets.sync``: ``for message in ws: ws.send(message)`` in one thread per
connection, ``max_size=2**25``, ``compression=None``, no keepalive; fragments per message
raised through WEBSOCKETS_MAX_FRAGMENTS (Autobahn 9.3/9.4 send 65,536 fragments).
``--loop`` selects the shared background loop (FEMTOWS_SYNC_LOOP). Prints ``LISTENING <port>``
once listening:

    python examples/websockets/autobahn_echo_sync_server.py --port 0
    kosoku -m fuzzingclient 127.0.0.1:<port>
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from typing import Optional

os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", str(2**17))

from femtows.websockets.exceptions import ConnectionClosed  # noqa: E402
from femtows.websockets.sync.server import ServerConnection, serve  # noqa: E402


def echo(ws: ServerConnection) -> None:
    try:
        for message in ws:
            ws.send(message)
    except ConnectionClosed:
        pass  # the peer failed the connection: nothing left to echo


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001, help="0 picks an ephemeral port")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve wss://")
    args = parser.parse_args()
    os.environ["FEMTOWS_SYNC_LOOP"] = args.loop
    ssl_context: Optional[ssl.SSLContext] = None
    if args.tls:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls[0], args.tls[1])
    with serve(echo, args.host, args.port, max_size=2**25, compression=None,
               ping_interval=None, ssl=ssl_context) as server:
        print(f"LISTENING {server.socket.getsockname()[1]}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
