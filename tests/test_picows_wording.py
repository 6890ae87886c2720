"""picows wording: where femtows fails like picows 2.3.1 (same exception type or same close code
in the same situation), its message contains picows's words, so that programs and their tests
that match on them (``pytest.raises(WSError, match=...)``, log alerts) keep working after the
switch. femtows's own detail may follow the words; it never replaces them.

The PICOWS_* strings are picows 2.3.1's messages for each situation, as its sources raise them.
"""

from __future__ import annotations

import asyncio
import re
import threading

import pytest

import femtows
from femtows import WSMsgType
from femtows.errors import (
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
    WSInvalidURL,
)
from femtows.handshake import MAX_HEAD_SIZE, parse_response, validate_response
from femtows.url import parse_url
from tests.test_malformed import (
    BINARY,
    CLOSE,
    PING,
    PROMPT_EOF,
    TEXT,
    connect_raw_pair,
    raw_client,
    raw_server,
)
from tests.utils import close_payload, encode_frame, read_frame

# -- frames: the CLOSE reason on the wire and WSProtocolError's message -------------------------


def _reason(frame_payload: bytes) -> str:
    return frame_payload[2:].decode("utf-8")


SERVER_SIDE_CASES = [
    # (bad bytes from a client, close code, picows's words)
    (encode_frame(3, b"x"), 1002, "Received frame with invalid opcode=0x3"),
    (encode_frame(0xB, b"x"), 1002, "Received frame with invalid opcode=0xb"),
    (encode_frame(PING, b"x", fin=False), 1002, "Received fragmented control frame"),
    (
        encode_frame(PING, b"x" * 126),
        1002,
        "Received control frame with payload size > 125 bytes, opcode=0x9",
    ),
    (
        encode_frame(TEXT, b"x", mask=False),
        1002,
        "Received un-masked frame from client, RFC 6455 section 5.1 forbids this",
    ),
    (
        bytes([0x82, 0x80 | 126, 0, 5]) + b"\x00" * 4 + b"hello",
        1002,
        "Received frame with invalid 16-bit payload len",
    ),
    (
        bytes([0x82, 0x80 | 127]) + (5).to_bytes(8, "big") + b"\x00" * 4 + b"hello",
        1002,
        "Received frame with invalid 64-bit payload length",
    ),
    (
        bytes([0x82, 0x80 | 127]) + (2**63 - 1 + 2**63).to_bytes(8, "big") + b"\x00" * 4,
        1002,
        "Received frame with invalid 64-bit payload length",
    ),
    (
        encode_frame(BINARY, b"x" * 101),
        1009,
        "Received frame with payload size exceeding max allowed size, 101 > 100",
    ),
    (encode_frame(CLOSE, b"\x03"), 1002, "Received CLOSE with invalid close code size"),
    (
        encode_frame(CLOSE, close_payload(1005)),
        1002,
        "Received CLOSE with invalid close code: 1005",
    ),
    (encode_frame(CLOSE, close_payload(999)), 1002, "Received CLOSE with invalid close code: 999"),
    (
        encode_frame(CLOSE, close_payload(1000, b"\xff")),
        1007,
        "Received CLOSE with invalid UTF-8 reason",
    ),
]


@pytest.mark.parametrize(("bad", "code", "words"), SERVER_SIDE_CASES)
async def test_server_close_reason_has_picows_words(bad: bytes, code: int, words: str) -> None:
    """The server's CLOSE reason for a bad client frame starts with picows's words."""
    async with raw_client(max_frame_size=100) as client:
        client.send(bad)
        frame = await read_frame(client.reader)
        assert (frame.opcode, frame.close_code) == (CLOSE, code)
        assert _reason(frame.payload).startswith(words), _reason(frame.payload)


CLIENT_SIDE_CASES = [
    (
        encode_frame(TEXT, b"masked", mask=True),
        1002,
        "Received masked frame from server, RFC 6455 section 5.1 forbids this",
    ),
    (encode_frame(5, b"x", mask=False), 1002, "Received frame with invalid opcode=0x5"),
    (
        encode_frame(BINARY, b"x" * 101, mask=False),
        1009,
        "Received frame with payload size exceeding max allowed size, 101 > 100",
    ),
]


@pytest.mark.parametrize(("bad", "code", "words"), CLIENT_SIDE_CASES)
async def test_client_protocol_error_has_picows_words(bad: bytes, code: int, words: str) -> None:
    """The client's WSProtocolError (raised by wait_disconnected) and its CLOSE reason start with
    picows's words."""
    async with raw_server() as (url, conn):
        transport, _listener, reader, writer = await connect_raw_pair(url, conn, max_frame_size=100)
        writer.write(bad)
        frame = await read_frame(reader)
        assert (frame.opcode, frame.close_code) == (CLOSE, code)
        assert _reason(frame.payload).startswith(words)
        writer.write(encode_frame(CLOSE, close_payload(code), mask=False))
        writer.close()
        with pytest.raises(femtows.WSProtocolError, match=re.escape(words)) as info:
            await asyncio.wait_for(transport.wait_disconnected(), PROMPT_EOF)
        assert info.value.code == code
        assert str(info.value).startswith(words)


async def test_wrong_thread_has_picows_words() -> None:
    """A send from another thread: RuntimeError with picows's words and both thread ids."""
    async with raw_server() as (url, conn):
        transport, _listener, _reader, writer = await connect_raw_pair(url, conn)
        errors: list[str] = []

        def send_from_thread() -> None:
            try:
                transport.send(WSMsgType.TEXT, b"x")
            except RuntimeError as exc:
                errors.append(str(exc))

        thread = threading.Thread(target=send_from_thread)
        thread.start()
        thread.join()
        assert len(errors) == 1
        assert re.match(
            r"WSTransport\.send called from a wrong thread: transport thread id=\d+, "
            r"curr thread_id=\d+",
            errors[0],
        ), errors[0]
        transport.disconnect()
        writer.close()


async def test_send_reuse_external_bytearray_has_picows_words() -> None:
    """ValueErrors of send_reuse_external_bytearray start with picows's words."""
    async with raw_server() as (url, conn):
        transport, _listener, _reader, writer = await connect_raw_pair(url, conn)
        buffer = bytearray(20)
        cases = [
            (
                WSMsgType.CLOSE,
                14,
                "attempt to send CLOSE frame using "
                "send_reuse_external_bytearray, use send_close instead",
            ),
            (
                WSMsgType.BINARY,
                13,
                "buffer must have at least 14 bytes available before "
                "message starts, check msg_offset parameter",
            ),
            (WSMsgType.BINARY, 21, "msg_offset points beyond buffer end, msg_offset > len(buffer)"),
        ]
        for msg_type, offset, words in cases:
            with pytest.raises(ValueError) as info:
                transport.send_reuse_external_bytearray(msg_type, buffer, offset)
            assert str(info.value).startswith(words), str(info.value)
        transport.disconnect()
        writer.close()


# -- the upgrade response -------------------------------------------------------------------------

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
GOOD = f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n"


@pytest.mark.parametrize(
    ("head", "exc_type", "words"),
    [
        (
            b"HTTP/1.1 404 Not Found\r\n\r\n",
            WSInvalidStatusError,
            "expected upgrade response with status 101 Switching Protocols, but received 404",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
            WSInvalidUpgradeError,
            "cannot upgrade, invalid upgrade header",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
            WSInvalidUpgradeError,
            "cannot upgrade, invalid upgrade header",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
            WSInvalidUpgradeError,
            "cannot upgrade, invalid connection header",
        ),
        (
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                f"{GOOD}Transfer-Encoding: chunked\r\n\r\n"
            ).encode(),
            WSInvalidHeaderError,
            "101 response cannot have Transfer-Encoding but it has",
        ),
        (
            f"HTTP/1.1 101 Switching Protocols\r\n{GOOD}Content-Length: x\r\n\r\n".encode(),
            WSInvalidHeaderError,
            "101 response has invalid Content-Length header",
        ),
        (
            f"HTTP/1.1 101 Switching Protocols\r\n{GOOD}Content-Length: 3\r\n\r\n".encode(),
            WSInvalidHeaderError,
            "101 response has non-zero Content-Length, but it can't have body",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: wrong\r\n\r\n",
            WSInvalidHeaderError,
            "cannot upgrade, invalid sec-websocket-accept response",
        ),
    ],
)
def test_response_validation_has_picows_words(head: bytes, exc_type: type, words: str) -> None:
    """Each refused 101 response: picows's exception type and words."""
    response = parse_response(head)
    with pytest.raises(WSHandshakeError) as info:
        validate_response(response, KEY, head)
    assert type(info.value) is exc_type
    assert str(info.value).startswith(words), str(info.value)


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (
            b"HTTP/1.0 101 Switching Protocols\r\n\r\n",
            "cannot upgrade, unknown protocol (expected HTTP/1.1) in upgrade response",
        ),
        (b"HTTP/1.1 abc X\r\n\r\n", "cannot upgrade, invalid HTTP status line in upgrade response"),
        (
            b"HTTP/1.1 101 X\r\nNo colon\r\n\r\n",
            "cannot upgrade, malformed header in upgrade response",
        ),
        (
            b"HTTP/1.1 101 X\r\n" + b"A: 1\r\n" * 200 + b"\r\n",
            "upgrade response contains more than 128 headers",
        ),
        (
            b"HTTP/1.1 101 X\r\nA: " + b"x" * MAX_HEAD_SIZE + b"\r\n\r\n",
            f"upgrade response headers exceed max_size threshold: {MAX_HEAD_SIZE}",
        ),
    ],
)
def test_response_parsing_has_picows_words(head: bytes, words: str) -> None:
    """Malformed upgrade responses: WSInvalidMessageError with picows's words."""
    with pytest.raises(WSInvalidMessageError) as info:
        parse_response(head)
    assert str(info.value).startswith(words), str(info.value)


# -- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://h/", "scheme isn't ws or wss"),
        ("h:80", "scheme isn't ws or wss"),
        ("ws:///path", "hostname isn't provided"),
        ("ws://h/#frag", "fragment identifier is meaningless"),
    ],
)
def test_url_errors_have_picows_words(url: str, words: str) -> None:
    """WSInvalidURL's msg starts with picows's words (its str() adds the URL first)."""
    with pytest.raises(WSInvalidURL) as info:
        parse_url(url)
    assert info.value.msg.startswith(words)
    assert words in str(info.value)


async def test_oversized_upgrade_response_has_picows_words() -> None:
    """A server whose response head never ends: picows's words for the size limit."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nX: " + b"x" * (MAX_HEAD_SIZE + 10))
        await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(WSInvalidMessageError) as info:
            await femtows.ws_connect(femtows.WSListener, f"ws://127.0.0.1:{port}/")
    assert str(info.value).startswith(
        f"upgrade response headers exceed max_size threshold: {MAX_HEAD_SIZE}"
    )
