"""femtows.websockets.sync: a thread waiting in ``recv`` reads the socket itself.

Once connected (a client) or after its first send (a server's handler), a thread that finds
no message in ``recv`` asks the loop for the socket and then polls and parses it itself
(``Engine._ext_recv``); any frame other than a whole TEXT/BINARY message, EOF, an error,
``close()``/``ping()`` or the loop's periodic check hands it back. Every behaviour test here
runs in both modes (``ext``: that path; ``loop``: ``EXT_READS`` off, every read on the loop's
thread) and asserts the same outcome, with websockets' threading client and server or a raw
peer that sends exactly the frames the test wants.

Plain (non-async) tests: every wait is bounded by a timeout; nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest
import websockets.sync.client as ws_client
import websockets.sync.server as ws_server

from femtows.websockets.asyncio import _engine
from femtows.websockets.asyncio._engine import EXT_READING
from femtows.websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from femtows.websockets.sync import client as f_client
from femtows.websockets.sync import connection as f_connection
from femtows.websockets.sync import server as f_server
from tests.websockets.sync_helpers import (
    WAIT,
    SignalPoker,
    accept_upgrade,
    recv_in_thread,
    sync_server,
)

# How the reading thread waits (Engine._ext_recv): ``ext`` as each connection's history of
# waits says (the default); ``ext-recv-first`` always recv() before poll(); ``ext-poll-first``
# always poll() first. The last two pin each order down, whatever the timing.
READ_ORDERS = {"ext": -1, "ext-recv-first": 1, "ext-poll-first": 0}


@pytest.fixture(params=[*READ_ORDERS, "loop"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "loop":
        monkeypatch.setattr(f_connection, "EXT_READS", False)
        yield "loop"
        return
    _engine._set_ext_read_first(READ_ORDERS[request.param])
    try:
        yield "ext"
    finally:
        _engine._set_ext_read_first(-1)


def check_mode(ws: Any, mode: str) -> None:
    """The socket is this thread's in ``ext`` mode; never in ``loop`` mode."""
    if mode == "ext":
        assert ws._conn._ext == EXT_READING
    else:
        assert ws._conn._ext == 0


def hold_socket(ws: Any, mode: str) -> None:
    """With nothing to receive: wait in recv until the loop has handed this thread the socket
    (``ext``; the hand-over happens while a recv waits, so a reply that comes first can win:
    try again, within WAIT), or once (``loop``)."""
    for _ in range(int(WAIT / 0.01)):
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.01)
        if mode == "loop" or ws._conn._ext == EXT_READING:
            break
    check_mode(ws, mode)


def websockets_server(handler: Callable[[Any], None], **kwargs: Any) -> Any:
    """websockets' threading server in a thread; a context manager yielding its URI."""
    return sync_server(ws_server, handler, **kwargs)


class ScriptPeer:
    """A raw TCP WebSocket server for one client: completes the handshake, echoes the
    client's first message, waits for "ready" (the client holds the socket, see
    ``hold_socket``), then runs ``script``."""

    def __init__(self, script: Callable[[ScriptPeer], None]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.uri = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.sock: Optional[socket.socket] = None
        self.buffer = bytearray()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self) -> None:
        try:
            self.listener.settimeout(WAIT)
            sock, _ = self.listener.accept()
            sock.settimeout(WAIT)
            self.sock = sock
            accept_upgrade(sock)
            opcode, fin, payload = self.read_frame()
            self.send_frame(opcode, payload, fin)
            assert self.read_frame() == (1, True, b"ready")
            self.script(self)
        except BaseException as exc:  # reported by join()
            self.errors.append(exc)
        finally:
            if self.sock is not None:
                self.sock.close()

    def read_frame(self) -> tuple[int, bool, bytes]:
        """The client's next frame (masked, as a client sends them)."""
        assert self.sock is not None
        while True:
            buf = self.buffer
            if len(buf) >= 2:
                length, offset = buf[1] & 0x7F, 2
                if length == 126 and len(buf) >= 4:
                    length, offset = int.from_bytes(buf[2:4], "big"), 4
                elif length == 127 and len(buf) >= 10:
                    length, offset = int.from_bytes(buf[2:10], "big"), 10
                if length < 126 and len(buf) >= offset + 4 + length:
                    assert buf[1] & 0x80, "client frames are masked"
                    key = bytes(buf[offset:offset + 4])
                    data = bytes(buf[offset + 4:offset + 4 + length])
                    payload = bytes(b ^ key[i % 4] for i, b in enumerate(data))
                    opcode, fin = buf[0] & 0x0F, bool(buf[0] & 0x80)
                    del buf[:offset + 4 + length]
                    return opcode, fin, payload
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the client closed TCP")
            self.buffer += data

    @staticmethod
    def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
        """An unmasked frame, as a server sends them."""
        n = len(payload)
        if n < 126:
            head = bytes([0x80 * fin | opcode, n])
        elif n < 65536:
            head = bytes([0x80 * fin | opcode, 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x80 * fin | opcode, 127]) + n.to_bytes(8, "big")
        return head + payload

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        assert self.sock is not None
        self.sock.sendall(self.frame(opcode, payload, fin))

    def answer_close(self) -> bytes:
        """Read up to the client's CLOSE, answer it, return its payload."""
        while True:
            opcode, _, payload = self.read_frame()
            if opcode == 8:
                self.send_frame(8, payload)
                return payload

    def join(self) -> None:
        self.thread.join(WAIT)
        self.listener.close()
        assert not self.thread.is_alive()
        if self.errors:
            raise self.errors[0]


def connect(uri: str, **kwargs: Any) -> Any:
    # Without compression: the path needs the direct-send conditions (plain TCP, no deflate).
    kwargs.setdefault("ping_interval", None)
    return f_client.connect(uri, compression=None, **kwargs)


# -- the path is taken, and messages arrive intact ---------------------------------------------


def sized(index: int) -> Any:
    size = [0, 1, 125, 126, 65535, 65536, 70000, 300000, 1 << 20][index % 9]
    body = (index.to_bytes(4, "big") * (size // 4 + 1))[:size]
    return body.hex()[:size] if index % 2 else body


def test_messages_of_every_size_round_trip(mode: str) -> None:
    def echo(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    with websockets_server(echo, max_size=None) as uri, connect(uri, max_size=None) as ws:
        ws.send("prime")
        assert ws.recv(timeout=WAIT) == "prime"
        for index in range(90):
            if index % 10 == 0:
                hold_socket(ws, mode)
            ws.send(sized(index))
            assert ws.recv(timeout=WAIT) == sized(index)


def test_a_client_that_never_sends(mode: str) -> None:
    go = threading.Event()

    def handler(ws: Any) -> None:
        assert go.wait(WAIT)
        for index in range(20):
            ws.send(sized(index))

    with websockets_server(handler, max_size=None) as uri, connect(uri, max_size=None) as ws:
        hold_socket(ws, mode)  # without a send first
        go.set()
        assert [ws.recv(timeout=WAIT) for _ in range(20)] == [sized(i) for i in range(20)]


def test_the_loop_answers_a_ping_that_arrives_while_recv_waits(mode: str) -> None:
    def handler(ws: Any) -> None:
        ws.send(ws.recv())
        assert ws.recv() == "go"
        assert ws.ping(b"while waiting").wait(WAIT)
        ws.send("after")
        assert ws.recv() == "again"
        ws.send("last")
        ws.recv()

    with websockets_server(handler) as uri, connect(uri) as ws:
        ws.send("prime")
        assert ws.recv(timeout=WAIT) == "prime"
        hold_socket(ws, mode)
        ws.send("go")
        assert ws.recv(timeout=WAIT) == "after"  # the PING came first: handed to the loop
        hold_socket(ws, mode)  # and the socket comes back to this thread
        ws.send("again")
        assert ws.recv(timeout=WAIT) == "last"


def test_a_ping_is_answered_while_no_thread_is_in_recv(mode: str) -> None:
    answered = threading.Event()

    def handler(ws: Any) -> None:
        ws.send(ws.recv())
        assert ws.recv() == "go"
        if ws.ping(b"meanwhile").wait(WAIT):
            answered.set()
        ws.recv()

    with websockets_server(handler) as uri, connect(uri) as ws:
        ws.send("prime")
        assert ws.recv(timeout=WAIT) == "prime"
        hold_socket(ws, mode)
        ws.send("go")
        # No thread in recv now: the PING is answered all the same (in ext mode, once the
        # loop's periodic check has taken the socket back from this thread).
        assert answered.wait(WAIT)


def test_fragments_and_control_frames_between_messages(mode: str) -> None:
    pongs: list[bytes] = []

    def script(peer: ScriptPeer) -> None:
        peer.send_frame(1, b"one")
        peer.send_frame(9, b"p1")
        peer.send_frame(2, b"ab", fin=False)
        peer.send_frame(9, b"p2")
        peer.send_frame(0, b"cd")
        peer.send_frame(1, "twö".encode())
        while len(pongs) < 2:
            opcode, _, payload = peer.read_frame()
            assert opcode == 10
            pongs.append(payload)
        peer.answer_close()

    peer = ScriptPeer(script)
    with connect(peer.uri) as ws:
        ws.send("prime")
        assert ws.recv(timeout=WAIT) == "prime"
        hold_socket(ws, mode)
        ws.send("ready")
        assert ws.recv(timeout=WAIT) == "one"
        assert ws.recv(timeout=WAIT) == b"abcd"
        assert ws.recv(timeout=WAIT) == "twö"
    peer.join()
    assert pongs == [b"p1", b"p2"]


def test_large_frames_with_other_frames_right_behind(mode: str) -> None:
    # A large BINARY frame is received into its own bytes; the read after it takes only a
    # header's worth (femtows/_core: _ext_after_big). Whatever follows in the same TCP write
    # (small frames, more large ones, a PING, fragments) must come out intact and in order.
    big = [bytes([i]) * size for i, size in enumerate((65536, 70000, 300000, 1 << 20))]
    pongs: list[bytes] = []

    def script(peer: ScriptPeer) -> None:
        assert peer.sock is not None
        f = peer.frame
        peer.sock.sendall(
            f(2, big[0]) + f(1, b"small") + f(2, big[1]) + f(2, big[2]) + f(9, b"p")
            + f(2, big[3]) + f(2, b"x" * 20, fin=False) + f(0, big[1]) + f(2, big[0])
            + f(2, b"") + f(2, big[1])
        )
        opcode, _, payload = peer.read_frame()
        assert opcode == 10
        pongs.append(payload)
        peer.answer_close()

    peer = ScriptPeer(script)
    with connect(peer.uri, max_size=None) as ws:
        ws.send("prime")
        assert ws.recv(timeout=WAIT) == "prime"
        hold_socket(ws, mode)
        ws.send("ready")
        expected = [big[0], "small", big[1], big[2], big[3], b"x" * 20 + big[1], big[0], b"",
                    big[1]]
        for message in expected:
            assert ws.recv(timeout=WAIT) == message
    peer.join()
    assert pongs == [b"p"]


# -- failures come out as they do on the loop's path -------------------------------------------


def closed_by(
    mode: str, script: Callable[[ScriptPeer], None], **kwargs: Any
) -> tuple[str, Any]:
    """Run ``script`` against a client blocked in recv (holding the socket in ``ext`` mode);
    the exception's type and text, and the close code the client ends with."""
    peer = ScriptPeer(script)
    try:
        with connect(peer.uri, close_timeout=1, **kwargs) as ws:
            ws.send("prime")
            assert ws.recv(timeout=WAIT) == "prime"
            hold_socket(ws, mode)
            ws.send("ready")
            with pytest.raises((ConnectionClosedOK, ConnectionClosedError)) as info:
                ws.recv(timeout=WAIT)
            return f"{type(info.value).__name__}: {info.value}", ws.close_code
    finally:
        peer.join()


def test_invalid_utf8_fails_with_1007(mode: str) -> None:
    def script(peer: ScriptPeer) -> None:
        peer.send_frame(1, b"\xff\xfe")
        assert peer.answer_close()[:2] == (1007).to_bytes(2, "big")

    # As websockets, a client that fails the connection discards what follows its CLOSE.
    assert closed_by(mode, script) == (
        "ConnectionClosedError: sent 1007 (invalid frame payload data) invalid start byte "
        "at position 0; no close frame received", 1006)


def test_a_message_over_max_size_fails_with_1009(mode: str) -> None:
    def script(peer: ScriptPeer) -> None:
        peer.send_frame(2, bytes(2000))
        assert peer.answer_close()[:2] == (1009).to_bytes(2, "big")

    assert closed_by(mode, script, max_size=1000) == (
        "ConnectionClosedError: sent 1009 (message too big) frame with 2000 bytes exceeds "
        "limit of 1000 bytes; no close frame received", 1006)


def test_the_peer_closing(mode: str) -> None:
    def script(peer: ScriptPeer) -> None:
        peer.send_frame(8, (1000).to_bytes(2, "big") + b"bye")
        assert peer.read_frame()[0] == 8

    assert closed_by(mode, script) == (
        "ConnectionClosedOK: received 1000 (OK) bye; then sent 1000 (OK) bye", 1000)


def test_the_peer_vanishing(mode: str) -> None:
    def script(peer: ScriptPeer) -> None:
        assert peer.sock is not None
        peer.sock.close()
        peer.sock = None

    assert closed_by(mode, script) == (
        "ConnectionClosedError: no close frame received or sent", 1006)


def test_keepalive_timeout_while_blocked_in_recv(mode: str) -> None:
    def script(peer: ScriptPeer) -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                peer.read_frame()  # never answers a PING nor the CLOSE

    assert closed_by(mode, script, ping_interval=0.05, ping_timeout=0.05) == (
        "ConnectionClosedError: sent 1011 (internal error) keepalive ping timeout; "
        "no close frame received", 1006)


def test_close_from_another_thread_wakes_recv(mode: str) -> None:
    outcome: list[BaseException] = []

    def handler(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    with websockets_server(handler) as uri:
        ws = connect(uri, legacy=True)
        ws.send("prime")
        assert ws.recv(timeout=WAIT) == "prime"
        hold_socket(ws, mode)
        thread = recv_in_thread(ws, outcome)
        while not ws._recv_lock.locked():  # the other thread is in recv
            if not thread.is_alive():
                break
        ws.close(1000, "from another thread")
        thread.join(WAIT)
        assert not thread.is_alive()
    assert [f"{type(e).__name__}: {e}" for e in outcome] == [
        "ConnectionClosedOK: sent 1000 (OK) from another thread; "
        "then received 1000 (OK) from another thread"]


def test_recv_timeouts_keep_the_next_message(mode: str) -> None:
    release = threading.Event()

    def handler(ws: Any) -> None:
        ws.send(ws.recv())
        assert release.wait(WAIT)
        ws.send("late")
        ws.recv()

    with websockets_server(handler) as uri, connect(uri) as ws:
        ws.send("go")
        assert ws.recv(timeout=WAIT) == "go"
        hold_socket(ws, mode)
        with pytest.raises(TimeoutError, match=r"^timed out in 0\.[01]s$"):
            ws.recv(timeout=0.05)
        with pytest.raises(TimeoutError, match=r"^timed out in -?0\.0s$"):  # as websockets
            ws.recv(timeout=0)
        check_mode(ws, mode)
        release.set()
        assert ws.recv(timeout=WAIT) == "late"


class Interrupted(Exception):
    """What the test's signal handler raises (as Ctrl-C raises KeyboardInterrupt)."""


def test_a_signal_interrupts_recv(mode: str) -> None:
    # As tests/websockets/test_sync_connection.py's signal test, with the socket held by the
    # thread in recv: the handler's exception comes out, and the connection goes on.
    if threading.current_thread() is not threading.main_thread():
        pytest.fail("signal handlers run in the main thread only")
    interrupted = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if frame is not None and frame.f_code.co_filename.endswith("sync/connection.py"):
            interrupted.set()
            raise Interrupted

    def handler(ws: Any) -> None:
        ws.send(ws.recv())
        assert ws.recv() == "go"
        ws.send("after")
        ws.recv()

    old = signal.signal(signal.SIGUSR1, on_signal)
    try:
        with websockets_server(handler) as uri, connect(uri) as ws:
            ws.send("prime")
            assert ws.recv(timeout=WAIT) == "prime"
            hold_socket(ws, mode)

            with SignalPoker(interrupted, ws.close), pytest.raises(Interrupted):
                ws.recv()
            check_mode(ws, mode)  # interrupted while it held the socket
            ws.send("go")
            assert ws.recv(timeout=WAIT) == "after"
    finally:
        signal.signal(signal.SIGUSR1, old)


# -- the server side: a handler thread reading its connection's socket ------------------------


@contextlib.contextmanager
def femtows_server(handler: Callable[[Any], None]) -> Iterator[tuple[int, list[BaseException]]]:
    """femtows' threading server (no compression) in a thread; yields its port and the
    exceptions its handler raised (a test asserts them)."""
    errors: list[BaseException] = []

    def guarded(ws: Any) -> None:
        try:
            handler(ws)
        except BaseException as exc:
            errors.append(exc)
            raise

    with sync_server(f_server, guarded, compression=None, ping_interval=None) as uri:
        yield int(uri.rsplit(":", 1)[1].strip("/")), errors


class RawClient:
    """A raw TCP WebSocket client: upgrades, then sends masked frames as the test says."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          b"Sec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101 ")

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        key = b"\x0b\x16\x21\x2c"
        assert len(payload) < 126
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 * fin | opcode, 0x80 | len(payload)]) + key + masked)

    def read_frame(self) -> tuple[int, bytes]:
        head = self.recv_exactly(2)
        assert head[1] < 126
        return head[0] & 0x0F, self.recv_exactly(head[1])

    def recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data


def server_closed_by(mode: str, client_script: Callable[[RawClient], None]) -> str:
    """A femtows handler holding its socket in recv while a raw client runs ``script``;
    the exception recv raised, as "Type: text"."""
    outcome: list[str] = []
    ready = threading.Event()
    done = threading.Event()

    def handler(ws: Any) -> None:
        try:
            ws.send(ws.recv())
            hold_socket(ws, mode)
            ready.set()
            with pytest.raises((ConnectionClosedOK, ConnectionClosedError)) as info:
                ws.recv(timeout=WAIT)
            outcome.append(f"{type(info.value).__name__}: {info.value}")
        finally:
            done.set()

    with femtows_server(handler) as (port, errors):
        client = RawClient(port)
        try:
            client.send_frame(1, b"prime")
            assert client.read_frame() == (1, b"prime")
            assert ready.wait(WAIT)
            client_script(client)
            assert done.wait(WAIT)  # the handler has its answer (before the server shuts down)
        finally:
            client.sock.close()
    assert not errors
    return outcome[0]


def test_server_messages_of_every_size_round_trip(mode: str) -> None:
    def handler(ws: Any) -> None:
        ws.send(ws.recv())
        hold_socket(ws, mode)
        ws.send("held")
        for message in ws:
            ws.send(message)

    with femtows_server(handler) as (port, errors):
        with ws_client.connect(f"ws://127.0.0.1:{port}/", max_size=None,
                               compression=None) as ws:
            ws.send("prime")
            assert ws.recv(timeout=WAIT) == "prime"
            assert ws.recv(timeout=WAIT) == "held"
            for index in range(45):
                ws.send(sized(index))
                assert ws.recv(timeout=WAIT) == sized(index)
    assert not errors


def test_server_answers_a_ping_while_its_handler_waits(mode: str) -> None:
    def handler(ws: Any) -> None:
        ws.send(ws.recv())
        hold_socket(ws, mode)
        ws.send("held")
        assert ws.recv(timeout=WAIT) == "after the ping"
        hold_socket(ws, mode)  # the socket comes back to the handler thread
        ws.send("done")
        for _ in ws:  # until the client closes
            pass

    with femtows_server(handler) as (port, errors):
        with ws_client.connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            ws.send("prime")
            assert ws.recv(timeout=WAIT) == "prime"
            assert ws.recv(timeout=WAIT) == "held"
            assert ws.ping(b"to the handler").wait(WAIT)
            ws.send("after the ping")
            assert ws.recv(timeout=WAIT) == "done"
    assert not errors


def test_server_invalid_utf8_from_the_client(mode: str) -> None:
    assert server_closed_by(mode, lambda c: c.send_frame(1, b"ok\xff")) == (
        "ConnectionClosedError: sent 1007 (invalid frame payload data) invalid start byte "
        "at position 2; no close frame received")


def test_server_peer_closing(mode: str) -> None:
    assert server_closed_by(mode, lambda c: c.send_frame(8, b"\x03\xe8bye")) == (
        "ConnectionClosedOK: received 1000 (OK) bye; then sent 1000 (OK) bye")


def test_server_peer_vanishing(mode: str) -> None:
    assert server_closed_by(mode, lambda c: c.sock.shutdown(socket.SHUT_RDWR)) == (
        "ConnectionClosedError: no close frame received or sent")
