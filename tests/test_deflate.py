"""permessage-deflate in the core: wire bytes, fragmentation, limits and errors.

Raw peers (asyncio streams, frames encoded by hand) talk to femtows so that every byte femtows
puts on the wire can be compared with a reference built with Python's ``zlib`` module:
``compressobj(wbits=-bits).compress(m) + flush(Z_SYNC_FLUSH)`` minus the trailing
``00 00 ff ff`` (RFC 7692 §7.2.1), one compressor per connection with context takeover, a fresh
one per message without.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import zlib
from typing import Any, AsyncIterator, Optional

import pytest

import femtows
from femtows import WSDeflateConfig, WSMsgType, WSProtocolError, WSTransport
from tests.utils import (
    RecordingListener,
    close_payload,
    encode_frame,
    raw_upgrade_request,
    read_frame,
    read_until_eof,
    start_echo_server,
)

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1 = 0x40
TAIL = b"\x00\x00\xff\xff"
PMD = "permessage-deflate"

MESSAGES = [
    b'{"sym":"EURUSD","bid":1.0842,"ask":1.0843,"ts":1700000000123}' * 20,
    b"",
    b"x",
    bytes(range(256)) * 300,  # 76 KiB, little redundancy
    b'{"sym":"EURUSD","bid":1.0842,"ask":1.0843,"ts":1700000000124}' * 20,
]


class Reference:
    """What a zlib-module sender puts on the wire for each message."""

    def __init__(self, bits: int = 15, takeover: bool = True, mem_level: int = 5,
                 level: int = 1) -> None:
        # level 1, memLevel 5: femtows's defaults (WSDeflateConfig).
        self.bits = bits
        self.takeover = takeover
        self.mem_level = mem_level
        self.level = level
        self.comp = self._new()

    def _new(self) -> Any:
        return zlib.compressobj(self.level, zlib.DEFLATED, -self.bits, self.mem_level)

    def frame(self, data: bytes, fin: bool = True) -> bytes:
        out = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        if fin:
            assert out.endswith(TAIL)
            out = out[:-4]
            if not self.takeover:
                self.comp = self._new()
        return out


def inflater(bits: int = 15) -> Any:
    return zlib.decompressobj(-bits)


class RawPeer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 head: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.head = head

    @property
    def extensions(self) -> Optional[str]:
        match = re.search(rb"(?im)^sec-websocket-extensions:[ \t]*(.*?)\r$", self.head)
        return match.group(1).decode() if match else None

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def expect_close(self, code: int) -> None:
        frame = await read_frame(self.reader)
        assert (frame.opcode, frame.close_code) == (CLOSE, code), frame
        self.send(encode_frame(CLOSE, close_payload(code)))
        assert await read_until_eof(self.reader) == b""


@contextlib.asynccontextmanager
async def raw_client(offer: Optional[str], listener_cls: Any = None,
                     **server_kwargs: Any) -> AsyncIterator[tuple[RawPeer, Any]]:
    """A femtows server and a raw client that offered ``offer``; yields (peer, listener)."""
    listeners: list[Any] = []

    def factory(request: femtows.WSUpgradeRequest) -> Any:
        listeners.append((listener_cls or RecordingListener)())
        return listeners[-1]

    server = await femtows.ws_create_server(factory, "127.0.0.1", 0, **server_kwargs)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            extra = f"Sec-WebSocket-Extensions: {offer}\r\n".encode() if offer else b""
            writer.write(raw_upgrade_request(extra=extra))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 101 "), head
            await asyncio.wait_for(listeners[0].connected.wait(), 5)
            yield RawPeer(reader, writer, head), listeners[0]
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_server(answer: Optional[str], **connect_kwargs: Any
                     ) -> AsyncIterator[tuple[RawPeer, WSTransport, Any, bytes]]:
    """A raw server answering ``answer`` and a femtows client connected to it; yields
    (peer, transport, listener, request head)."""
    accepted: asyncio.Queue[RawPeer] = asyncio.Queue()
    request_heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_heads.append(head)
        key = re.search(rb"(?im)^sec-websocket-key:[ \t]*(\S+)", head)
        assert key is not None
        from femtows.handshake import compute_accept

        extra = f"Sec-WebSocket-Extensions: {answer}\r\n" if answer else ""
        writer.write(
            (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Accept: {compute_accept(key.group(1).decode())}\r\n{extra}\r\n"
             ).encode())
        await accepted.put(RawPeer(reader, writer, head))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        try:
            port = server.sockets[0].getsockname()[1]
            transport, listener = await femtows.ws_connect(
                RecordingListener, f"ws://127.0.0.1:{port}/", **connect_kwargs
            )
            peer = await asyncio.wait_for(accepted.get(), 5)
            try:
                yield peer, transport, listener, request_heads[0]
            finally:
                transport.disconnect(False)
                peer.writer.close()
        finally:
            # When ws_connect refuses the answer, the accepted peer is still queued and open:
            # close it, or Server.wait_closed (3.12+ waits for every connection) never returns.
            while not accepted.empty():
                accepted.get_nowait().writer.close()


# -- byte-exact wire checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "offer, config, bits, takeover",
    [
        # "deflate" on a server: 12-bit window, memLevel 5 (WSDeflateConfig.server()).
        (PMD, "deflate", 12, True),
        (f"{PMD}; server_no_context_takeover", "deflate", 12, False),
        (f"{PMD}; server_max_window_bits=10", "deflate", 10, True),
        (PMD, WSDeflateConfig(), 15, True),
        (PMD, WSDeflateConfig(server_no_context_takeover=True, server_max_window_bits=9), 9,
         False),
        (PMD, WSDeflateConfig(mem_level=5, server_max_window_bits=12), 12, True),
        (PMD, WSDeflateConfig(compress_level=6), 15, True),
    ],
    ids=["takeover", "no-takeover", "bits10", "full-window", "server-forced", "memlevel5",
         "level6"],
)
async def test_server_sends_reference_bytes(offer, config, bits, takeover):
    """What the server compresses is byte for byte what zlib's module makes, with the
    negotiated window and context takeover (or not)."""
    mem_level = config.mem_level if isinstance(config, WSDeflateConfig) else 5
    level = config.compress_level if isinstance(config, WSDeflateConfig) else 1
    async with raw_client(offer, compression=config) as (peer, listener):
        assert peer.extensions is not None and peer.extensions.startswith(PMD)
        assert listener.transport.compression.local_max_window_bits == bits
        ref = Reference(bits, takeover, mem_level, level)
        for message in MESSAGES:
            listener.transport.send(WSMsgType.BINARY, message)
            frame = await read_frame(peer.reader)
            assert (frame.opcode, frame.rsv, frame.fin, frame.masked) == (BINARY, RSV1, True,
                                                                           False)
            assert frame.payload == ref.frame(message)


@pytest.mark.parametrize(
    "answer, bits, takeover",
    [
        (PMD, 15, True),
        (f"{PMD}; client_no_context_takeover", 15, False),
        (f"{PMD}; client_max_window_bits=11", 11, True),
        (f"{PMD}; client_max_window_bits=9; client_no_context_takeover", 9, False),
    ],
)
async def test_client_sends_reference_bytes(answer, bits, takeover):
    async with raw_server(answer, compression="deflate") as (peer, transport, _, head):
        assert b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" in head
        assert transport.compression is not None
        ref = Reference(bits, takeover)
        for message in MESSAGES:
            transport.send(WSMsgType.TEXT if message.isascii() else WSMsgType.BINARY, message)
            frame = await read_frame(peer.reader)
            assert frame.masked and frame.rsv == RSV1 and frame.fin
            assert frame.payload == ref.frame(message)


async def test_receive_with_and_without_takeover():
    """Frames compressed by zlib's module (one stream across messages, or a new one per
    message) arrive decompressed, with rsv1 cleared."""
    for offer, takeover in ((PMD, True), (f"{PMD}; client_no_context_takeover", False)):
        async with raw_client(offer, compression="deflate") as (peer, listener):
            ref = Reference(15, takeover)
            for message in MESSAGES:
                peer.send(encode_frame(BINARY, ref.frame(message), rsv=RSV1))
            frames = await asyncio.wait_for(listener.wait_frames(len(MESSAGES)), 5)
            assert frames == [(WSMsgType.BINARY, m, True) for m in MESSAGES]


async def test_fragmented_receive_is_inflated_frame_by_frame():
    """One compressed message in three frames (RSV1 on the first only): each frame is
    delivered decompressed as it arrives; uncompressed messages still work in between."""
    async with raw_client(PMD, compression="deflate") as (peer, listener):
        ref = Reference()
        parts = [b"alpha " * 50, b"beta " * 40, "gamma ω".encode() * 30]
        peer.send(encode_frame(TEXT, ref.frame(parts[0], fin=False), fin=False, rsv=RSV1))
        await asyncio.wait_for(listener.wait_frames(1), 5)
        assert listener.frames[0] == (WSMsgType.TEXT, parts[0], False)
        # A control frame in the middle of the compressed message.
        peer.send(encode_frame(PING, b"p"))
        pong = await read_frame(peer.reader)
        assert (pong.opcode, pong.payload, pong.rsv) == (PONG, b"p", 0)
        peer.send(encode_frame(CONT, ref.frame(parts[1], fin=False), fin=False))
        peer.send(encode_frame(CONT, ref.frame(parts[2]), fin=True))
        peer.send(encode_frame(BINARY, b"raw"))  # uncompressed message, no RSV1
        frames = await asyncio.wait_for(listener.wait_frames(4), 5)
        assert frames[1:] == [
            (WSMsgType.CONTINUATION, parts[1], False),
            (WSMsgType.CONTINUATION, parts[2], True),
            (WSMsgType.BINARY, b"raw", True),
        ]


async def test_fragmented_send_streams_and_matches_reference():
    async with raw_client(PMD, compression="deflate") as (peer, listener):
        t = listener.transport
        ref = Reference()
        t.send(WSMsgType.TEXT, "first part " * 30, fin=False)
        t.send(WSMsgType.CONTINUATION, b"second part " * 30, fin=False)
        t.send(WSMsgType.CONTINUATION, b"", fin=True)
        t.send(WSMsgType.BINARY, b"unfragmented " * 10)
        expected = [
            (TEXT, RSV1, False, ref.frame(b"first part " * 30, fin=False)),
            (CONT, 0, False, ref.frame(b"second part " * 30, fin=False)),
            (CONT, 0, True, ref.frame(b"")),
            (BINARY, RSV1, True, ref.frame(b"unfragmented " * 10)),
        ]
        for opcode, rsv, fin, payload in expected:
            frame = await read_frame(peer.reader)
            assert (frame.opcode, frame.rsv, frame.fin, frame.payload) == (opcode, rsv, fin,
                                                                           payload)


async def test_send_uncompressed_per_message():
    async with raw_client(PMD, compression="deflate") as (peer, listener):
        t = listener.transport
        t.send(WSMsgType.BINARY, b"plain", compress=False)
        t.send(WSMsgType.TEXT, "a", fin=False, compress=False)
        t.send(WSMsgType.CONTINUATION, "b", compress=True)  # follows the first frame
        t.send_reuse_external_bytearray(WSMsgType.BINARY, bytearray(14) + b"zzzz" * 50, 14)
        got = [await read_frame(peer.reader) for _ in range(4)]
        assert [(f.opcode, f.rsv, f.payload) for f in got[:3]] == [
            (BINARY, 0, b"plain"), (TEXT, 0, b"a"), (CONT, 0, b"b")]
        assert got[3].rsv == RSV1
        assert inflater().decompress(got[3].payload + TAIL) == b"zzzz" * 50
        with pytest.raises(ValueError, match="compress=False"):
            t.send(WSMsgType.BINARY, b"x", rsv1=True)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
async def test_control_frame_with_rsv1_is_1002(opcode):
    payload = close_payload(1000) if opcode == CLOSE else b"x"
    async with raw_client(PMD, compression="deflate") as (peer, listener):
        peer.send(encode_frame(opcode, payload, rsv=RSV1) + encode_frame(BINARY, b"after"))
        await peer.expect_close(1002)
        assert listener.frames == []


async def test_continuation_with_rsv1_is_1002():
    async with raw_client(PMD, compression="deflate") as (peer, listener):
        ref = Reference()
        peer.send(encode_frame(TEXT, ref.frame(b"a", fin=False), fin=False, rsv=RSV1))
        peer.send(encode_frame(CONT, ref.frame(b"b"), rsv=RSV1))
        await peer.expect_close(1002)
        assert listener.frames == [(WSMsgType.TEXT, b"a", False)]


@pytest.mark.parametrize("offer, compression", [(PMD, None), (None, "deflate")],
                         ids=["server-off", "client-did-not-offer"])
async def test_rsv1_without_negotiation_is_1002(offer, compression):
    """compression=None (or nothing agreed): RSV1 stays a protocol error, nothing answered."""
    async with raw_client(offer, compression=compression) as (peer, listener):
        assert peer.extensions is None
        assert listener.transport.compression is None
        peer.send(encode_frame(BINARY, Reference().frame(b"hello"), rsv=RSV1))
        await peer.expect_close(1002)
        assert listener.frames == []


async def test_corrupt_deflate_data_is_1002():
    async with raw_client(PMD, compression="deflate") as (peer, listener):
        peer.send(encode_frame(BINARY, b"\xff\xff\xff\xff garbage", rsv=RSV1))
        await peer.expect_close(1002)
        assert listener.frames == []


async def test_invalid_utf8_after_inflation_is_1007():
    async with raw_client(PMD, compression="deflate") as (peer, listener):
        ref = Reference()
        peer.send(encode_frame(TEXT, ref.frame(b"ok \xce", fin=False), fin=False, rsv=RSV1))
        peer.send(encode_frame(CONT, ref.frame(b"\xff")))
        await peer.expect_close(1007)


# -- bombs ---------------------------------------------------------------------------------------

# A fresh compressor's sync-flushed segment for 1 MiB of zeros is ~1 KiB and only refers back
# one byte, so segments concatenate into a valid stream: 1024 of them are ~1 MiB that inflate to
# 1 GiB, built in microseconds.
_SEGMENT = (lambda c: c.compress(bytes(1 << 20)) + c.flush(zlib.Z_SYNC_FLUSH))(
    zlib.compressobj(9, zlib.DEFLATED, -15)
)


def _vm_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"{field}:\s+(\d+) kB", f.read())
    assert match is not None
    return int(match.group(1))


async def test_small_frame_bomb_is_1009():
    """A 1 KiB frame that inflates to 1 MiB, against a 64 KiB limit: 1009."""
    assert len(_SEGMENT) < 1100
    async with raw_client(PMD, compression="deflate", max_frame_size=65536) as (peer, listener):
        peer.send(encode_frame(BINARY, _SEGMENT, rsv=RSV1))
        await peer.expect_close(1009)
        assert listener.frames == []


async def test_gigabyte_bomb_is_refused_within_the_limit():
    """~1 MiB on the wire inflating to 1 GiB: 1009 as soon as the 8 MiB limit is passed, and
    the process's peak RSS grows by less than 2x the limit meanwhile."""
    limit = 8 << 20
    bomb = _SEGMENT * 1024
    frame = encode_frame(BINARY, bomb, rsv=RSV1)
    async with raw_client(PMD, compression="deflate", max_frame_size=limit) as (peer, listener):
        base = _vm_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM (peak RSS) to the current RSS
        peer.send(frame)
        await peer.expect_close(1009)
        grown = (_vm_kib("VmHWM") - base) * 1024
        assert listener.frames == []
        assert grown < 2 * limit, f"peak RSS grew by {grown} bytes"


async def test_error_reaches_wait_disconnected_on_client():
    async with raw_server(PMD, compression="deflate", max_frame_size=65536) as (
            peer, transport, _, _head):
        peer.send(encode_frame(BINARY, _SEGMENT, rsv=RSV1, mask=False))
        frame = await read_frame(peer.reader)
        assert frame.close_code == 1009
        peer.writer.close()
        with pytest.raises(WSProtocolError):
            await transport.wait_disconnected()


# -- femtows to femtows, API ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "client_cfg, server_cfg",
    [
        ("deflate", "deflate"),
        (WSDeflateConfig(True, True, 10, 9), "deflate"),
        ("deflate", WSDeflateConfig(True, True, 9, 9, compress_level=1, mem_level=1)),
        (WSDeflateConfig(), WSDeflateConfig(client_max_window_bits=12)),
    ],
)
async def test_femtows_round_trip(client_cfg, server_cfg):
    server, url = await start_echo_server(compression=server_cfg)
    async with server:
        transport, client = await femtows.ws_connect(RecordingListener, url,
                                                     compression=client_cfg)
        assert transport.compression is not None
        for i, message in enumerate(MESSAGES):
            transport.send(WSMsgType.BINARY, message)
            assert await client.wait_message(i) == (WSMsgType.BINARY, message)
        transport.send_close(femtows.WSCloseCode.OK)
        await transport.wait_disconnected()


async def test_compression_argument_checked():
    with pytest.raises(ValueError, match="compression"):
        await femtows.ws_create_server(lambda r: None, "127.0.0.1", 0, compression="gzip")
    with pytest.raises(ValueError, match="client offer"):
        await femtows.ws_create_server(lambda r: None, "127.0.0.1", 0,
                                       compression=WSDeflateConfig(client_max_window_bits=True))
    with pytest.raises(ValueError, match="extra_headers"):
        await femtows.ws_connect(RecordingListener, "ws://127.0.0.1:9/", compression="deflate",
                                 extra_headers={"Sec-WebSocket-Extensions": PMD})


async def test_client_refuses_bad_answer():
    """An answer the client did not offer fails ws_connect with WSInvalidHeaderError."""
    with pytest.raises(femtows.WSInvalidHeaderError, match="client_max_window_bits"):
        async with raw_server(f"{PMD}; client_max_window_bits=10",
                              compression=WSDeflateConfig()):
            pass


async def test_client_without_compression_ignores_extensions_header():
    """compression=None: the response's extensions are the user's business, as before."""
    async with raw_server(PMD) as (peer, transport, _, head):
        assert b"Sec-WebSocket-Extensions" not in head
        assert transport.compression is None
        peer.send(encode_frame(BINARY, b"x", rsv=RSV1, mask=False))
        frame = await read_frame(peer.reader)
        assert frame.close_code == 1002


# -- the zlib layer itself (femtows/_core/pmd.pyx) -----------------------------------------------


def test_pmd_codec_limits_and_close():
    from femtows._core.pmd import PerMessageDeflate, zlib_version

    assert zlib_version().startswith("1.")
    params = femtows.WSDeflateParams(False, True, 8, 10)
    sender, receiver = PerMessageDeflate(params), PerMessageDeflate(params)
    ref = Reference(10, takeover=False)
    for message in MESSAGES:
        wire = sender.compress(message)
        assert wire == ref.frame(message)  # local_no_context_takeover: reset per message
    # remote window 8: a zlib peer really compresses with 9 (madler/zlib#171): still inflated.
    nine = Reference(9)
    data = bytes(range(256)) * 40
    assert receiver.decompress(nine.frame(data)) == data
    assert receiver.decompress(_SEGMENT, fin=False, limit=(1 << 20)) == bytes(1 << 20)
    with pytest.raises(WSProtocolError) as info:
        receiver.decompress(_SEGMENT, limit=(1 << 20) - 1)
    assert info.value.code == 1009
    assert receiver.buffer_sizes[0] <= (1 << 20) + 1  # grown to limit + 1 at most
    receiver.close()
    assert receiver.buffer_sizes == (0, 0)
    with pytest.raises(RuntimeError, match="after close"):
        receiver.decompress(b"x")


@pytest.mark.parametrize(
    "answer, active",
    [(f"{PMD}; server_max_window_bits=12", True), (PMD, False),
     (f"{PMD}; server_no_context_takeover", False), ("x-other", False)],
)
async def test_factory_answer_in_custom_101(answer, active):
    """A factory's own 101 with Sec-WebSocket-Extensions: compression runs only if that answer
    is the one the configuration gives."""
    listeners: list[RecordingListener] = []

    def factory(request: femtows.WSUpgradeRequest) -> Any:
        listeners.append(RecordingListener())
        response = femtows.WSUpgradeResponse.create_101_response(
            {"Sec-WebSocket-Extensions": answer})
        return femtows.WSUpgradeResponseWithListener(response, listeners[-1])

    server = await femtows.ws_create_server(factory, "127.0.0.1", 0, compression="deflate")
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw_upgrade_request(extra=f"Sec-WebSocket-Extensions: {PMD}\r\n".encode()))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.count(b"Sec-WebSocket-Extensions") == 1
        await asyncio.wait_for(listeners[0].connected.wait(), 5)
        t = listeners[0].transport
        assert t is not None and (t.compression is not None) == active
        writer.close()
