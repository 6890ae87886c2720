"""Threading API: messages of every kind, decode flags, streaming, close codes, exceptions."""

import threading

from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.protocol import State
from websockets.sync.client import connect
from websockets.sync.server import serve


def handler(websocket):
    for message in websocket:
        if message == "close-4000":
            websocket.close(4000, "custom")
            return
        if message == "fragments":
            websocket.send(["frag", "ment", "ed"])
            websocket.send([b"\x01", b"\x02"])
            continue
        websocket.send(message)


with serve(handler, "127.0.0.1", 0) as server:
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    uri = f"ws://127.0.0.1:{server.socket.getsockname()[1]}/path?q=1"
    with connect(uri) as ws:
        print("state", ws.state, ws.request.path, ws.response.status_code, ws.subprotocol)
        ws.send("text")
        print(repr(ws.recv()))
        ws.send(b"\x00binary")
        print(repr(ws.recv()))
        ws.send(bytearray(b"ba"))
        print(repr(ws.recv()))
        ws.send(memoryview(b"mv"))
        print(repr(ws.recv()))
        ws.send("as bytes")
        print(repr(ws.recv(decode=False)))
        ws.send(b"as text")
        print(repr(ws.recv(decode=True)))
        ws.send("forced binary", text=False)
        print(repr(ws.recv()))
        ws.send(b"forced text", text=True)
        print(repr(ws.recv()))
        ws.send("fragments")
        print(repr(ws.recv()))
        print(list(ws.recv_streaming()))
        ws.send(["a", "b"])
        print(repr(ws.recv()))
        for bad in [{"a": 1}, 42]:
            try:
                ws.send(bad)
            except TypeError as exc:
                print("TypeError", exc)
        print("latency >= 0", ws.latency >= 0)
        ws.send("close-4000")
        try:
            ws.recv()
        except ConnectionClosedError as exc:
            print(type(exc).__name__, exc, exc.rcvd.code, exc.sent.code)
        print("state", ws.state, ws.close_code, ws.close_reason)
        try:
            ws.send("after close")
        except ConnectionClosed as exc:
            print("send:", type(exc).__name__, exc)
    with connect(uri) as ws:
        ws.send("x")
        ws.recv()
    print("closed", ws.state is State.CLOSED, ws.close_code)
    try:
        ws.recv()
    except ConnectionClosedOK as exc:
        print(type(exc).__name__, exc)
    server.shutdown()
thread.join(10)
