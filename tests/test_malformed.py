"""Malformed frames from a raw-socket peer: femtows fails the connection with the exact close code.

Every case writes bytes by hand (tests/utils.py: encode_frame, read_frame), checks the CLOSE code
femtows answers with, that the TCP connection then ends, and that the listener saw nothing from
the bad frame on. The raw peer behaves like a well-behaved endpoint otherwise: when femtows fails
the connection it echoes the CLOSE (RFC 6455 §5.5.1), unless it has already sent a CLOSE itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator, Optional

import pytest

import femtows
from femtows import WSFrame, WSMsgType, WSTransport
from tests.utils import (
    RecordingListener,
    accept_for,
    close_payload,
    encode_frame,
    raw_upgrade_request,
    read_frame,
    read_until_eof,
)

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1, RSV2, RSV3 = 0x40, 0x20, 0x10

# The raw peer answers femtows's CLOSE at once, so femtows has no reason to wait for its
# close_timeout (5 s by default): the connection must be over well before that.
PROMPT_EOF = 1.0

# A frame sent right after the bad one: it must never reach the listener.
TRAILER = encode_frame(TEXT, b"after the bad frame")


class Listener(RecordingListener):
    """Records (msg_type, payload, fin) and the RSV bits of every frame."""

    def __init__(self) -> None:
        super().__init__()
        self.rsv: list[tuple[bool, bool, bool]] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.rsv.append((frame.rsv1, frame.rsv2, frame.rsv3))
        super().on_ws_frame(transport, frame)


class RawClient:
    """A raw TCP client that did the upgrade by hand, and the server-side listener it talks to."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener: Listener
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.listener = listener

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def expect_close(self, code: int, *, reply: bool = True) -> None:
        """femtows sends CLOSE ``code``; (optionally) echo it; then the server closes TCP."""
        frame = await read_frame(self.reader)
        assert (frame.opcode, frame.close_code) == (CLOSE, code), frame
        assert not frame.masked
        if reply:
            self.send(encode_frame(CLOSE, close_payload(code)))
        try:
            rest = await read_until_eof(self.reader, PROMPT_EOF)
        except asyncio.TimeoutError:
            pytest.fail(
                f"the server sent CLOSE {code} but did not close the TCP connection "
                f"within {PROMPT_EOF}s of the closing handshake (the peer "
                f"{'echoed the CLOSE' if reply else 'had sent its CLOSE first'})"
            )
        assert rest == b""
        await asyncio.wait_for(self.listener.disconnected.wait(), PROMPT_EOF)


@contextlib.asynccontextmanager
async def raw_client(**server_kwargs: Any) -> AsyncIterator[RawClient]:
    """A femtows server (Listener per connection) and a raw client connected to it."""
    listeners: list[Listener] = []

    def factory(request: femtows.WSUpgradeRequest) -> Listener:
        listeners.append(Listener())
        return listeners[-1]

    server = await femtows.ws_create_server(factory, "127.0.0.1", 0, **server_kwargs)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(raw_upgrade_request())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 101 ")
            assert len(listeners) == 1
            await asyncio.wait_for(listeners[0].connected.wait(), 5)
            yield RawClient(reader, writer, listeners[0])
        finally:
            writer.close()


async def assert_rejected(
    bad: bytes,
    code: int,
    *,
    before: bytes = b"",
    delivered_before: Optional[list] = None,
    reply: bool = True,
    **server_kwargs: Any,
) -> None:
    """Send ``before`` (delivered), then ``bad`` + TRAILER: CLOSE ``code``, EOF, nothing more."""
    delivered_before = delivered_before or []
    async with raw_client(**server_kwargs) as client:
        if before:
            client.send(before)
            await asyncio.wait_for(client.listener.wait_frames(len(delivered_before)), 5)
        client.send(bad + TRAILER)
        await client.expect_close(code, reply=reply)
        assert client.listener.frames == delivered_before


# -- opcodes, RSV bits, masking ------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
async def test_reserved_opcode(opcode):
    """A reserved data or control opcode fails the connection with 1002."""
    await assert_rejected(encode_frame(opcode, b"x"), 1002)


@pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3], ids=["rsv1", "rsv2", "rsv3"])
async def test_rsv_bits_rejected(rsv):
    """An RSV bit without a negotiated extension fails the connection with 1002."""
    await assert_rejected(encode_frame(TEXT, b"x", rsv=rsv), 1002)


@pytest.mark.parametrize(
    "rsv", [RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3], ids=["rsv1", "rsv2", "rsv3", "all"]
)
async def test_rsv_bits_allowed_with_option(rsv):
    """allow_rsv_bits=True delivers the frame with its RSV flags and keeps the connection."""
    async with raw_client(allow_rsv_bits=True) as client:
        client.send(encode_frame(BINARY, b"ext", rsv=rsv))
        assert await asyncio.wait_for(client.listener.wait_frames(1), 5) == [
            (WSMsgType.BINARY, b"ext", True)
        ]
        assert client.listener.rsv == [(bool(rsv & RSV1), bool(rsv & RSV2), bool(rsv & RSV3))]
        client.send(encode_frame(CLOSE, close_payload(1000)))
        await client.expect_close(1000, reply=False)


async def test_unmasked_frame_from_client():
    """A client frame without a mask fails the connection with 1002."""
    await assert_rejected(encode_frame(TEXT, b"plain", mask=False), 1002)


async def test_unmasked_control_frame_from_client():
    """The masking rule applies to control frames too (an unmasked PING is 1002, no PONG)."""
    await assert_rejected(encode_frame(PING, b"p", mask=False), 1002)


# -- control frames -----------------------------------------------------------------------------


async def test_fragmented_ping():
    """A PING with fin=0 fails the connection with 1002."""
    await assert_rejected(encode_frame(PING, b"p", fin=False), 1002)


async def test_ping_with_126_byte_payload():
    """A control frame over 125 bytes fails the connection with 1002 (and is not answered)."""
    await assert_rejected(encode_frame(PING, b"p" * 126), 1002)


async def test_ping_with_125_byte_payload_is_answered():
    """125 bytes is the largest control payload: the PONG echoes it."""
    async with raw_client() as client:
        client.send(encode_frame(PING, b"p" * 125))
        frame = await read_frame(client.reader)
        assert (frame.opcode, frame.payload, frame.fin) == (PONG, b"p" * 125, True)
        client.send(encode_frame(CLOSE, close_payload(1000)))
        await client.expect_close(1000, reply=False)


async def test_control_frame_between_fragments_is_delivered():
    """PING and PONG in the middle of a fragmented message are legal and handled in order."""
    async with raw_client() as client:
        client.send(
            encode_frame(TEXT, b"ab", fin=False)
            + encode_frame(PING, b"ping")
            + encode_frame(PONG, b"pong")
            + encode_frame(CONT, b"cd")
        )
        frames = await asyncio.wait_for(client.listener.wait_frames(3), 5)
        assert frames == [
            (WSMsgType.TEXT, b"ab", False),
            (WSMsgType.PONG, b"pong", True),
            (WSMsgType.CONTINUATION, b"cd", True),
        ]
        frame = await read_frame(client.reader)
        assert (frame.opcode, frame.payload) == (PONG, b"ping")
        client.send(encode_frame(CLOSE, close_payload(1000)))
        await client.expect_close(1000, reply=False)


# -- fragmentation ------------------------------------------------------------------------------


async def test_continuation_without_open_message():
    """A CONTINUATION with no message in progress fails the connection with 1002."""
    await assert_rejected(encode_frame(CONT, b"orphan"), 1002)


async def test_continuation_after_final_frame():
    """Once a message ended (fin=1), a CONTINUATION has nothing to continue: 1002."""
    await assert_rejected(
        encode_frame(CONT, b"late"),
        1002,
        before=encode_frame(TEXT, b"done"),
        delivered_before=[(WSMsgType.TEXT, b"done", True)],
    )


@pytest.mark.parametrize("second", [TEXT, BINARY], ids=["text", "binary"])
async def test_new_data_frame_while_message_open(second):
    """TEXT fin=0 then a new TEXT/BINARY (not a CONTINUATION) fails the connection with 1002."""
    await assert_rejected(
        encode_frame(second, b"new"),
        1002,
        before=encode_frame(TEXT, b"open", fin=False),
        delivered_before=[(WSMsgType.TEXT, b"open", False)],
    )


# -- lengths ------------------------------------------------------------------------------------


async def test_non_minimal_16_bit_length():
    """A 16-bit length field holding a value < 126 fails the connection with 1002."""
    bad = encode_frame(BINARY, b"x" * 5, length=b"\x7e\x00\x05")
    await assert_rejected(bad, 1002)


async def test_non_minimal_64_bit_length():
    """A 64-bit length field holding a value < 65536 fails the connection with 1002."""
    bad = encode_frame(BINARY, b"x" * 200, length=b"\x7f" + (200).to_bytes(8, "big"))
    await assert_rejected(bad, 1002)


async def test_64_bit_length_with_msb_set():
    """A 64-bit length with its most significant bit set fails the connection with 1002."""
    bad = encode_frame(BINARY, b"", length=b"\x7f" + (1 << 63 | 5).to_bytes(8, "big"))
    await assert_rejected(bad, 1002)


async def test_declared_length_over_max_frame_size_fails_before_payload():
    """1009 is sent as soon as the header declares too much; the payload is never awaited."""
    async with raw_client(max_frame_size=1000, close_timeout=0.3) as client:
        client.send(encode_frame(BINARY, b"x" * 1001)[:8])  # 2 + 2 length + 4 mask: no payload
        frame = await read_frame(client.reader)
        assert (frame.opcode, frame.close_code) == (CLOSE, 1009)
        # The peer is in the middle of a frame it cannot finish: femtows ends the connection on
        # its own (close_timeout) instead of waiting for a megabyte that will never come.
        assert await read_until_eof(client.reader, 3) == b""
        await asyncio.wait_for(client.listener.disconnected.wait(), 3)
        assert client.listener.frames == []


async def test_refused_frame_payload_is_skipped_and_close_reply_recognised():
    """After 1009 the refused frame's payload is counted past, not buffered, so the peer can
    finish it and answer our CLOSE: the server then closes at once (no close_timeout wait)."""
    async with raw_client(max_frame_size=1000, close_timeout=30) as client:
        frame_bytes = encode_frame(BINARY, b"x" * 5000)
        client.send(frame_bytes[:8])
        frame = await read_frame(client.reader)
        assert (frame.opcode, frame.close_code) == (CLOSE, 1009)
        client.send(frame_bytes[8:])  # the rest of the refused frame
        client.send(encode_frame(CLOSE, close_payload(1009)))
        assert await read_until_eof(client.reader, PROMPT_EOF) == b""
        assert client.listener.frames == []


async def test_declared_length_equal_to_max_frame_size_is_accepted():
    """max_frame_size is inclusive: a frame of exactly that size is delivered."""
    async with raw_client(max_frame_size=1000) as client:
        client.send(encode_frame(BINARY, b"x" * 1000))
        assert await asyncio.wait_for(client.listener.wait_frames(1), 5) == [
            (WSMsgType.BINARY, b"x" * 1000, True)
        ]
        client.send(encode_frame(CLOSE, close_payload(1000)))
        await client.expect_close(1000, reply=False)


# -- CLOSE frames -------------------------------------------------------------------------------
# The peer has sent its CLOSE already (a bad one): it does not send another, it waits for
# femtows's CLOSE and for the server to close TCP (RFC 6455 §7.1.1).


async def test_close_with_one_byte_payload():
    """A CLOSE payload of 1 byte (half a code) fails the connection with 1002."""
    await assert_rejected(encode_frame(CLOSE, b"\x03"), 1002, reply=False)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
async def test_close_with_forbidden_code(code):
    """A close code that may not be sent on the wire fails the connection with 1002."""
    await assert_rejected(encode_frame(CLOSE, close_payload(code)), 1002, reply=False)


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1012, 1014, 3000, 4999])
async def test_close_with_valid_code_is_echoed(code):
    """A valid close code is delivered to the listener and echoed back (it did not reply)."""
    async with raw_client() as client:
        client.send(encode_frame(CLOSE, close_payload(code, b"why")))
        await client.expect_close(code, reply=False)
        assert client.listener.frames == [(WSMsgType.CLOSE, close_payload(code, b"why"), True)]
        hs = client.listener.transport.close_handshake
        assert (hs.recv.code, hs.recv.reason) == (code, "why")
        assert hs.sent.code == code
        assert hs.recv_then_sent is True


async def test_empty_close_is_answered_with_1000():
    """An empty CLOSE (no code) is echoed as 1000."""
    async with raw_client() as client:
        client.send(encode_frame(CLOSE))
        await client.expect_close(1000, reply=False)
        assert client.listener.frames == [(WSMsgType.CLOSE, b"", True)]


async def test_close_reason_invalid_utf8():
    """A CLOSE reason that is not UTF-8 fails the connection with 1007."""
    await assert_rejected(encode_frame(CLOSE, close_payload(1000, b"bad \xff")), 1007, reply=False)


# -- UTF-8 --------------------------------------------------------------------------------------


async def test_text_invalid_utf8_single_frame():
    """A TEXT frame with invalid UTF-8 fails the connection with 1007."""
    await assert_rejected(encode_frame(TEXT, b"ok \xff"), 1007)


async def test_text_invalid_utf8_in_continuation():
    """The valid first fragment is delivered; the invalid continuation fails with 1007."""
    await assert_rejected(
        encode_frame(CONT, b"\xc3\x28"),
        1007,
        before=encode_frame(TEXT, b"ab", fin=False),
        delivered_before=[(WSMsgType.TEXT, b"ab", False)],
    )


async def test_text_codepoint_split_across_fragments_is_valid():
    """A code point split between two fragments is valid: both are delivered, no CLOSE."""
    async with raw_client() as client:
        client.send(encode_frame(TEXT, b"a\xc3", fin=False) + encode_frame(CONT, b"\xa9z"))
        frames = await asyncio.wait_for(client.listener.wait_frames(2), 5)
        assert frames == [
            (WSMsgType.TEXT, b"a\xc3", False),
            (WSMsgType.CONTINUATION, b"\xa9z", True),
        ]
        client.send(encode_frame(PING, b"still open?"))
        frame = await read_frame(client.reader)
        assert (frame.opcode, frame.payload) == (PONG, b"still open?")
        client.send(encode_frame(CLOSE, close_payload(1000)))
        await client.expect_close(1000, reply=False)


async def test_text_ending_mid_codepoint():
    """A TEXT message whose final frame ends inside a code point fails with 1007."""
    await assert_rejected(encode_frame(TEXT, b"a\xc3"), 1007)


async def test_text_ending_mid_codepoint_after_fragments():
    """The incomplete code point is detected on the final CONTINUATION too (1007)."""
    await assert_rejected(
        encode_frame(CONT, b"b\xe2\x82"),
        1007,
        before=encode_frame(TEXT, b"a", fin=False),
        delivered_before=[(WSMsgType.TEXT, b"a", False)],
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80",
        b"\xc0\x80",
        b"\xc1\xbf",
        b"\xe0\x80\x80",
        b"\xed\xa0\x80",
        b"\xf0\x80\x80\x80",
        b"\xf4\x90\x80\x80",
        b"\xf5\x80\x80\x80",
        b"\xff",
        b"\xe2\x28\xa1",
    ],
    ids=[
        "lone-continuation",
        "overlong-2",
        "overlong-2b",
        "overlong-3",
        "surrogate",
        "overlong-4",
        "above-10ffff",
        "f5",
        "ff",
        "bad-second-byte",
    ],
)
async def test_text_invalid_utf8_sequences(payload):
    """Every RFC 3629 violation (overlongs, surrogates, > U+10FFFF, stray bytes) is 1007."""
    await assert_rejected(encode_frame(TEXT, b"ok" + payload + b"ok"), 1007)


@pytest.mark.parametrize("offset", [0, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 1000])
async def test_text_invalid_byte_after_ascii_run(offset):
    """The ASCII fast path does not skip an invalid byte, wherever it falls in the block."""
    await assert_rejected(encode_frame(TEXT, b"a" * offset + b"\xff" + b"b" * 200), 1007)


async def test_text_valid_utf8_edge_code_points_are_delivered():
    """The largest code points of each length and those next to the surrogates are valid."""
    payload = ("\u007f\u0080\u07ff\u0800\ud7ff\ue000\uffff\U00010000\U0010ffff" * 20).encode()
    async with raw_client() as client:
        client.send(encode_frame(TEXT, payload))
        assert await asyncio.wait_for(client.listener.wait_frames(1), 5) == [
            (WSMsgType.TEXT, payload, True)
        ]
        client.send(encode_frame(CLOSE, close_payload(1000)))
        await client.expect_close(1000, reply=False)


async def test_text_invalid_utf8_state_carried_across_fragments():
    """A lead byte at the end of one fragment and a bad next byte in the following one: 1007."""
    await assert_rejected(
        encode_frame(CONT, b"\x28"),
        1007,
        before=encode_frame(TEXT, b"ab\xe2", fin=False),
        delivered_before=[(WSMsgType.TEXT, b"ab\xe2", False)],
    )


async def test_utf8_state_reset_by_new_message():
    """A BINARY message after a TEXT one is not validated with the TEXT message's state."""
    async with raw_client() as client:
        client.send(encode_frame(TEXT, b"caf\xc3\xa9") + encode_frame(BINARY, b"\xa9\xff"))
        assert await asyncio.wait_for(client.listener.wait_frames(2), 5) == [
            (WSMsgType.TEXT, b"caf\xc3\xa9", True),
            (WSMsgType.BINARY, b"\xa9\xff", True),
        ]
        client.send(encode_frame(CLOSE, close_payload(1000)))
        await client.expect_close(1000, reply=False)


async def test_binary_is_not_utf8_validated():
    """BINARY payloads and their CONTINUATIONs are never UTF-8 checked."""
    async with raw_client() as client:
        client.send(encode_frame(BINARY, b"\xff", fin=False) + encode_frame(CONT, b"\xc3"))
        assert await asyncio.wait_for(client.listener.wait_frames(2), 5) == [
            (WSMsgType.BINARY, b"\xff", False),
            (WSMsgType.CONTINUATION, b"\xc3", True),
        ]
        client.send(encode_frame(CLOSE, close_payload(1000)))
        await client.expect_close(1000, reply=False)


async def test_invalid_utf8_accepted_without_validation():
    """validate_utf8=False delivers invalid UTF-8 as it came."""
    async with raw_client(validate_utf8=False) as client:
        client.send(encode_frame(TEXT, b"\xff\xfe") + encode_frame(TEXT, b"a\xc3"))
        assert await asyncio.wait_for(client.listener.wait_frames(2), 5) == [
            (WSMsgType.TEXT, b"\xff\xfe", True),
            (WSMsgType.TEXT, b"a\xc3", True),
        ]
        client.send(encode_frame(CLOSE, close_payload(1000)))
        await client.expect_close(1000, reply=False)


async def test_frame_written_byte_by_byte_is_delivered():
    """A frame arriving in 1-byte writes (header, mask and payload split) is parsed whole."""
    async with raw_client() as client:
        data = encode_frame(TEXT, "é".encode() * 100)  # 16-bit length, a code point per 2 bytes
        for i in range(len(data)):
            client.send(data[i : i + 1])
            await client.writer.drain()
        assert await asyncio.wait_for(client.listener.wait_frames(1), 5) == [
            (WSMsgType.TEXT, "é".encode() * 100, True)
        ]
        client.send(encode_frame(CLOSE, close_payload(1000)))
        await client.expect_close(1000, reply=False)


async def test_max_frame_size_is_per_frame_not_per_message():
    """A message larger than max_frame_size in frames that each fit is delivered."""
    async with raw_client(max_frame_size=100) as client:
        client.send(encode_frame(BINARY, b"x" * 100, fin=False) + encode_frame(CONT, b"y" * 100))
        assert await asyncio.wait_for(client.listener.wait_frames(2), 5) == [
            (WSMsgType.BINARY, b"x" * 100, False),
            (WSMsgType.CONTINUATION, b"y" * 100, True),
        ]
        client.send(encode_frame(CLOSE, close_payload(1000)))
        await client.expect_close(1000, reply=False)


async def test_nothing_after_close_is_delivered():
    """Frames the peer sends after its CLOSE are discarded (RFC 6455 §1.4)."""
    async with raw_client() as client:
        client.send(encode_frame(CLOSE, close_payload(1000)) + TRAILER + encode_frame(PING))
        await client.expect_close(1000, reply=False)
        assert client.listener.frames == [(WSMsgType.CLOSE, close_payload(1000), True)]


async def test_close_reason_of_123_bytes_utf8_is_accepted():
    """The longest reason (123 bytes) with multi-byte characters is valid and recorded."""
    reason = ("é" * 61 + "a").encode()
    assert len(reason) == 123
    async with raw_client() as client:
        client.send(encode_frame(CLOSE, close_payload(3001, reason)))
        await client.expect_close(3001, reply=False)
        assert client.listener.transport.close_handshake.recv.reason == reason.decode()


async def test_peer_that_never_answers_is_dropped_after_close_timeout():
    """If the peer never echoes femtows's CLOSE, the server drops it after close_timeout."""
    async with raw_client(close_timeout=0.3) as client:
        client.send(encode_frame(7, b"x"))
        frame = await read_frame(client.reader)
        assert (frame.opcode, frame.close_code) == (CLOSE, 1002)
        started = time.monotonic()
        assert await read_until_eof(client.reader, 3) == b""
        assert 0.2 < time.monotonic() - started < 3


# -- client side: a raw server talking to ws_connect --------------------------------------------


@contextlib.asynccontextmanager
async def raw_server() -> AsyncIterator[tuple[str, asyncio.Future]]:
    """A server that accepts one upgrade by hand and hands (reader, writer) to the test."""
    loop = asyncio.get_running_loop()
    conn: asyncio.Future = loop.create_future()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept_for(head).encode()
            + b"\r\n\r\n"
        )
        if not conn.done():
            conn.set_result((reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", conn
    finally:
        for writer in writers:
            writer.close()
        server.close()


async def connect_raw_pair(url: str, conn: asyncio.Future, **kwargs: Any) -> tuple:
    """ws_connect to the raw server and return both ends."""
    transport, listener = await femtows.ws_connect(Listener, url, **kwargs)
    reader, writer = await asyncio.wait_for(conn, 5)
    return transport, listener, reader, writer


async def assert_client_rejects(bad: bytes, code: int) -> None:
    """The raw server sends ``bad``: the femtows client answers CLOSE ``code`` (masked),
    delivers nothing, and wait_disconnected() raises WSProtocolError(code)."""
    async with raw_server() as (url, conn):
        transport, listener, reader, writer = await connect_raw_pair(url, conn)
        writer.write(bad + encode_frame(TEXT, b"after", mask=False))
        frame = await read_frame(reader)
        assert (frame.opcode, frame.close_code, frame.masked) == (CLOSE, code, True)
        writer.write(encode_frame(CLOSE, close_payload(code), mask=False))
        writer.close()
        with pytest.raises(femtows.WSProtocolError) as info:
            await asyncio.wait_for(transport.wait_disconnected(), PROMPT_EOF)
        assert info.value.code == code
        assert listener.frames == []


async def test_client_rejects_masked_frame_from_server():
    """A masked frame from the server fails the client connection with 1002."""
    await assert_client_rejects(encode_frame(TEXT, b"masked", mask=True), 1002)


@pytest.mark.parametrize("opcode", [3, 0xB])
async def test_client_rejects_reserved_opcode(opcode):
    """A reserved opcode from the server fails the client connection with 1002."""
    await assert_client_rejects(encode_frame(opcode, b"x", mask=False), 1002)


async def test_client_rejects_invalid_utf8():
    """Invalid UTF-8 in a TEXT frame from the server fails the client connection with 1007."""
    await assert_client_rejects(encode_frame(TEXT, b"\xed\xa0\x80", mask=False), 1007)


async def test_client_rejects_frame_over_max_frame_size():
    """The client checks max_frame_size on the declared length too (1009)."""
    async with raw_server() as (url, conn):
        transport, listener, reader, writer = await connect_raw_pair(url, conn, max_frame_size=100)
        writer.write(encode_frame(BINARY, b"x" * 101, mask=False)[:4])
        frame = await read_frame(reader)
        assert (frame.opcode, frame.close_code) == (CLOSE, 1009)
        writer.close()
        with pytest.raises(femtows.WSProtocolError) as info:
            await asyncio.wait_for(transport.wait_disconnected(), PROMPT_EOF)
        assert info.value.code == 1009
        assert listener.frames == []


@pytest.mark.parametrize("split", [3, 100, 4096])
async def test_invalid_utf8_fails_before_the_frame_is_complete(split: int):
    """Fail fast: invalid UTF-8 in the part of a TEXT frame that has arrived closes with 1007
    without waiting for the rest of the frame (Autobahn 6.4.x)."""
    async with raw_client() as client:
        payload = b"a" * (split - 1) + b"\xff" + b"b" * 10_000
        wire = encode_frame(TEXT, payload)
        header_len = len(wire) - len(payload)
        client.send(wire[: header_len + split])  # up to and including the bad byte
        frame = await read_frame(client.reader)
        assert (frame.opcode, frame.close_code) == (CLOSE, 1007)
        assert client.listener.frames == []


async def test_masked_frame_arriving_in_pieces_is_unmasked_correctly():
    """A large masked frame delivered in odd-sized pieces (partial unmasking with a rotated
    key at every offset) arrives byte for byte."""
    async with raw_client() as client:
        binary = bytes(range(256)) * 64
        text = "é✓€𝄞 ascii ".encode() * 300
        wire = encode_frame(BINARY, binary) + encode_frame(TEXT, text)
        pos = 0
        for size in [1, 2, 3, 5, 7, 11, 13, 1000, 4093] * 20:
            client.send(wire[pos : pos + size])
            await client.writer.drain()
            pos += size
            if pos >= len(wire):
                break
        client.send(wire[pos:])
        frames = await asyncio.wait_for(client.listener.wait_frames(2), 5)
        assert frames == [(WSMsgType.BINARY, binary, True), (WSMsgType.TEXT, text, True)]
