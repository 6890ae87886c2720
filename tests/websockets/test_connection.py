"""femtows.websockets Connection through the public API, against websockets 17.4's server and
against raw scripted peers; error paths are checked side by side with websockets' client where
the outcome must be identical."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import uuid
from typing import Any, Awaitable, Callable, List

import pytest
import websockets
import websockets.asyncio.client
import websockets.asyncio.server

import femtows.websockets.asyncio.client as fclient
from femtows._core.core import WSMsgType, _make_test_ws_frame
from femtows.websockets.asyncio.connection import broadcast
from femtows.websockets.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ProtocolError,
)
from femtows.websockets.frames import Close
from femtows.websockets.protocol import State
from tests.utils import encode_frame, read_frame
from tests.websockets.reference import needs_reference, require_reference

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# The two client implementations compared in side-by-side tests.
LIBS = {"femtows": fclient.connect, "websockets": websockets.asyncio.client.connect}
# Where older websockets behave otherwise: their run needs 17.4, femtows' always runs.
LIBS_17_4 = ["femtows", pytest.param("websockets", marks=needs_reference)]


# -- peers ---------------------------------------------------------------------------------------

async def ws_server(handler: Callable[[Any], Awaitable[None]], tls: Any = None,
                    **kwargs: Any) -> tuple[Any, str]:
    """websockets' own server; returns (server, uri)."""
    ssl = tls.server if tls is not None else None
    server = await websockets.asyncio.server.serve(handler, "127.0.0.1", 0, ssl=ssl, **kwargs)
    port = server.sockets[0].getsockname()[1]
    scheme = "wss" if ssl is not None else "ws"
    return server, f"{scheme}://127.0.0.1:{port}/"


def client_kwargs(tls: Any) -> dict[str, Any]:
    return {"ssl": tls.client} if tls is not None and tls.enabled else {}


async def echo(ws: Any) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.exceptions.ConnectionClosed:
        pass


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def raw_server(script: Script) -> tuple[asyncio.Server, str]:
    """A server that completes the upgrade by hand, then runs ``script`` on the raw stream."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = ""
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://127.0.0.1:{port}/"


def frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A server-to-client (unmasked) frame."""
    return encode_frame(opcode, payload, fin=fin, mask=False)


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(0x8, code.to_bytes(2, "big") + reason.encode())


async def answer_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Read frames until the client's CLOSE, echo it, and return its payload."""
    while True:
        f = await read_frame(reader)
        if f.opcode == 0x8:
            writer.write(frame(0x8, f.payload))
            await writer.drain()
            return f.payload


# -- messages ------------------------------------------------------------------------------------

async def test_echo_types(tls: Any) -> None:
    server, uri = await ws_server(echo, tls)
    async with server, fclient.connect(uri, **client_kwargs(tls)) as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"
        await ws.send(bytearray(b"ba"))
        assert await ws.recv() == b"ba"
        await ws.send(memoryview(b"xmvx")[1:3])
        assert await ws.recv() == b"mv"
        await ws.send(memoryview(b"abcdef")[::2])  # not contiguous
        assert await ws.recv() == b"ace"
        await ws.send("text")
        assert await ws.recv(decode=False) == b"text"
        await ws.send(b"bin")
        assert await ws.recv(decode=True) == "bin"
        await ws.send("as binary", text=False)
        assert await ws.recv() == b"as binary"
        await ws.send(b"as text", text=True)
        assert await ws.recv() == "as text"
        big = "x" * 300_000
        await ws.send(big)
        assert await ws.recv() == big


async def test_queued_messages_and_decode() -> None:
    async def handler(ws: Any) -> None:
        await ws.send("one")
        await ws.send(b"two")
        await ws.send("three")
        await ws.send(["frag", "mented"])
        await ws.wait_closed()

    server, uri = await ws_server(handler)
    async with server, fclient.connect(uri) as ws:
        assert await ws.recv() == "one"
        assert await ws.recv(decode=True) == "two"
        assert await ws.recv(decode=False) == b"three"
        assert await ws.recv() == "fragmented"


async def test_fragmented_send_sync_and_async() -> None:
    received: List[Any] = []

    async def handler(ws: Any) -> None:
        async for fragment in ws.recv_streaming():
            received.append(fragment)
        received.append(await ws.recv())
        received.append(await ws.recv())
        await ws.send(["a", "b", "c"])
        await ws.wait_closed()

    async def agen() -> Any:
        yield b"x"
        yield bytearray(b"y")
        yield memoryview(b"z")

    server, uri = await ws_server(handler)
    async with server, fclient.connect(uri) as ws:
        await ws.send(["he", "llo"])
        await ws.send(agen())
        await ws.send(iter([b"1", b"2"]), text=True)
        assert [f async for f in ws.recv_streaming()] == ["a", "b", "c", ""]
    assert received == ["he", "llo", "", b"xyz", "12"]


@pytest.mark.parametrize("lib", LIBS)
async def test_send_type_errors(lib: str) -> None:
    closes: List[Any] = []

    async def handler(ws: Any) -> None:
        try:
            await ws.recv()
        except websockets.exceptions.ConnectionClosed as exc:
            closes.append(exc.rcvd)

    server, uri = await ws_server(handler)
    async with server:
        ws = await LIBS[lib](uri)
        with pytest.raises(TypeError, match="^data is a dict-like object$"):
            await ws.send({"a": 1})
        with pytest.raises(TypeError, match="^data must be str, bytes, iterable, or async "
                                            "iterable$"):
            await ws.send(42)
        await ws.send([])  # an empty iterable sends nothing
        with pytest.raises(TypeError, match="^iterable must contain bytes or str$"):
            await ws.send([1, 2])
        assert ws.state is State.CLOSED or int(ws.state) == 3
        with pytest.raises(ConnectionClosed if lib == "femtows"
                           else websockets.exceptions.ConnectionClosed) as info:
            await ws.send("x")
        # After failing the connection, its close frame reply is discarded, as websockets does.
        assert str(info.value) == ("sent 1011 (internal error) error in fragmented message; "
                                   "no close frame received")
        assert ws.close_code == 1006
    assert str(closes[0]) == "1011 (internal error) error in fragmented message"


@pytest.mark.parametrize("lib", LIBS)
async def test_send_mixed_fragments(lib: str) -> None:
    server, uri = await ws_server(echo)

    async def mixed() -> Any:
        yield "a"
        yield b"b"

    async with server:
        ws = await LIBS[lib](uri)
        with pytest.raises(TypeError, match="^async iterable must contain uniform types$"):
            await ws.send(mixed())
        assert ws.close_code == 1006
        ws = await LIBS[lib](uri)
        with pytest.raises(TypeError, match="^iterable must contain uniform types$"):
            await ws.send([b"a", "b"])
        assert ws.close_code == 1006


async def test_recv_concurrency_error() -> None:
    server, uri = await ws_server(echo)
    async with server, fclient.connect(uri) as ws:
        task = asyncio.ensure_future(ws.recv())
        await asyncio.sleep(0)
        with pytest.raises(ConcurrencyError, match="^cannot call recv while another coroutine "
                                                   "is already running recv or recv_streaming$"):
            await ws.recv()
        with pytest.raises(ConcurrencyError, match="^cannot call recv_streaming while another"):
            async for _ in ws.recv_streaming():
                pass
        await ws.send("ok")
        assert await task == "ok"


async def test_recv_cancellation_keeps_messages() -> None:
    server, uri = await ws_server(echo)
    async with server, fclient.connect(uri) as ws:
        # Cancelled while waiting: nothing lost.
        task = asyncio.ensure_future(ws.recv())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await ws.send("after cancel")
        assert await ws.recv() == "after cancel"
        # Cancelled right after the engine handed a message over: the message is kept.
        for decode in (None, False):
            task = asyncio.ensure_future(ws.recv(decode))
            await asyncio.sleep(0)
            ws.on_ws_frame(ws._wst, _make_test_ws_frame(WSMsgType.TEXT, b"handed over"))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await ws.recv() == "handed over"
        # Cancelled, and a message arrives before the cancelled recv() ran: it is queued.
        task = asyncio.ensure_future(ws.recv())
        await asyncio.sleep(0)
        task.cancel()
        ws.on_ws_frame(ws._wst, _make_test_ws_frame(WSMsgType.TEXT, b"after cancel"))
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await ws.recv() == "after cancel"
        # Cancelled in the middle of a fragmented message: the fragments are put back.
        task = asyncio.ensure_future(ws.recv())
        await asyncio.sleep(0)
        ws.on_ws_frame(ws._wst, _make_test_ws_frame(WSMsgType.BINARY, b"ab", fin=False))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        ws.on_ws_frame(ws._wst, _make_test_ws_frame(WSMsgType.CONTINUATION, b"cd"))
        assert await ws.recv() == b"abcd"


# -- closing -------------------------------------------------------------------------------------

async def test_client_close(tls: Any) -> None:
    server, uri = await ws_server(echo, tls)
    async with server:
        ws = await fclient.connect(uri, **client_kwargs(tls))
        assert ws.state is State.OPEN
        assert ws.close_code is None and ws.close_reason is None
        await ws.close()
        assert ws.state is State.CLOSED
        assert (ws.close_code, ws.close_reason) == (1000, "")
        with pytest.raises(ConnectionClosedOK) as info:
            await ws.recv()
        assert str(info.value) == "sent 1000 (OK); then received 1000 (OK)"
        assert info.value.rcvd == Close(1000, "") and info.value.rcvd_then_sent is False
        assert info.value.__cause__ is None
        with pytest.raises(ConnectionClosedOK):
            await ws.send("x")
        await ws.close()  # idempotent
        await ws.wait_closed()


@pytest.mark.parametrize("code,reason,ok", [(1000, "", True), (1001, "bye", True),
                                            (4000, "private", False)])
async def test_server_close(code: int, reason: str, ok: bool) -> None:
    async def handler(ws: Any) -> None:
        await ws.send("last")
        await ws.close(code, reason)

    server, uri = await ws_server(handler)
    async with server:
        ws = await fclient.connect(uri)
        messages = []
        if ok:
            async for message in ws:
                messages.append(message)
        else:
            with pytest.raises(ConnectionClosedError) as info:
                async for message in ws:
                    messages.append(message)
            assert str(info.value) == (f"received {code} (private use) {reason}; "
                                       f"then sent {code} (private use) {reason}")
        assert messages == ["last"]
        assert ws.state is State.CLOSED
        assert (ws.close_code, ws.close_reason) == (code, reason)


@pytest.mark.parametrize("lib", LIBS_17_4)
async def test_abrupt_drop(lib: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(0x1, b"before"))
        writer.write(frame(0x1, b"part", fin=False))

    server, uri = await raw_server(script)
    async with server:
        ws = await LIBS[lib](uri)
        assert await ws.recv() == "before"
        with pytest.raises(Exception) as info:
            await ws.recv()
        assert type(info.value).__name__ == "ConnectionClosedError"
        assert str(info.value) == "no close frame received or sent"
        assert ws.close_code == 1006 and ws.close_reason == ""
        assert isinstance(info.value.__cause__, EOFError)
        assert str(info.value.__cause__) == "unexpected end of stream"


@pytest.mark.parametrize("lib", LIBS_17_4)
async def test_close_timeout(lib: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers the CLOSE; ends when the client aborts

    server, uri = await raw_server(script)
    async with server:
        ws = await LIBS[lib](uri, close_timeout=0.2)
        await ws.close()
        assert int(ws.state) == 3
        assert ws.close_code == 1006
        with pytest.raises(Exception) as info:
            await ws.recv()
        assert str(info.value) == "sent 1000 (OK); no close frame received"
        assert type(info.value.__cause__) is TimeoutError
        assert str(info.value.__cause__) == "timed out while closing connection"


@pytest.mark.parametrize("lib", LIBS)
async def test_close_during_fragmented_send(lib: str) -> None:
    gate = asyncio.Event()
    server, uri = await ws_server(echo)

    async def slow() -> Any:
        yield "a"
        await gate.wait()
        yield "b"

    async with server:
        ws = await LIBS[lib](uri)
        sender = asyncio.ensure_future(ws.send(slow()))
        await asyncio.sleep(0)
        await ws.close()
        assert ws.close_code == 1006
        gate.set()
        with pytest.raises(Exception) as info:
            await sender
        assert str(info.value) == ("sent 1011 (internal error) close during fragmented "
                                   "message; no close frame received")


@pytest.mark.parametrize("raised", [False, True])
async def test_async_with_connection(raised: bool) -> None:
    codes: List[int] = []

    async def handler(ws: Any) -> None:
        await ws.wait_closed()
        codes.append(ws.close_code)

    server, uri = await ws_server(handler)
    async with server:
        ws = await fclient.connect(uri)
        try:
            async with ws as entered:
                assert entered is ws
                if raised:
                    raise KeyError("boom")
        except KeyError:
            pass
    assert codes == [1011 if raised else 1000]


async def test_close_bad_codes() -> None:
    server, uri = await ws_server(echo)
    async with server, fclient.connect(uri) as ws:
        with pytest.raises(ProtocolError, match="^invalid status code"):
            await ws.close(1005)
        with pytest.raises(ProtocolError, match="^control frame too long$"):
            await ws.close(1000, "x" * 124)
        assert ws.state is State.OPEN


# -- limits and protocol errors ------------------------------------------------------------------

@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("max_size,frames,reason", [
    (1000, [(0x2, 1001, True)], "frame with 1001 bytes exceeds limit of 1000 bytes"),
    (1000, [(0x2, 600, False), (0x0, 600, True)],
     "frame with 600 bytes after reading 600 bytes exceeds limit of 1000 bytes"),
    ((None, 500), [(0x1, 501, False)], "frame with 501 bytes exceeds limit of 500 bytes"),
    ((1000, 600), [(0x1, 500, False), (0x0, 501, True)],
     "frame with 501 bytes after reading 500 bytes exceeds limit of 1000 bytes"),
])
async def test_max_size(lib: str, max_size: Any, frames: List[Any], reason: str) -> None:
    if lib == "websockets" and isinstance(max_size, tuple):
        require_reference()  # older websockets take no (message, fragment) limits
    sent: List[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for opcode, size, fin in frames:
            writer.write(frame(opcode, b"a" * size, fin))
        sent.append(await answer_close(reader, writer))

    server, uri = await raw_server(script)
    async with server:
        ws = await LIBS[lib](uri, max_size=max_size)
        with pytest.raises(Exception) as info:
            await ws.recv()
        assert type(info.value).__name__ == "ConnectionClosedError"
        assert str(info.value) == f"sent 1009 (message too big) {reason}; no close frame " \
                                  f"received"
        assert sent == [(1009).to_bytes(2, "big") + reason.encode()]


@pytest.mark.parametrize("lib", LIBS_17_4)
@pytest.mark.parametrize("frames,reason", [
    ([(0x1, b"\xff\xfe", True)], "invalid start byte at position 0"),
    ([(0x1, b"ab\xc3", False), (0x0, b"(", True)], "invalid continuation byte at position 2"),
    ([(0x1, b"ab", False), (0x0, b"\xe2\x82", True)], "unexpected end of data at position 2"),
])
async def test_invalid_utf8(lib: str, frames: List[Any], reason: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(0x1, b"ok"))
        for opcode, payload, fin in frames:
            writer.write(frame(opcode, payload, fin))
        await answer_close(reader, writer)

    server, uri = await raw_server(script)
    async with server:
        ws = await LIBS[lib](uri)
        assert await ws.recv() == "ok"
        with pytest.raises(Exception) as info:
            await ws.recv()
        assert str(info.value) == (f"sent 1007 (invalid frame payload data) {reason}; "
                                   f"no close frame received")
        assert isinstance(info.value.__cause__, UnicodeDecodeError)
        assert ws.close_code == 1006


@pytest.mark.parametrize("lib", LIBS_17_4)
async def test_invalid_utf8_in_binary_decoded(lib: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(0x2, b"a\xff"))
        await answer_close(reader, writer)

    server, uri = await raw_server(script)
    async with server:
        ws = await LIBS[lib](uri)
        with pytest.raises(Exception) as info:
            await ws.recv(decode=True)
        reason = "invalid start byte at position 1"
        assert str(info.value) == (f"sent 1007 (invalid frame payload data) {reason}; "
                                   f"no close frame received")
        assert isinstance(info.value.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("count,ok", [(4096, True), (4097, False)])
async def test_too_many_fragments(lib: str, count: int, ok: bool) -> None:
    if lib == "websockets" and not ok:
        require_reference()  # older websockets have no fragment limit
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(0x2, b"a", fin=False))
        writer.write(frame(0x0, b"a", fin=False) * (count - 2))
        writer.write(frame(0x0, b"a"))
        await answer_close(reader, writer)

    server, uri = await raw_server(script)
    async with server:
        ws = await LIBS[lib](uri)
        if ok:
            assert await ws.recv() == b"a" * count
            await ws.close()
            return
        with pytest.raises(Exception) as info:
            await ws.recv()
        assert str(info.value) == ("sent 1009 (message too big) too many fragments; "
                                   "no close frame received")
        assert type(info.value.__cause__).__name__ == "TooManyFragments"
        assert str(info.value.__cause__) == "fragmented message exceeds limit of 4096 frames"


async def test_close_inside_fragmented_message() -> None:
    # Differs from websockets 17.4 on purpose (it answers 1002): RFC 6455 allows a CLOSE
    # between fragments and Autobahn 7.1.5 expects it echoed; the partial message is dropped.
    sent: List[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(0x1, b"par", fin=False))
        writer.write(close_frame(1000))
        f = await read_frame(reader)
        sent.append(f.payload)

    server, uri = await raw_server(script)
    async with server:
        ws = await fclient.connect(uri)
        with pytest.raises(ConnectionClosedOK) as info:
            await ws.recv()
        assert str(info.value) == "received 1000 (OK); then sent 1000 (OK)"
        assert sent == [(1000).to_bytes(2, "big")]


async def test_flow_control_delivers_everything() -> None:
    async def handler(ws: Any) -> None:
        for i in range(200):
            await ws.send(str(i))
        await ws.send(["x"] * 50)
        await ws.close()

    server, uri = await ws_server(handler)
    async with server:
        for max_queue in (1, (4, 1), None):
            ws = await fclient.connect(uri, max_queue=max_queue)
            messages = [m async for m in ws]
            assert messages == [str(i) for i in range(200)] + ["x" * 50]
        with pytest.raises(ValueError, match="^high must be greater than or equal to low$"):
            await fclient.connect(uri, max_queue=(1, 2))


async def test_write_limit_waits_for_drain() -> None:
    release = asyncio.Event()

    async def handler(ws: Any) -> None:
        await release.wait()
        async for _ in ws:
            pass

    server, uri = await ws_server(handler, max_queue=1)
    async with server:
        # Uncompressed: b"x" * N must fill the buffers.
        ws = await fclient.connect(uri, write_limit=(1024, 0), compression=None)
        chunk = b"x" * 65536
        blocked = None
        for _ in range(10_000):  # until the kernel's buffers are full and a send must wait
            sender = asyncio.ensure_future(ws.send(chunk))
            await asyncio.sleep(0)  # one step: a send that need not wait is done by now
            if not sender.done():
                blocked = sender
                break
        assert blocked is not None
        assert ws.transport.get_write_buffer_size() > 1024
        release.set()
        await blocked  # the peer reads again: the buffer drains below the low-water mark
        await ws.close()


# -- ping / pong / keepalive ---------------------------------------------------------------------

async def test_ping_latency_and_duplicates() -> None:
    server, uri = await ws_server(echo)
    async with server, fclient.connect(uri) as ws:
        assert ws.latency == 0.0
        waiter = await ws.ping()
        latency = await waiter
        # > 0 even on uvloop, whose loop clock has a 1 ms resolution (a loopback RTT is less).
        assert isinstance(latency, float) and latency > 0 and ws.latency == latency
        w1 = await ws.ping("same")
        with pytest.raises(ConcurrencyError, match="^already waiting for a pong with the same "
                                                   "data$"):
            await ws.ping(b"same")
        await w1
        with pytest.raises(TypeError, match="^data must be str or bytes-like$"):
            await ws.ping(5)  # type: ignore[arg-type]
        await ws.pong(b"unsolicited")


async def test_pending_ping_fails_on_close() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_close(reader, writer)  # pings are read and never answered

    server, uri = await raw_server(script)
    async with server:
        ws = await fclient.connect(uri, ping_interval=None)
        waiter = await ws.ping(b"lost")
        await ws.close()
        with pytest.raises(ConnectionClosedOK):
            await waiter
        with pytest.raises(ConnectionClosedOK):
            await ws.ping()
        with pytest.raises(ConnectionClosedOK):
            await ws.pong()


async def test_recv_streaming() -> None:
    async def handler(ws: Any) -> None:
        await ws.send(["a", "é", "b"])
        await ws.send([b"x", b"y"])
        await ws.send("whole")
        await ws.send(b"\xc3\xa9")
        await ws.close()

    server, uri = await ws_server(handler)
    async with server:
        ws = await fclient.connect(uri)
        assert [f async for f in ws.recv_streaming()] == ["a", "é", "b", ""]
        assert [f async for f in ws.recv_streaming(decode=True)] == ["x", "y", ""]
        assert [f async for f in ws.recv_streaming(decode=False)] == [b"whole"]
        assert [f async for f in ws.recv_streaming(decode=True)] == ["é"]
        with pytest.raises(ConnectionClosedOK):
            async for _ in ws.recv_streaming():
                pass


async def test_pong_acknowledges_earlier_pings() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await read_frame(reader)
        second = await read_frame(reader)
        assert (first.opcode, second.opcode) == (0x9, 0x9)
        writer.write(frame(0xA, second.payload))  # only the latest ping is answered
        await answer_close(reader, writer)

    server, uri = await raw_server(script)
    async with server:
        ws = await fclient.connect(uri, ping_interval=None)
        w1 = await ws.ping(b"1")
        w2 = await ws.ping(b"2")
        assert isinstance(await w1, float) and isinstance(await w2, float)
        await ws.close()


@pytest.mark.parametrize("lib", LIBS)
async def test_keepalive_timeout(lib: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # pings are never answered
            f = await read_frame(reader)
            if f.opcode == 0x8:
                writer.write(frame(0x8, f.payload))
                return

    server, uri = await raw_server(script)
    async with server:
        ws = await LIBS[lib](uri, ping_interval=0.05, ping_timeout=0.1)
        with pytest.raises(Exception) as info:
            await ws.recv()
        assert str(info.value) == ("sent 1011 (internal error) keepalive ping timeout; "
                                   "no close frame received")
        assert ws.close_code == 1006


async def test_keepalive_keeps_connection() -> None:
    server, uri = await ws_server(echo)
    async with server, fclient.connect(uri, ping_interval=0.02, ping_timeout=1) as ws:
        waiter = await ws.ping()
        await waiter
        for _ in range(3):
            await ws.send("x")
            assert await ws.recv() == "x"
        assert ws.keepalive_task is not None


# -- attributes ----------------------------------------------------------------------------------

async def test_attributes(tls: Any, caplog: pytest.LogCaptureFixture) -> None:
    server, uri = await ws_server(echo, tls)
    async with server, fclient.connect(uri, **client_kwargs(tls)) as ws:
        assert isinstance(ws.id, uuid.UUID)
        assert isinstance(ws.logger, logging.LoggerAdapter)
        assert ws.logger.logger.name == "websockets.client"
        assert ws.logger.extra is not None and ws.logger.extra["websocket"].id == ws.id
        assert ws.local_address == ws.transport.get_extra_info("sockname")
        assert ws.remote_address[:2] == ("127.0.0.1", int(uri.rsplit(":", 1)[1].strip("/")))
        assert ws.request is not None and ws.request.path == "/"
        assert ws.request.headers["Upgrade"] == "websocket"
        assert ws.response is not None and ws.response.status_code == 101
        assert ws.response.reason_phrase == "Switching Protocols"
        assert ws.subprotocol is None
        assert ws.protocol.state is State.OPEN
        ws.user = "alice"  # instances take attributes
        assert ws.user == "alice"
        assert type(ws).__name__ == "ClientConnection"


# -- broadcast -----------------------------------------------------------------------------------

async def test_broadcast(caplog: pytest.LogCaptureFixture) -> None:
    got: List[Any] = []

    async def handler(ws: Any) -> None:
        async for message in ws:
            got.append(message)

    server, uri = await ws_server(handler)
    async with server:
        a = await fclient.connect(uri)
        b = await fclient.connect(uri)
        closed = await fclient.connect(uri)
        await closed.close()
        broadcast([a, b, closed], "hi")
        broadcast([a], b"raw")
        broadcast([a], "as-bytes", text=False)
        with pytest.raises(TypeError, match="^data must be str or bytes$"):
            broadcast([a], 1)  # type: ignore[arg-type]
        gate = asyncio.Event()

        async def slow() -> Any:
            yield "x"
            await gate.wait()
            yield "y"

        sender = asyncio.ensure_future(b.send(slow()))
        await asyncio.sleep(0)
        with caplog.at_level(logging.WARNING, "websockets.client"):
            broadcast([b], "skipped")
        assert "skipped broadcast: sending a fragmented message" in caplog.text
        with pytest.raises(BaseException) as info:
            broadcast([a, b], "z", raise_exceptions=True)
        group = info.value
        assert str(group).startswith("skipped broadcast")
        assert [type(e) for e in group.exceptions] == [ConcurrencyError]  # type: ignore
        gate.set()
        await sender
        await a.close()
        await b.close()
    assert sorted(map(repr, got)) == sorted(map(repr, ["hi", "hi", b"raw", b"as-bytes", "z",
                                                       "xy"]))


# -- cancellation of close and send --------------------------------------------------------------

async def test_cancel_close_then_wait_closed() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers the CLOSE

    server, uri = await raw_server(script)
    async with server:
        ws = await fclient.connect(uri, close_timeout=0.3)
        closer = asyncio.ensure_future(ws.close())
        await asyncio.sleep(0)
        assert ws.state is State.CLOSING
        closer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closer
        await ws.wait_closed()  # the close timer still ends the connection
        assert ws.state is State.CLOSED and ws.close_code == 1006


async def test_cancel_blocked_send() -> None:
    release = asyncio.Event()

    async def handler(ws: Any) -> None:
        await release.wait()
        async for _ in ws:
            pass

    server, uri = await ws_server(handler, max_queue=1)
    async with server:
        # Uncompressed: b"x" * N must fill the buffers.
        ws = await fclient.connect(uri, write_limit=1024, compression=None)
        for _ in range(10_000):
            sender = asyncio.ensure_future(ws.send(b"x" * 65536))
            await asyncio.sleep(0)
            if not sender.done():
                break
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
        release.set()
        await ws.send("still usable")  # the cancelled send's frame was already written
        await ws.close()
        assert ws.close_code == 1000


async def test_keepalive_disabled_and_timeouts_none() -> None:
    server, uri = await ws_server(echo)
    async with server:
        async with fclient.connect(uri, ping_interval=None, close_timeout=None,
                                   open_timeout=None, write_limit=4096) as ws:
            assert ws.keepalive_task is None
            await ws.send("x")
            assert await ws.recv() == "x"
        assert ws.close_code == 1000


# -- DEBUG log -----------------------------------------------------------------------------------

@needs_reference  # older websockets log otherwise
async def test_debug_log_lines_match_websockets(caplog: pytest.LogCaptureFixture) -> None:
    server, uri = await ws_server(echo, compression=None)
    logs = {}
    async with server:
        for lib in LIBS:
            caplog.clear()
            with caplog.at_level(logging.DEBUG, "websockets.client"):
                async with LIBS[lib](uri, compression=None, ping_interval=None,
                                     user_agent_header=None) as ws:
                    await ws.send("hello")
                    await ws.recv()
                    await ws.send(b"\x00\x01")
                    await ws.recv()
                    await ws.send(["a", "b"])
                    await ws.recv()
                    await (await ws.ping(b"p"))
            lines = []
            for record in caplog.records:
                if record.name != "websockets.client":
                    continue
                line = record.getMessage()
                if line.startswith(("> Sec-WebSocket-Key", "< Sec-WebSocket-Accept", "< Date",
                                    "> Host", "< Server")):
                    line = line.split(":")[0]
                lines.append(line)
            logs[lib] = lines
    # websockets' client also logs "> EOF" and "x half-closing TCP connection" after the
    # server's FIN; femtows lets the server close (the core does not half-close).
    expected = [line for line in logs["websockets"]
                if line not in ("> EOF", "x half-closing TCP connection")]
    assert logs["femtows"] == expected
    assert "< TEXT 'hello' [5 bytes]" in expected
