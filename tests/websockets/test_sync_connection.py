"""femtows.websockets.sync (threading API): interop with websockets (asyncio and sync, both
directions), timeouts, closing from another thread, a vanishing peer, keepalive and close
timeouts while a thread is blocked in recv, errors compared with websockets.sync.

Plain (non-async) tests: every wait is bounded by a timeout; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import websockets.asyncio.server as ws_aserver
import websockets.exceptions as ws_exceptions
import websockets.sync.client as ws_client
import websockets.sync.server as ws_server

from femtows.websockets.exceptions import (
    ConcurrencyError,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidURI,
)
from femtows.websockets.protocol import State
from femtows.websockets.sync import client as f_client
from femtows.websockets.sync import server as f_server
from tests.websockets.reference import needs_reference
from tests.websockets.sync_helpers import (
    WAIT,
    SignalPoker,
    accept_upgrade,
    recv_in_thread,
    sync_server,
)


def echo(websocket: Any) -> None:
    for message in websocket:
        websocket.send(message)


@contextlib.contextmanager
def websockets_asyncio_server() -> Iterator[str]:
    """websockets' asyncio echo server on its own loop in a thread; yields its URI."""
    loop = asyncio.new_event_loop()
    started: list[Any] = []
    ready = threading.Event()

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        server = await ws_aserver.serve(handler, "127.0.0.1", 0)
        started.append(server)
        ready.set()
        await server.wait_closed()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    assert ready.wait(WAIT)
    server = started[0]
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        loop.call_soon_threadsafe(server.close)
        thread.join(WAIT)
        loop.close()


class RawPeer:
    """A TCP server that completes the WebSocket handshake, then does what the test says:
    nothing at all (no pong, no close reply), or vanish (close TCP without a close frame)."""

    def __init__(self, vanish: bool = False, pong: bool = False) -> None:
        self.pong = pong
        self.pings = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.uri = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.vanish = vanish
        self.received = bytearray()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self) -> None:
        self.listener.settimeout(WAIT)
        sock, _ = self.listener.accept()
        sock.settimeout(WAIT)
        with sock:
            accept_upgrade(sock)
            if self.vanish:
                return
            # Read (and ignore) until the client gives up and closes TCP.
            while not self.done.is_set():
                try:
                    data = sock.recv(4096)
                except (OSError, socket.timeout):
                    return
                if not data:
                    return
                self.received += data
                if self.pong:
                    self.answer_pings(sock)

    def answer_pings(self, sock: socket.socket) -> None:
        # Client frames here are short and masked: 2-byte header, 4-byte mask, payload.
        buffer = self.received
        while len(buffer) >= 2 and len(buffer) >= 6 + (buffer[1] & 0x7F):
            length = buffer[1] & 0x7F
            opcode = buffer[0] & 0x0F
            mask = buffer[2:6]
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buffer[6:6 + length]))
            del buffer[:6 + length]
            if opcode == 9:
                self.pings += 1
                sock.sendall(bytes([0x8A, length]) + payload)

    def close(self) -> None:
        self.done.set()
        self.thread.join(WAIT)
        self.listener.close()


# -- interop -------------------------------------------------------------------------------


@pytest.mark.parametrize("peer", ["websockets-sync", "websockets-asyncio", "femtows-sync"])
def test_femtows_client_against_servers(peer: str) -> None:
    if peer == "websockets-asyncio":
        server = websockets_asyncio_server()
    else:
        server = sync_server(ws_server if peer == "websockets-sync" else f_server, echo)
    with server as uri, f_client.connect(uri) as ws:
        for message in ["text", b"\x00\xffbinary", "é" * 70000, b"x" * 200000]:
            ws.send(message)
            assert ws.recv(timeout=WAIT) == message
        ws.send(["frag", "ments"])
        assert ws.recv(timeout=WAIT) == "fragments"
        assert ws.ping(b"p").wait(WAIT)
    assert ws.state is State.CLOSED
    assert ws.close_code == 1000


def test_websockets_sync_client_against_femtows_server() -> None:
    with sync_server(f_server, echo) as uri, ws_client.connect(uri) as ws:
        for message in ["text", b"bytes", "é" * 70000, b"y" * 200000]:
            ws.send(message)
            assert ws.recv(timeout=WAIT) == message
        ws.send([b"a", b"b"])
        assert ws.recv(timeout=WAIT) == b"ab"
        assert ws.ping().wait(WAIT)
    assert ws.close_code == 1000


def test_websockets_asyncio_client_against_femtows_server() -> None:
    from websockets.asyncio.client import connect

    async def main(uri: str) -> list[Any]:
        async with connect(uri) as ws:
            replies = []
            for message in ["hello", b"\x01\x02"]:
                await ws.send(message)
                replies.append(await asyncio.wait_for(ws.recv(), WAIT))
            return replies

    with sync_server(f_server, echo) as uri:
        assert asyncio.run(main(uri)) == ["hello", b"\x01\x02"]


# -- timeouts ------------------------------------------------------------------------------


def test_recv_timeout_keeps_a_later_message() -> None:
    go = threading.Event()

    def handler(ws: Any) -> None:
        ws.recv()
        assert go.wait(WAIT)
        ws.send(["par", "tial"])
        ws.recv()

    with sync_server(f_server, handler) as uri, f_client.connect(uri) as ws:
        ws.send("start")
        with pytest.raises(TimeoutError, match=r"^timed out in 0\.0s$"):
            ws.recv(timeout=0.01)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)
        go.set()
        assert ws.recv(timeout=WAIT) == "partial"
        ws.send("end")


def test_fragments_taken_before_a_timeout_are_put_back() -> None:
    # A fragmented message whose last frame does not come before the timeout: the frames
    # already received stay queued and the next recv returns the whole message.
    release = threading.Event()

    def chunks() -> Iterator[str]:
        yield "first "
        assert release.wait(WAIT)
        yield "second"

    def handler(ws: Any) -> None:
        ws.recv()
        ws.send(chunks())
        ws.recv()

    with sync_server(f_server, handler) as uri, f_client.connect(uri) as ws:
        ws.send("go")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.2)
        release.set()
        assert ws.recv(timeout=WAIT) == "first second"
        ws.send("end")


@needs_reference
def test_open_timeout_compared_with_websockets() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts TCP, never answers HTTP
    uri = f"ws://127.0.0.1:{listener.getsockname()[1]}/"
    try:
        errors = []
        for module in (ws_client, f_client):
            with pytest.raises(TimeoutError) as info:
                module.connect(uri, open_timeout=0.2, legacy=True)
            errors.append(str(info.value))
        assert errors[0] == errors[1] == "timed out while waiting for handshake response"
    finally:
        listener.close()


@needs_reference
def test_connect_errors_compared_with_websockets() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    for uri, expected in [
        (f"ws://127.0.0.1:{port}/", ConnectionRefusedError),
        ("http://localhost/", InvalidURI),
    ]:
        texts = []
        for module, exc_type in ((ws_client, None), (f_client, expected)):
            with pytest.raises(Exception) as info:
                module.connect(uri, legacy=True)
            if exc_type is not None:
                assert type(info.value) is exc_type
            texts.append((type(info.value).__name__, str(info.value)))
        assert texts[0] == texts[1]


class Interrupted(Exception):
    """What the test's signal handler raises (as Ctrl-C raises KeyboardInterrupt)."""


def test_a_signal_interrupts_a_blocked_recv_and_no_message_is_lost() -> None:
    # The main thread waits in recv() without a timeout; a helper thread signals it until
    # the handler runs inside that wait (the handler ignores the signal anywhere else, so
    # the test cannot pass by interrupting something before recv). The exception comes out
    # of recv, and the connection goes on: the next recv gets the server's message.
    if threading.current_thread() is not threading.main_thread():
        pytest.fail("signal handlers run in the main thread only")
    interrupted = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        code = frame.f_code if frame is not None else None
        if code is not None and code.co_filename.endswith("sync/connection.py"):
            interrupted.set()
            raise Interrupted

    def handler(ws: Any) -> None:
        assert ws.recv() == "go"
        ws.send("after")
        ws.recv()

    old = signal.signal(signal.SIGUSR1, on_signal)
    try:
        with sync_server(f_server, handler) as uri, f_client.connect(uri) as ws:

            # Signal until the handler ran in recv; after WAIT give up and close the
            # connection, so that a recv the signal cannot reach ends (and fails).
            with SignalPoker(interrupted, ws.close), pytest.raises(Interrupted):
                ws.recv()
            ws.send("go")
            assert ws.recv(timeout=WAIT) == "after"
    finally:
        signal.signal(signal.SIGUSR1, old)


# -- closing from another thread, peer vanishing -------------------------------------------


def test_close_from_another_thread_wakes_recv() -> None:
    outcome: list[BaseException] = []

    def handler(ws: Any) -> None:
        for _ in ws:
            pass

    with sync_server(f_server, handler) as uri:
        ws = f_client.connect(uri, legacy=True)
        thread = recv_in_thread(ws, outcome)
        # Until the receiving thread is blocked in recv, a second recv polls; afterwards it
        # is refused: that tells when the first thread is really waiting.
        while True:
            try:
                ws.recv(timeout=0)
            except ConcurrencyError:
                break
            except TimeoutError:
                continue
        ws.close(1000, "from another thread")
        thread.join(WAIT)
        assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ConnectionClosedOK)
    assert str(outcome[0]) == (
        "sent 1000 (OK) from another thread; then received 1000 (OK) from another thread"
    )


def test_peer_vanishing_raises_1006() -> None:
    peer = RawPeer(vanish=True)
    try:
        with f_client.connect(peer.uri, close_timeout=1) as ws:
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(timeout=WAIT)
            assert str(info.value) == "no close frame received or sent"
            assert ws.close_code == 1006
            assert ws.state is State.CLOSED
    finally:
        peer.close()


# -- keepalive and close timeout while blocked in recv --------------------------------------


def test_keepalive_timeout_while_blocked_in_recv() -> None:
    peer = RawPeer()  # never answers pings nor the close frame
    try:
        ws = f_client.connect(
            peer.uri, ping_interval=0.05, ping_timeout=0.05, close_timeout=0.2, legacy=True
        )
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=WAIT)  # far longer than keepalive + close timeout
        assert str(info.value) == "sent 1011 (internal error) keepalive ping timeout; " \
            "no close frame received"
        assert ws.state is State.CLOSED
    finally:
        peer.close()
    # The ping frame(s) and the 1011 close frame reached the peer (masked client frames).
    assert peer.received[0] == 0x89
    assert 0x88 in peer.received


def test_keepalive_with_a_responsive_peer_keeps_the_connection_open() -> None:
    peer = RawPeer(pong=True)
    try:
        ws = f_client.connect(
            peer.uri, ping_interval=0.02, ping_timeout=0.5, close_timeout=0.1, legacy=True
        )
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)  # keepalive pings go out and are answered meanwhile
        assert ws.state is State.OPEN
        assert peer.pings >= 2
        ws.close()
    finally:
        peer.close()


def test_close_timeout_when_the_peer_never_answers() -> None:
    peer = RawPeer()
    try:
        ws = f_client.connect(peer.uri, close_timeout=0.1, legacy=True)
        ws.close()
        assert ws.state is State.CLOSED
        assert ws.close_code == 1006
        assert ws.wait_closed(timeout=0)
    finally:
        peer.close()


# -- misc ----------------------------------------------------------------------------------


def test_ping_ack_on_close_sets_the_event_when_the_connection_closes() -> None:
    peer = RawPeer()
    try:
        ws = f_client.connect(peer.uri, close_timeout=0.1, legacy=True)
        plain = ws.ping(b"1")
        acked = ws.ping(b"2", ack_on_close=True)
        ws.close()
        assert acked.wait(WAIT)
        assert not plain.is_set()
    finally:
        peer.close()


def test_server_connections_and_fileno() -> None:
    entered = threading.Event()

    def handler(ws: Any) -> None:
        entered.set()
        ws.recv()

    server = f_server.serve(handler, "127.0.0.1", 0)
    assert server.fileno() == server.socket.fileno()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        with f_client.connect(f"ws://127.0.0.1:{server.socket.getsockname()[1]}/") as ws:
            assert entered.wait(WAIT)
            (connection,) = server.connections
            assert isinstance(connection, f_server.ServerConnection)
            assert connection.remote_address == ws.local_address
            ws.send("bye")
    finally:
        server.shutdown()
        thread.join(WAIT)
    assert not thread.is_alive()


def test_exception_classes_are_shared_with_the_asyncio_api() -> None:
    import femtows.websockets.exceptions as f_exceptions

    assert f_client.connect.__module__ == "femtows.websockets.sync.client"
    for name in ("ConnectionClosedOK", "ConnectionClosedError", "InvalidStatus"):
        assert hasattr(ws_exceptions, name)
        assert getattr(f_exceptions, name).__name__ == name


def test_tls_both_directions_with_websockets() -> None:
    import ssl
    from pathlib import Path

    certs = Path(__file__).parent.parent / "certs"
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certs / "cert.pem", certs / "key.pem")
    client_context = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    for server_module, client_module in [(f_server, ws_client), (ws_server, f_client),
                                         (f_server, f_client)]:
        with sync_server(server_module, echo, ssl=server_context) as uri:
            secure = uri.replace("ws://", "wss://").replace("127.0.0.1", "localhost")
            with client_module.connect(secure, ssl=client_context) as ws:
                ws.send("over TLS")
                assert ws.recv(timeout=WAIT) == "over TLS"
            with pytest.raises(ValueError, match="ssl argument is incompatible"):
                client_module.connect(uri, ssl=client_context)


def test_unix_route_with_a_websockets_sync_client(tmp_path: Any) -> None:
    from werkzeug.routing import Map, Rule

    from femtows.websockets.sync.router import unix_route

    def item(ws: Any, number: int) -> None:
        ws.send(f"item {number}")

    path = str(tmp_path / "route.sock")
    server = unix_route(Map([Rule("/item/<int:number>", endpoint=item)]), path)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        with ws_client.unix_connect(path, "ws://localhost/item/7") as ws:
            assert ws.recv(timeout=WAIT) == "item 7"
        with pytest.raises(ws_exceptions.InvalidStatus, match="HTTP 404"):
            ws_client.unix_connect(path, "ws://localhost/nothing")
    finally:
        server.shutdown()
        thread.join(WAIT)
    assert not thread.is_alive()
