"""Threading recv with a timeout: TimeoutError texts, polling, a message arriving later,
ConcurrencyError from two threads, ping events and wait_closed."""

import threading

from websockets.exceptions import ConcurrencyError
from websockets.sync.client import connect
from websockets.sync.server import serve

go = threading.Event()


def handler(websocket):
    websocket.recv()
    go.wait(10)
    websocket.send("late")
    websocket.send("second")
    websocket.recv()


with serve(handler, "127.0.0.1", 0) as server:
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    with connect(f"ws://127.0.0.1:{server.socket.getsockname()[1]}") as ws:
        ws.send("start")
        for timeout in [0, -1, 0.05]:
            try:
                ws.recv(timeout=timeout)
            except TimeoutError as exc:
                print(type(exc).__name__, exc)
        errors = []
        blocked = threading.Thread(target=lambda: print("got", ws.recv(timeout=10)))
        blocked.start()
        while True:  # wait until the other thread is inside recv
            try:
                ws.recv(timeout=0)
            except ConcurrencyError as exc:
                print(type(exc).__name__, exc)
                break
            except TimeoutError:
                continue
        go.set()
        blocked.join(10)
        print(ws.recv(timeout=10))
        event = ws.ping(b"abc")
        print("pong", event.wait(10))
        event = ws.ping("text")
        print("pong", event.wait(10))
        try:
            ws.ping(42)
        except TypeError as exc:
            print("TypeError", exc)
        ws.pong(b"unsolicited")
        print("wait_closed before close:", ws.wait_closed(timeout=0.01))
        ws.send("done")
    print("wait_closed after close:", ws.wait_closed(timeout=10))
    server.shutdown()
thread.join(10)
