"""Threading server: each connection's handler in its own thread; handler errors close 1011;
shutdown closes open connections with the given code and reason."""

import logging
import threading

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.server import serve

logging.basicConfig(format="%(levelname)s %(name)s %(message)s", level=logging.ERROR)
started = threading.Barrier(4)


def handler(websocket):
    name = websocket.recv()
    if name == "boom":
        raise RuntimeError("boom")
    if name.startswith("wait"):
        started.wait(10)
        websocket.send(f"{name} in a thread of its own: "
                       f"{threading.current_thread() is not threading.main_thread()}")
        websocket.recv()  # until shutdown
        return
    websocket.send(f"hello {name}")


with serve(handler, "127.0.0.1", 0) as server:
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    uri = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
    with connect(uri) as ws:
        ws.send("boom")
        try:
            ws.recv()
        except ConnectionClosed as exc:
            print(type(exc).__name__, exc)
    clients = [connect(uri, legacy=True) for _ in range(3)]
    for index, ws in enumerate(clients):
        ws.send(f"wait{index}")
    started.wait(10)
    print(sorted(ws.recv(timeout=10) for ws in clients))
    print("connections", len(server.connections))
    server.shutdown(code=1012, reason="restarting")
    for ws in clients:
        try:
            ws.recv(timeout=10)
        except ConnectionClosed as exc:
            print(type(exc).__name__, exc)
thread.join(10)
print("server thread alive:", thread.is_alive())
