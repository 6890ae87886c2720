"""connect() without ``with``: DeprecationWarning on first use (websockets 17.x), not with
legacy=True; legacy=False returns a reconnect object; broadcast and unix sockets."""

import os
import tempfile
import threading
import warnings

from websockets.sync.client import connect, reconnect, unix_connect
from websockets.sync.server import broadcast, serve, unix_serve

received = threading.Barrier(3)


def handler(websocket):
    if websocket.recv() == "subscribe":
        received.wait(10)
        websocket.recv()
        return
    websocket.send("pong")


with serve(handler, "127.0.0.1", 0) as server:
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    uri = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ws = connect(uri)
        ws.send("ping")
        print(ws.recv())
        ws.close()
        print([(w.category.__name__, str(w.message)) for w in caught])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ws = connect(uri, legacy=True)
        ws.send("ping")
        print(ws.recv())
        ws.close()
        print(len(caught))
    print(type(connect(uri, legacy=False)) is reconnect)
    subscribers = [connect(uri, legacy=True) for _ in range(2)]
    for ws in subscribers:
        ws.send("subscribe")
    received.wait(10)
    broadcast(server.connections, "news")
    try:
        broadcast(server.connections, 42)
    except TypeError as exc:
        print("TypeError", exc)
    print([ws.recv(timeout=10) for ws in subscribers])
    for ws in subscribers:
        ws.close()
    server.shutdown()
thread.join(10)

path = os.path.join(tempfile.mkdtemp(), "ws.sock")
with unix_serve(handler, path) as server:
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    print("fileno", server.fileno() >= 0)
    with unix_connect(path) as ws:
        ws.send("ping")
        print("unix", ws.recv())
    server.shutdown()
thread.join(10)
