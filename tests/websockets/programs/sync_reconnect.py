"""Threading reconnect: transient 503s are retried (custom delays), fatal errors raised,
ConnectionClosed continues the loop; connect(legacy=False) behaves like reconnect."""

import threading

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect, reconnect
from websockets.sync.server import serve

attempts = []


def process_request(connection, request):
    attempts.append(request.path)
    if len(attempts) in (1, 2):
        return connection.respond(503, "try again\n")
    if request.path == "/fatal":
        return connection.respond(403, "no\n")
    return None


def handler(websocket):
    websocket.send(f"attempt {len(attempts)}")
    websocket.close(1001, "bye")


def no_delay():
    while True:
        yield 0


with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    base = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
    count = 0
    for ws in reconnect(base + "/", reconnect_delays=no_delay):
        try:
            print(ws.recv())
            ws.recv()
        except ConnectionClosed as exc:
            print(type(exc).__name__, exc)
            count += 1
            if count == 2:
                break
            continue
    try:
        for _ws in connect(base + "/fatal", legacy=False, reconnect_delays=no_delay):
            print("unexpected")
    except InvalidStatus as exc:
        print("fatal:", exc)

    def custom(exc):
        return RuntimeError("custom fatal") if isinstance(exc, InvalidStatus) else None

    try:
        for _ws in reconnect(base + "/fatal", process_exception=custom):
            pass
    except RuntimeError as exc:
        print(type(exc).__name__, exc, type(exc.__cause__).__name__)
    print(attempts)
    server.shutdown()
thread.join(10)
