"""Echo server and client with femtows.websockets.sync, the websockets-style threading API.

    python examples/threading_echo.py

No asyncio in sight: ``serve`` runs a handler in a thread per connection, ``connect`` returns a
blocking connection. The same program as websockets' threading introduction, on femtows: only
the imports differ. The server runs in a background thread of this process here.
"""

from __future__ import annotations

import threading

from femtows.websockets.exceptions import ConnectionClosedOK
from femtows.websockets.sync.client import connect
from femtows.websockets.sync.server import ServerConnection, serve


def echo(websocket: ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def main() -> None:
    with serve(echo, "127.0.0.1", 0) as server:
        port = server.socket.getsockname()[1]
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        with connect(f"ws://127.0.0.1:{port}") as websocket:
            websocket.send("Hello world!")
            print(f"received: {websocket.recv()}")
            websocket.send(b"\x00\x01binary")
            print(f"received: {websocket.recv(timeout=10)!r}")
        try:
            websocket.recv()
        except ConnectionClosedOK as exc:
            print(f"closed: {exc}")
        server.shutdown()
        thread.join()


if __name__ == "__main__":
    main()
