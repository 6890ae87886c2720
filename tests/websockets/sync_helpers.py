"""Helpers shared by the threading-API tests (tests/websockets/test_sync_*.py)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any, Callable, Optional

WAIT = 10.0
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_upgrade(sock: socket.socket) -> None:
    """Read a WebSocket upgrade request from ``sock`` and answer it with a 101."""
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")


def recv_in_thread(ws: Any, outcome: list[BaseException]) -> threading.Thread:
    """Start a thread blocked in ``ws.recv(timeout=WAIT)`` (its exception goes to
    ``outcome``); returns once that thread is running."""
    entered = threading.Event()

    def receive() -> None:
        entered.set()
        try:
            ws.recv(timeout=WAIT)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=receive)
    thread.start()
    assert entered.wait(WAIT)
    return thread


class SignalPoker:
    """Sends SIGUSR1 to the main thread until ``interrupted`` is set (the test's handler
    sets it when the signal reached the code under test); after WAIT it gives up and calls
    ``give_up`` (closing the connection, so that a recv the signal cannot reach ends)."""

    def __init__(self, interrupted: threading.Event, give_up: Callable[[], None]) -> None:
        self.main_id = threading.main_thread().ident
        self.interrupted = interrupted
        self.give_up = give_up
        self.thread: Optional[threading.Thread] = None

    def poke(self) -> None:
        assert self.main_id is not None
        for _ in range(int(WAIT / 0.02)):
            if self.interrupted.wait(0.02):
                return
            signal.pthread_kill(self.main_id, signal.SIGUSR1)
        self.give_up()

    def __enter__(self) -> SignalPoker:
        self.thread = threading.Thread(target=self.poke)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.thread is not None
        self.thread.join(WAIT + 1)


@contextlib.contextmanager
def sync_server(module: Any, handler: Callable[[Any], None], **kwargs: Any) -> Iterator[str]:
    """A threading-API server (femtows or websockets) serving in a thread; yields its URI."""
    server = module.serve(handler, "127.0.0.1", 0, **kwargs)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
    finally:
        server.shutdown()
        thread.join(WAIT)
        assert not thread.is_alive()
