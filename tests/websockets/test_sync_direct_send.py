"""femtows.websockets.sync: ``send`` writing from the user thread straight to the socket.

The user thread and the loop thread (automatic pongs, close) write the same socket; these
tests check the byte stream a raw peer receives: every frame well-formed and masked, every
message intact and in order, every PONG answering a PING, with a peer that floods PINGs and
with a peer that stops reading (so that a direct write is partial). TLS takes the loop path.

Plain (non-async) tests: every wait is bounded by a timeout; nothing sleeps to synchronise.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Optional

import pytest

from femtows.websockets.sync import client as f_client
from femtows.websockets.sync import server as f_server
from tests.websockets.sync_helpers import accept_upgrade

WAIT = 10.0
SIZES = [256, 8192, 102400, 1, 70000, 125, 126, 65535, 65536]


def message(index: int) -> bytes:
    """Message ``index``: its size cycles through SIZES; its bytes tell where they belong."""
    size = SIZES[index % len(SIZES)]
    pattern = index.to_bytes(4, "big") + bytes(range(index % 7, 256, 7))
    return (pattern * (size // len(pattern) + 1))[:size]


def unmask(key: bytes, payload: bytes) -> bytes:
    n = len(payload)
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keys, "little")).to_bytes(
        n, "little")


class FramePeer:
    """A raw TCP WebSocket server for one femtows sync client: it completes the handshake,
    parses every frame the client sends (asserting it is well-formed and masked), answers
    the closing handshake, and can flood PINGs or hold off reading."""

    def __init__(self, rcvbuf: Optional[int] = None) -> None:
        self.listener = socket.socket()
        if rcvbuf is not None:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.uri = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.sock: Optional[socket.socket] = None
        self.messages: list[bytes] = []
        self.pongs: list[bytes] = []
        self.errors: list[str] = []
        self.close_seen = threading.Event()
        self.send_lock = threading.Lock()
        self.buffer = bytearray()

    def accept(self) -> None:
        self.listener.settimeout(WAIT)
        sock, _ = self.listener.accept()
        sock.settimeout(WAIT)
        accept_upgrade(sock)
        self.sock = sock

    def send(self, frame: bytes) -> None:
        assert self.sock is not None
        with self.send_lock:
            self.sock.sendall(frame)

    def read_frames(self) -> None:
        """Parse frames until the client's CLOSE (answered) or an error (recorded)."""
        assert self.sock is not None
        try:
            while not self.close_seen.is_set():
                data = self.sock.recv(1 << 20)
                if not data:
                    self.errors.append("EOF before CLOSE")
                    return
                self.buffer += data
                self.parse()
        except Exception as exc:  # reported by the test
            self.errors.append(repr(exc))

    def parse(self) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            first, second = buf[0], buf[1]
            if first & 0x70 or not first & 0x80 or not second & 0x80:
                raise AssertionError(f"bad frame header {bytes(buf[:2]).hex()}")
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, offset = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, offset = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < offset + 4 + length:
                return
            key = bytes(buf[offset:offset + 4])
            payload = unmask(key, bytes(buf[offset + 4:offset + 4 + length]))
            del buf[:offset + 4 + length]
            opcode = first & 0x0F
            if opcode == 2:
                self.messages.append(payload)
            elif opcode == 0xA:
                self.pongs.append(payload)
            elif opcode == 8:
                self.send(bytes([0x88, len(payload)]) + payload)
                assert self.sock is not None
                self.sock.shutdown(socket.SHUT_WR)  # the server closes TCP first
                self.close_seen.set()
                return
            else:
                raise AssertionError(f"unexpected opcode {opcode}")

    def check(self, count: int, pings: list[bytes]) -> None:
        assert not self.errors
        assert len(self.messages) == count
        for index, payload in enumerate(self.messages):
            assert payload == message(index), f"message {index} corrupted"
        # Every PONG answers a PING, in order, none twice.
        positions = {ping: i for i, ping in enumerate(pings)}
        seen = [positions[pong] for pong in self.pongs]
        assert seen == sorted(set(seen))

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.listener.close()


def connect(uri: str) -> Any:
    return f_client.connect(uri, compression=None, max_size=None, ping_interval=None, legacy=True)


def ping_frame(index: int) -> bytes:
    return bytes([0x89, 8]) + index.to_bytes(8, "big")


def transport_module(ws: Any) -> str:
    return type(ws._conn.transport).__module__


@pytest.mark.parametrize("net_kind", ["afn", "loopnet"], indirect=True)
def test_direct_sends_while_the_peer_floods_pings(net_kind: str) -> None:
    count = 400
    peer = FramePeer()
    accepted = threading.Thread(target=peer.accept)
    accepted.start()
    ws = connect(peer.uri)
    accepted.join(WAIT)
    assert peer.sock is not None
    if net_kind == "afn":
        assert transport_module(ws).startswith("aiofastnet")
    else:
        assert not transport_module(ws).startswith("aiofastnet")
    reader = threading.Thread(target=peer.read_frames)
    reader.start()
    pings: list[bytes] = []
    stop = threading.Event()

    def flood() -> None:
        index = 0
        while not stop.is_set():
            pings.append(ping_frame(index)[2:])
            try:
                peer.send(ping_frame(index))
            except OSError:
                return
            index += 1

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        for index in range(count):
            ws.send(message(index))
    finally:
        stop.set()
        flooder.join(WAIT)
    ws.close()
    reader.join(WAIT)
    peer.close()
    peer.check(count, pings)
    assert len(peer.pongs) > 0
    # Messages went out from this thread too, not only through the loop.
    assert ws._scheduled < count


@pytest.mark.parametrize("net_kind", ["afn", "loopnet"], indirect=True)
def test_a_partial_direct_write_is_finished_by_the_loop_first(net_kind: str) -> None:
    peer = FramePeer(rcvbuf=65536)
    accepted = threading.Thread(target=peer.accept)
    accepted.start()
    ws = connect(peer.uri)
    accepted.join(WAIT)
    assert peer.sock is not None
    # One round trip: the first send took the loop path and turned direct sends on.
    ws.send(message(0))
    peer.sock.settimeout(WAIT)
    while len(peer.messages) < 1:
        peer.buffer += peer.sock.recv(1 << 20)
        peer.parse()
    # The peer stops reading: direct sends fill the socket buffers until one is partial.
    index = 1
    while ws._partial_sends == 0:
        assert index < 2000, "no partial direct write"
        ws.send(message(index))
        index += 1
    # A PING now: its PONG must not land inside the rest of the partial frame.
    peer.send(ping_frame(1))
    count = index + 50
    reader = threading.Thread(target=peer.read_frames)
    reader.start()
    for i in range(index, count):
        ws.send(message(i))
    ws.close()
    reader.join(WAIT)
    peer.close()
    peer.check(count, [ping_frame(1)[2:]])
    assert peer.pongs == [ping_frame(1)[2:]]


def echo(websocket: Any) -> None:
    for item in websocket:
        websocket.send(item)


def test_tls_connection_uses_the_loop_path() -> None:
    certs = Path(__file__).parent.parent / "certs"
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certs / "cert.pem", certs / "key.pem")
    client_context = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    server = f_server.serve(echo, "127.0.0.1", 0, ssl=server_context, compression=None)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        uri = f"wss://localhost:{server.socket.getsockname()[1]}/"
        with f_client.connect(uri, ssl=client_context, compression=None) as ws:
            for index in range(30):
                ws.send(message(index))
                assert ws.recv(timeout=WAIT) == message(index)
            assert ws._scheduled == 30  # every frame went through the loop
    finally:
        server.shutdown()
        thread.join(WAIT)


def test_server_side_direct_sends_echo_intact() -> None:
    server = f_server.serve(echo, "127.0.0.1", 0, compression=None)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        uri = f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
        with connect(uri) as ws:
            for index in range(60):
                ws.send(message(index))
                assert ws.recv(timeout=WAIT) == message(index)
            assert ws._scheduled < 30
            (connection,) = server.connections
            assert connection._scheduled < 30
    finally:
        server.shutdown()
        thread.join(WAIT)
