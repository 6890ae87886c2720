"""Threading server with HTTP Basic auth: credentials list and check function."""

import threading

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.sync.server import basic_auth, serve


def handler(websocket):
    websocket.send(f"hello {websocket.username}")


def check(username, password):
    return password == username[::-1]


for auth in [basic_auth(realm="test", credentials=[("alice", "secret"), ("bob", "pw")]),
             basic_auth(check_credentials=check)]:
    with serve(handler, "127.0.0.1", 0, process_request=auth) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        port = server.socket.getsockname()[1]
        for userinfo in ["alice:secret@", "bob:pw@", "abc:cba@", "alice:wrong@", ""]:
            try:
                with connect(f"ws://{userinfo}127.0.0.1:{port}/") as ws:
                    print(userinfo, "->", ws.recv())
            except InvalidStatus as exc:
                print(userinfo, "->", exc, exc.response.headers.get("WWW-Authenticate"),
                      exc.response.body)
        server.shutdown()
    thread.join(10)
for bad in [dict(), dict(credentials=("a", "b"), check_credentials=check)]:
    try:
        basic_auth(**bad)
    except ValueError as exc:
        print("ValueError", exc)
try:
    basic_auth(credentials=[("a", 1)])
except TypeError as exc:
    print("TypeError", exc)
