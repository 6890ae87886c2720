"""The seed's threading client (websockets introduction), against a threading echo server.

The client is the introduction's ``hello()``; the server listens on a free port.
"""

import threading

from websockets.sync.client import connect
from websockets.sync.server import serve


def echo(websocket):
    for message in websocket:
        websocket.send(message)


def hello(port):
    with connect(f"ws://localhost:{port}") as websocket:
        websocket.send("Hello world!")
        message = websocket.recv()
        print(f"Received: {message}")


with serve(echo, "localhost", 0) as server:
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    hello(server.socket.getsockname()[1])
    server.shutdown()
thread.join(10)
print("server thread alive:", thread.is_alive())
