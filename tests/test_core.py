"""The core API end to end: femtows client against femtows server, over TCP and TLS."""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import femtows
from femtows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from tests.utils import RecordingListener, start_echo_server


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 1024 * 1024, 4 * 1024 * 1024])
async def test_echo_binary_sizes(tls, size):
    """Every length encoding (7-bit, 16-bit, 64-bit) round-trips byte for byte."""
    server, url = await start_echo_server(tls, max_frame_size=8 * 1024 * 1024)
    async with server:
        transport, client = await femtows.ws_connect(
            RecordingListener, url, max_frame_size=8 * 1024 * 1024, **tls.client_kwargs()
        )
        payload = bytes(i % 251 for i in range(size))
        transport.send(WSMsgType.BINARY, payload)
        assert await client.wait_message(0) == (WSMsgType.BINARY, payload)
        transport.send_close(WSCloseCode.OK)
        await transport.wait_disconnected()
        assert transport.is_disconnected


async def test_text_str_and_buffer_types(tls):
    """send() accepts str (UTF-8), bytes, bytearray, memoryview and None."""
    server, url = await start_echo_server(tls)
    async with server:
        transport, client = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        transport.send(WSMsgType.TEXT, "héllo ✓")
        transport.send(WSMsgType.BINARY, bytearray(b"ba"))
        transport.send(WSMsgType.BINARY, memoryview(b"xmvx")[1:3])
        transport.send(WSMsgType.BINARY, None)
        assert await client.wait_message(0) == (WSMsgType.TEXT, "héllo ✓".encode())
        assert await client.wait_message(1) == (WSMsgType.BINARY, b"ba")
        assert await client.wait_message(2) == (WSMsgType.BINARY, b"mv")
        assert await client.wait_message(3) == (WSMsgType.BINARY, b"")
        transport.disconnect()
        await transport.wait_disconnected()


async def test_fragmented_message_is_delivered_frame_by_frame(tls):
    """Fragments reach the listener as frames (CONTINUATION, fin) and echo back in order."""
    server, url = await start_echo_server(tls)
    async with server:
        transport, client = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        transport.send(WSMsgType.TEXT, b"ab", fin=False)
        transport.send_ping(b"in-between")
        transport.send(WSMsgType.CONTINUATION, b"cd", fin=False)
        transport.send(WSMsgType.CONTINUATION, "é", fin=True)
        frames = await client.wait_frames(4)
        assert (WSMsgType.PONG, b"in-between", True) in frames  # PONGs are delivered
        frames = [f for f in frames if f[0] != WSMsgType.PONG]
        assert frames[:3] == [
            (WSMsgType.TEXT, b"ab", False),
            (WSMsgType.CONTINUATION, b"cd", False),
            (WSMsgType.CONTINUATION, "é".encode(), True),
        ]
        transport.disconnect()


async def test_ping_is_auto_ponged_and_not_delivered():
    """A PING from the peer is answered with the same payload and not given to the listener."""
    got: list[tuple[WSMsgType, bytes]] = []

    class Server(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.send_ping(b"are you there")

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            got.append((frame.msg_type, frame.get_payload_as_bytes()))

    server = await femtows.ws_create_server(lambda r: Server(), "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        transport, client = await femtows.ws_connect(RecordingListener, f"ws://127.0.0.1:{port}/")
        transport.send(WSMsgType.TEXT, b"sync")
        while len(got) < 2:
            await asyncio.sleep(0)
        assert got == [(WSMsgType.PONG, b"are you there"), (WSMsgType.TEXT, b"sync")]
        assert client.frames == []
        transport.disconnect()


async def test_close_handshake_records_codes(tls):
    """send_close → peer echoes → both close_handshake records are filled, TCP closes."""
    server, url = await start_echo_server(tls)
    async with server:
        transport, client = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        transport.send_close(WSCloseCode.GOING_AWAY, "bye")
        await transport.wait_disconnected()
        hs = transport.close_handshake
        assert hs is not None
        assert hs.sent.code == WSCloseCode.GOING_AWAY and hs.sent.reason == "bye"
        assert hs.recv.code == WSCloseCode.GOING_AWAY and hs.recv.reason == "bye"
        assert not hs.recv_then_sent
        assert client.frames[-1][0] == WSMsgType.CLOSE


async def test_close_without_listener_reply_is_answered():
    """A listener that ignores CLOSE still gets a clean closing handshake (femtows replies)."""
    server = await femtows.ws_create_server(lambda r: RecordingListener(), "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        transport, client = await femtows.ws_connect(RecordingListener, f"ws://127.0.0.1:{port}/")
        transport.send_close(4001, b"custom")
        await transport.wait_disconnected()
        assert transport.close_handshake.recv.code == 4001


async def test_default_send_close_sends_empty_payload():
    """send_close() with NO_INFO puts an empty CLOSE on the wire (never code 0)."""
    received: list[bytes] = []

    class Server(RecordingListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            received.append(frame.get_payload_as_bytes())

    server = await femtows.ws_create_server(lambda r: Server(), "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        transport, _ = await femtows.ws_connect(RecordingListener, f"ws://127.0.0.1:{port}/")
        transport.send_close()
        await transport.wait_disconnected()
    assert received == [b""]
    assert transport.close_handshake.recv.code == WSCloseCode.OK


async def test_send_after_close_is_ignored_and_bad_sends_raise():
    server, url = await start_echo_server()
    async with server:
        transport, client = await femtows.ws_connect(RecordingListener, url)
        with pytest.raises(ValueError):
            transport.send_ping(b"x" * 126)
        with pytest.raises(ValueError):
            transport.send(WSMsgType.PING, b"x", fin=False)
        with pytest.raises(ValueError):
            transport.send_close(1005)
        with pytest.raises(ValueError):
            transport.send_close(WSCloseCode.OK, "x" * 124)
        with pytest.raises(ValueError):
            transport.send_close(WSCloseCode.NO_INFO, "reason without code")
        transport.send_close(WSCloseCode.OK)
        assert transport.is_close_frame_sent
        transport.send(WSMsgType.TEXT, b"ignored")
        transport.send_close(WSCloseCode.GOING_AWAY)  # a second close is a no-op
        await transport.wait_disconnected()
        assert transport.close_handshake.sent.code == WSCloseCode.OK


async def test_send_reuse_external_bytearray():
    """Header goes in the headroom; on the client the payload is masked in place (documented)."""
    server, url = await start_echo_server()
    async with server:
        transport, client = await femtows.ws_connect(RecordingListener, url)
        buf = bytearray(14) + bytearray(b"zero copy")
        transport.send_reuse_external_bytearray(WSMsgType.BINARY, buf, 14)
        assert await client.wait_message(0) == (WSMsgType.BINARY, b"zero copy")
        assert buf[14:] != b"zero copy"  # masked in place on the client side
        with pytest.raises(ValueError):
            transport.send_reuse_external_bytearray(WSMsgType.BINARY, bytearray(20), 13)
        with pytest.raises(ValueError):
            transport.send_reuse_external_bytearray(WSMsgType.BINARY, bytearray(20), 21)
        with pytest.raises(ValueError):
            transport.send_reuse_external_bytearray(WSMsgType.CLOSE, bytearray(20), 14)
        transport.disconnect()


async def test_on_ws_frame_exception_is_reraised_by_wait_disconnected():
    class Boom(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            raise RuntimeError("boom")

    server, url = await start_echo_server()
    async with server:
        transport, _ = await femtows.ws_connect(Boom, url)
        transport.send(WSMsgType.TEXT, b"x")
        with pytest.raises(RuntimeError, match="boom"):
            await transport.wait_disconnected()
        assert transport.close_handshake.sent.code == WSCloseCode.INTERNAL_ERROR


async def test_disconnect_on_exception_false_keeps_connection():
    class Flaky(RecordingListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            super().on_ws_frame(transport, frame)
            if len(self.frames) == 1:
                raise RuntimeError("first one fails")

    server, url = await start_echo_server()
    async with server:
        transport, client = await femtows.ws_connect(Flaky, url, disconnect_on_exception=False)
        transport.send(WSMsgType.TEXT, b"1")
        transport.send(WSMsgType.TEXT, b"2")
        await client.wait_frames(2)
        assert not transport.is_disconnected
        transport.send_close(WSCloseCode.OK)
        await transport.wait_disconnected()  # nothing re-raised


async def test_protocol_error_raised_by_listener_picks_close_code():
    class Picky(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            raise femtows.WSProtocolError(WSCloseCode.POLICY_VIOLATION, "not allowed")

    server, url = await start_echo_server()
    async with server:
        transport, _ = await femtows.ws_connect(Picky, url)
        transport.send(WSMsgType.TEXT, b"x")
        with pytest.raises(femtows.WSProtocolError):
            await transport.wait_disconnected()
        assert transport.close_handshake.sent.code == WSCloseCode.POLICY_VIOLATION


async def test_listener_factory_forms_and_request_response():
    """The client factory may take (request, response) or nothing."""
    seen = []

    def two_args(request: femtows.WSUpgradeRequest, response: femtows.WSUpgradeResponse):
        seen.append((request, response))
        return RecordingListener()

    server, url = await start_echo_server()
    async with server:
        transport, _ = await femtows.ws_connect(two_args, url, extra_headers={"X-Test": "1"})
        request, response = seen[0]
        assert request.headers["X-Test"] == "1"
        assert int(response.status) == 101
        assert transport.request is request and transport.response is response
        transport.disconnect()
        transport2, _ = await femtows.ws_connect(RecordingListener, url)
        assert transport2.is_client_side and not transport2.is_secure
        weakref.ref(transport2)  # transports support weak references
        transport2.disconnect()


async def test_wrong_thread_raises():
    server, url = await start_echo_server()
    async with server:
        transport, _ = await femtows.ws_connect(RecordingListener, url)
        errors = []

        def other_thread() -> None:
            try:
                transport.send(WSMsgType.TEXT, b"x")
            except RuntimeError as e:
                errors.append(str(e))

        await asyncio.to_thread(other_thread)
        assert errors and "wrong thread" in errors[0]
        transport.disconnect()


async def test_measure_roundtrip_time():
    server, url = await start_echo_server()
    async with server:

        class Pinger(WSListener):
            pass

        transport, _ = await femtows.ws_connect(Pinger, url)
        # The echo server's library auto-pongs our PINGs; each round is a positive duration.
        rtts = await transport.measure_roundtrip_time(3)
        assert len(rtts) == 3 and all(r > 0 for r in rtts)
        transport.disconnect()


async def test_ws_connect_raises_when_server_closes_before_upgrade():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with srv:
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(femtows.WSHandshakeError):
            await femtows.ws_connect(RecordingListener, f"ws://127.0.0.1:{port}/")


async def test_handshake_timeout():
    """A server that accepts TCP but never answers the upgrade: TimeoutError, not a hang."""
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        # Python 3.12+ closes the connection when the handler returns: stay silent instead.
        await release.wait()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with srv:
        port = srv.sockets[0].getsockname()[1]
        try:
            with pytest.raises(asyncio.TimeoutError, match="websocket handshake timeout"):
                await femtows.ws_connect(
                    RecordingListener, f"ws://127.0.0.1:{port}/", websocket_handshake_timeout=0.2
                )
        finally:
            release.set()


async def test_last_in_buffer_and_tail_size():
    """Frames that arrive together: only the last one has last_in_buffer, tail_size shrinks."""
    seen: list[tuple[bool, int]] = []
    done = asyncio.Event()

    class Server(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            for i in range(3):
                transport.underlying_transport.write(b"\x82\x01" + bytes([i]))

    class Client(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            seen.append((frame.last_in_buffer, frame.tail_size))
            if len(seen) == 3:
                done.set()

    server = await femtows.ws_create_server(lambda r: Server(), "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        transport, _ = await femtows.ws_connect(Client, f"ws://127.0.0.1:{port}/")
        await done.wait()
        assert seen[-1] == (True, 0)
        if seen[0][1]:  # the three frames arrived in one read
            assert seen == [(False, 6), (False, 3), (True, 0)]
        transport.disconnect()


def test_public_names():
    for name in femtows.__all__:
        assert hasattr(femtows, name), name
    assert femtows.FEMTOWS_DEBUG_LL == 9
    assert WSMsgType.PONG == 0xA and WSCloseCode.BAD_GATEWAY == 1014
    assert femtows.WSAutoPingStrategy.PING_PERIODICALLY == 2


async def test_pause_and_resume_writing_are_forwarded():
    """A slow reader drives the server listener's pause_writing, then resume_writing."""
    paused = asyncio.Event()
    resumed = asyncio.Event()

    class Pusher(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.underlying_transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
            chunk = b"x" * 65536
            while not paused.is_set():
                transport.send(WSMsgType.BINARY, chunk)

        def pause_writing(self) -> None:
            paused.set()

        def resume_writing(self) -> None:
            resumed.set()

    class SlowClient(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.underlying_transport.pause_reading()

    server = await femtows.ws_create_server(lambda r: Pusher(), "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        transport, _ = await femtows.ws_connect(SlowClient, f"ws://127.0.0.1:{port}/")
        await paused.wait()
        assert not resumed.is_set()
        transport.underlying_transport.resume_reading()
        await resumed.wait()
        transport.disconnect()


async def test_tcp_nodelay_is_set(tls):
    import socket

    server, url = await start_echo_server(tls)
    async with server:
        transport, _ = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        sock = transport.underlying_transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert transport.is_secure == tls.enabled
        transport.disconnect()


async def test_reuse_port_is_passed_through():
    """Two servers share one port with reuse_port=True (the multi-threaded server pattern)."""
    first, url = await start_echo_server(None, reuse_port=True)
    port = first.sockets[0].getsockname()[1]
    second = await femtows.ws_create_server(
        lambda r: RecordingListener(), "127.0.0.1", port, reuse_port=True
    )
    async with first, second:
        transport, _ = await femtows.ws_connect(RecordingListener, url)
        transport.disconnect()


async def test_logger_name_forms(caplog):
    """logger_name may be a str (femtows.<str>), a Logger or a LoggerAdapter."""
    import logging

    caplog.set_level(logging.INFO)
    server, url = await start_echo_server(None, logger_name="myserver")
    adapter = logging.LoggerAdapter(logging.getLogger("app.ws"), {})
    async with server:
        t1, _ = await femtows.ws_connect(RecordingListener, url, logger_name="myclient")
        t2, _ = await femtows.ws_connect(RecordingListener, url, logger_name=adapter)
        t1.disconnect()
        t2.disconnect()
        await t1.wait_disconnected()
        await t2.wait_disconnected()
    names = {r.name for r in caplog.records}
    assert any(n.startswith("femtows.myclient.") for n in names), names
    assert "app.ws" in names
    assert any(n.startswith("femtows.myserver.") for n in names), names
    # Per-connection loggers are not registered in the logging manager (no leak).
    assert not any(n.startswith("femtows.myclient.") for n in logging.root.manager.loggerDict)


async def test_small_read_buffer_grows_for_large_frames():
    """read_buffer_init_size is only a start: a 1 MiB frame still arrives whole."""
    server, url = await start_echo_server(None, read_buffer_init_size=16)
    async with server:
        transport, client = await femtows.ws_connect(
            RecordingListener, url, read_buffer_init_size=16
        )
        payload = bytes(range(256)) * 4096
        transport.send(WSMsgType.BINARY, payload)
        assert await client.wait_message(0) == (WSMsgType.BINARY, payload)
        transport.disconnect()


async def test_read_buffer_grows_to_the_largest_frame_not_beyond():
    """A connection that receives 1 MiB messages needs a read buffer of about 1 MiB: the
    buffer is sized for a declared frame and not doubled while the frame is arriving (with
    many connections, doubled buffers fall out of cache and double the memory)."""
    size = 1 << 20
    server, url = await start_echo_server(None)
    async with server:
        transport, client = await femtows.ws_connect(RecordingListener, url)
        # A small socket buffer: each message arrives in many reads, as with many connections.
        sock = transport.underlying_transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        try:
            for i in range(4):
                payload = bytes([i]) * size
                transport.send(WSMsgType.BINARY, payload)
                assert await client.wait_message(i) == (WSMsgType.BINARY, payload)
            protocol = transport.underlying_transport.get_protocol()
            free = memoryview(protocol.get_buffer(-1)).nbytes  # all of it: nothing is buffered
            assert size <= free <= size + 64 * 1024
        finally:
            transport.disconnect()


async def test_on_ws_connected_exception_closes_with_1011_and_is_reraised():
    class Broken(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            raise ValueError("cannot start")

    server, url = await start_echo_server()
    async with server:
        transport, _ = await femtows.ws_connect(Broken, url)
        with pytest.raises(ValueError, match="cannot start"):
            await transport.wait_disconnected()
        assert transport.close_handshake.sent.code == WSCloseCode.INTERNAL_ERROR


async def test_on_ws_disconnected_exception_is_reraised():
    class BadGoodbye(WSListener):
        def on_ws_disconnected(self, transport: WSTransport) -> None:
            raise KeyError("goodbye")

    server, url = await start_echo_server()
    async with server:
        transport, _ = await femtows.ws_connect(BadGoodbye, url)
        transport.send_close(WSCloseCode.OK)
        with pytest.raises(KeyError):
            await transport.wait_disconnected()


async def test_peer_close_with_error_code_does_not_raise():
    """A peer-initiated close never raises from wait_disconnected, whatever its code."""

    class Closer(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.send_close(WSCloseCode.TRY_AGAIN_LATER, "later")

    server = await femtows.ws_create_server(lambda r: Closer(), "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        transport, client = await femtows.ws_connect(RecordingListener, f"ws://127.0.0.1:{port}/")
        await transport.wait_disconnected()
        assert transport.close_handshake.recv.code == WSCloseCode.TRY_AGAIN_LATER
        assert transport.close_handshake.recv_then_sent


def test_test_frame_helper_and_frame_accessors():
    """_make_test_ws_frame builds a standalone WSFrame; every accessor reads its payload."""
    from femtows._core.core import _make_test_ws_frame

    text = _make_test_ws_frame(WSMsgType.TEXT, "héllo".encode(), fin=False)
    assert (text.msg_type, text.fin, text.payload_size) == (WSMsgType.TEXT, False, 6)
    assert text.get_payload_as_utf8_text() == "héllo"
    assert bytes(text.get_payload_as_memoryview()) == "héllo".encode()
    with pytest.raises(UnicodeDecodeError):
        text.get_payload_as_ascii_text()
    with pytest.raises(ValueError):
        text.get_close_code()
    close = _make_test_ws_frame(WSMsgType.CLOSE, b"\x0f\xa0bye")
    assert close.get_close_code() == 4000 and close.get_close_message() == b"bye"
    assert close.get_close_reason() == "bye"
    empty = _make_test_ws_frame(WSMsgType.CLOSE, b"")
    assert empty.get_close_code() == WSCloseCode.NO_INFO and empty.get_close_message() is None
    assert "CLOSE" in str(close)


def test_mask_impl_names_a_known_variant():
    from femtows._core.core import mask_impl

    assert mask_impl() in ("avx2", "sse2", "scalar")


def _pattern(i: int, size: int) -> bytes:
    """Frame i's payload: period 251 (prime), so a chunk sent twice, dropped, reordered or
    masked with the key at the wrong phase cannot go unnoticed."""
    start = i % 251
    period = bytes(range(start, 251)) + bytes(range(start))
    return (period * (size // 251 + 1))[:size]


@pytest.fixture
def small_mask_chunks() -> Iterator[None]:
    from femtows._core.core import _set_mask_chunk

    old = _set_mask_chunk(65536)
    yield
    _set_mask_chunk(old)


@pytest.mark.parametrize("small_buffers", [True, False], ids=["32k-buffers", "default-buffers"])
@pytest.mark.parametrize("sender_side", ["server", "client"])
async def test_queued_sends_keep_their_bytes(
    tls, sender_side: str, small_buffers: bool, request: pytest.FixtureRequest
) -> None:
    """Frames that the kernel cannot take at once are queued by the transport; the caller's
    buffer is reused and overwritten right after each send(), and every frame must still
    arrive with the bytes it had when it was sent (the transport copies what it keeps).

    With 32 KiB socket buffers even the first large frame is cut short; with the default
    (auto-tuned, several MB) buffers client frames over 4 MiB (sent in 4 MiB chunks) also stop
    part-way through a frame after a chunk went out whole."""
    if small_buffers:
        sizes = [100_000, 700, 100_000, 16_384, 16_385, 3, 600_000] * 6  # ~5 MB
    else:
        sizes = [5_000_000, 100_000, 700, 1_000_000, 16_385, 3] * 3  # ~18 MB: over the buffers
        # Client frames over the chunk size go out chunk by chunk: with 64 KiB chunks the
        # first chunks of a frame fit in the kernel's buffers whole, later ones do not.
        request.getfixturevalue("small_mask_chunks")
    received: list[bytes] = []
    all_received = asyncio.Event()
    sent = asyncio.Event()
    queued: list[int] = []

    def shrink_socket_buffers(transport: WSTransport) -> None:
        # Small kernel buffers so that the sends below cannot all fit in them.
        if not small_buffers:
            return
        sock = transport.underlying_transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)

    def send_all(transport: WSTransport) -> None:
        shrink_socket_buffers(transport)
        buffer = bytearray(max(sizes))
        for i, size in enumerate(sizes):
            view = memoryview(buffer)[:size]
            view[:] = _pattern(i, size)
            transport.send(WSMsgType.BINARY, view)
            view[:] = b"\xee" * size  # overwrite at once: must not reach the wire
        queued.append(transport.underlying_transport.get_write_buffer_size())
        sent.set()

    class Sender(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            send_all(transport)

    class Receiver(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            shrink_socket_buffers(transport)
            transport.underlying_transport.pause_reading()

            async def resume() -> None:
                await sent.wait()
                transport.underlying_transport.resume_reading()

            asyncio.ensure_future(resume())

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.BINARY:
                received.append(frame.get_payload_as_bytes())
                if len(received) == len(sizes):
                    all_received.set()

    server_listener = Sender if sender_side == "server" else Receiver
    client_listener = Receiver if sender_side == "server" else Sender
    server = await femtows.ws_create_server(
        lambda r: server_listener(), "127.0.0.1", 0, **tls.server_kwargs()
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        transport, _ = await femtows.ws_connect(
            client_listener, f"{tls.scheme}://127.0.0.1:{port}/", **tls.client_kwargs()
        )
        try:
            await all_received.wait()
        finally:
            transport.disconnect()
        assert queued[0] > 0, "nothing was queued: the test did not test queuing"
        assert [len(p) for p in received] == sizes
        for i, payload in enumerate(received):
            assert payload == _pattern(i, sizes[i]), f"frame {i} changed after send()"


@pytest.mark.parametrize("name", ["ssl", "sock", "all_errors"])
async def test_ws_connect_refuses_connection_keywords_it_owns(name: str) -> None:
    with pytest.raises(TypeError, match=name):
        await femtows.ws_connect(RecordingListener, "ws://127.0.0.1:9/", **{name: True})


async def test_picows_legacy_zero_copy_option_is_accepted(tls) -> None:
    """picows 1.x's zero_copy_unsafe_ssl_write is a no-op, accepted on both sides."""
    server = await femtows.ws_create_server(
        lambda r: RecordingListener(), "127.0.0.1", 0, zero_copy_unsafe_ssl_write=True,
        **tls.server_kwargs()
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        transport, _ = await femtows.ws_connect(
            RecordingListener, f"{tls.scheme}://127.0.0.1:{port}/",
            zero_copy_unsafe_ssl_write=True, **tls.client_kwargs()
        )
        assert transport.is_secure == tls.enabled
        transport.disconnect()
        await transport.wait_disconnected()


@pytest.mark.parametrize("form", ["logger", "adapter"])
async def test_server_logger_forms_per_connection(caplog, form: str) -> None:
    """ws_create_server resolves logger_name once: a Logger gets one child per connection
    (distinct names, never registered), an adapter is used as it is for every connection."""
    import logging

    caplog.set_level(logging.INFO)
    base = logging.getLogger("app.server")
    logger_name: Any = base if form == "logger" else logging.LoggerAdapter(base, {})
    server, url = await start_echo_server(None, logger_name=logger_name)
    async with server:
        for _ in range(2):
            transport, _ = await femtows.ws_connect(RecordingListener, url)
            transport.disconnect()
            await transport.wait_disconnected()
    names = [r.name for r in caplog.records if r.name.startswith("app.server")]
    if form == "logger":
        children = {n for n in names if n.startswith("app.server.")}
        assert len(children) == 2, names
        assert not any(n.startswith("app.server.") for n in logging.root.manager.loggerDict)
    else:
        assert names and set(names) == {"app.server"}, names
