"""Threading router: werkzeug URL map, URL values as handler arguments, 404, redirect."""

import threading

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.sync.router import route
from werkzeug.routing import Map, Rule


def hello(websocket):
    websocket.send("hello")


def channel(websocket, channel_id):
    websocket.send(f"channel {channel_id} ({type(channel_id).__name__})")


url_map = Map([
    Rule("/", endpoint=hello),
    Rule("/channel/<int:channel_id>", endpoint=channel),
    Rule("/old", redirect_to="/"),
])

with route(url_map, "127.0.0.1", 0) as server:
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    base = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
    with connect(base + "/") as ws:
        print(ws.recv())
    with connect(base + "/channel/42") as ws:
        print(ws.recv())
    with connect(base + "/old") as ws:
        print("redirected:", ws.recv(), ws.request.path)
    try:
        with connect(base + "/nowhere"):
            pass
    except InvalidStatus as exc:
        print(type(exc).__name__, exc, exc.response.body)
    server.shutdown()
thread.join(10)
