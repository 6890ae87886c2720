"""Auto-ping, user-specific ping/pong and measure_roundtrip_time (picows-reference §2.9).

Timeouts here are short (tenths of a second) so the suite stays fast. Where a test needs
traffic to flow for a while it runs an echo loop for a fixed stretch of loop time; no test
sleeps to wait for something to happen, they wait on events.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import pytest

import femtows
from femtows import WSAutoPingStrategy, WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from tests.utils import RecordingListener, raw_upgrade_request, read_frame

IDLE = 0.2
REPLY = 0.2
# Scheduling slack for the upper bound on "disconnected within idle + reply" (the lower bound
# is exact: nothing may happen before the timers are due).
MARGIN = 1.0


class PingCounter(WSListener):
    """A peer that counts PINGs (auto-pong off) and answers them only while ``answer`` is set."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.pings = 0
        self.data_frames = 0
        self.held: list[bytes] = []
        self.ping_seen = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.close_frame: Optional[tuple[Any, str]] = None
        self.server_transport: Optional[WSTransport] = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.server_transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.PING:
            self.pings += 1
            self.ping_seen.set()
            if self.answer:
                transport.send_pong(frame.get_payload_as_bytes())
            else:
                self.held.append(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            self.close_frame = (frame.get_close_code(), frame.get_close_message().decode())
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        else:
            self.data_frames += 1
            transport.send(frame.msg_type, frame.get_payload_as_bytes())

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected.set()


async def serve(listener: WSListener, **kwargs: Any) -> tuple[asyncio.Server, str]:
    server = await femtows.ws_create_server(lambda request: listener, "127.0.0.1", 0, **kwargs)
    return server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


# -- argument checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"auto_ping_idle_timeout": 1, "auto_ping_reply_timeout": 2},
        {"auto_ping_idle_timeout": 0},
        {"auto_ping_idle_timeout": -1},
        {"auto_ping_reply_timeout": 0},
        {"auto_ping_reply_timeout": "1"},
        {"auto_ping_strategy": 7},
    ],
)
async def test_bad_auto_ping_arguments_raise_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        await femtows.ws_create_server(
            lambda request: WSListener(), "127.0.0.1", 0, enable_auto_ping=True, **kwargs
        )
    with pytest.raises(ValueError):
        await femtows.ws_connect(WSListener, "ws://127.0.0.1:9/", enable_auto_ping=True, **kwargs)


async def test_auto_ping_defaults_match_picows() -> None:
    import inspect

    client = inspect.signature(femtows.ws_connect).parameters
    server = inspect.signature(femtows.ws_create_server).parameters
    assert client["enable_auto_ping"].default is False
    assert server["enable_auto_ping"].default is False
    assert (client["auto_ping_idle_timeout"].default, client["auto_ping_reply_timeout"].default) \
        == (10, 10)
    assert (server["auto_ping_idle_timeout"].default, server["auto_ping_reply_timeout"].default) \
        == (20, 20)
    assert client["auto_ping_strategy"].default == WSAutoPingStrategy.PING_WHEN_IDLE
    assert server["auto_ping_strategy"].default == WSAutoPingStrategy.PING_WHEN_IDLE


# -- a silent peer is disconnected ----------------------------------------------------------


async def test_server_disconnects_silent_client_with_going_away() -> None:
    """Raw client: reads everything, answers nothing. The server pings after IDLE and sends
    CLOSE 1001 with a reason after REPLY more, then closes TCP."""
    server, url = await serve(
        WSListener(), enable_auto_ping=True, auto_ping_idle_timeout=IDLE,
        auto_ping_reply_timeout=REPLY,
    )
    loop = asyncio.get_running_loop()
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw_upgrade_request())
    await reader.readuntil(b"\r\n\r\n")
    start = loop.time()
    ping = await read_frame(reader)
    ping_at = loop.time() - start
    close = await read_frame(reader)
    close_at = loop.time() - start
    assert ping.opcode == 0x9
    assert close.opcode == 0x8
    assert close.close_code == WSCloseCode.GOING_AWAY
    assert b"has not replied to ping" in close.payload
    assert await reader.read() == b""
    assert IDLE * 0.95 <= ping_at < IDLE + MARGIN
    assert IDLE + REPLY - 0.01 <= close_at < IDLE + REPLY + MARGIN
    writer.close()
    server.close()


async def test_client_disconnects_silent_server() -> None:
    """The client pings a server that never answers and gives up with GOING_AWAY."""
    peer = PingCounter(answer=False)
    server, url = await serve(peer, enable_auto_pong=False)
    loop = asyncio.get_running_loop()
    start = loop.time()
    transport, listener = await femtows.ws_connect(
        RecordingListener, url, enable_auto_ping=True, auto_ping_idle_timeout=IDLE,
        auto_ping_reply_timeout=REPLY,
    )
    await transport.wait_disconnected()
    elapsed = loop.time() - start
    await peer.disconnected.wait()
    assert peer.pings == 1
    assert peer.close_frame is not None
    assert peer.close_frame[0] == WSCloseCode.GOING_AWAY
    assert "has not replied to ping/heartbeat request within 0.2 second(s)" in peer.close_frame[1]
    assert transport.close_handshake is not None
    assert transport.close_handshake.sent.code == WSCloseCode.GOING_AWAY
    assert IDLE + REPLY - 0.01 <= elapsed < IDLE + REPLY + MARGIN
    server.close()


# -- pings and traffic ----------------------------------------------------------------------


class Pumper(RecordingListener):
    """Client that keeps one message in flight until ``until`` (loop time), then stops."""

    def __init__(self) -> None:
        super().__init__()
        self.until = 0.0
        self.echoes = 0
        self.done = asyncio.Event()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.BINARY:
            self.echoes += 1
            if asyncio.get_running_loop().time() < self.until:
                transport.send(WSMsgType.BINARY, b"x" * 64)
            else:
                self.done.set()
        else:
            super().on_ws_frame(transport, frame)


async def pump(strategy: WSAutoPingStrategy) -> tuple[PingCounter, Pumper, WSTransport]:
    peer = PingCounter(answer=True)
    server, url = await serve(peer, enable_auto_pong=False)
    transport, client = await femtows.ws_connect(
        Pumper, url, enable_auto_ping=True, auto_ping_idle_timeout=IDLE,
        auto_ping_reply_timeout=REPLY, auto_ping_strategy=strategy,
    )
    assert isinstance(client, Pumper)
    client.until = asyncio.get_running_loop().time() + 4 * IDLE
    transport.send(WSMsgType.BINARY, b"x" * 64)
    await client.done.wait()
    server.close()
    return peer, client, transport


async def test_ping_when_idle_sends_no_ping_while_data_flows() -> None:
    peer, client, transport = await pump(WSAutoPingStrategy.PING_WHEN_IDLE)
    assert client.echoes > 100
    assert peer.pings == 0
    assert not transport.is_disconnected
    transport.disconnect()


async def test_ping_periodically_pings_despite_data() -> None:
    peer, client, transport = await pump(WSAutoPingStrategy.PING_PERIODICALLY)
    assert client.echoes > 100
    # Pings are due at IDLE, 2*IDLE, 3*IDLE within the 4*IDLE of traffic.
    assert peer.pings >= 2
    # The pongs were consumed by auto-ping, never delivered to the listener.
    assert all(frame[0] != WSMsgType.PONG for frame in client.frames)
    assert not transport.is_disconnected
    transport.disconnect()


async def test_idle_connection_stays_open_while_peer_answers() -> None:
    peer = PingCounter(answer=True)
    server, url = await serve(peer, enable_auto_pong=False)
    transport, client = await femtows.ws_connect(
        RecordingListener, url, enable_auto_ping=True, auto_ping_idle_timeout=0.05,
        auto_ping_reply_timeout=0.05,
    )
    while peer.pings < 4:
        peer.ping_seen.clear()
        await peer.ping_seen.wait()
    assert not transport.is_disconnected
    assert transport.close_handshake is None
    assert client.frames == []  # every pong was auto-ping's
    transport.disconnect()
    server.close()


async def test_server_auto_ping_against_answering_client() -> None:
    """Server-side auto-ping against a client that answers: pings keep coming, nothing closes."""
    server_listener = RecordingListener()
    server, url = await serve(
        server_listener, enable_auto_ping=True, auto_ping_idle_timeout=0.05,
        auto_ping_reply_timeout=0.05,
    )
    transport, client = await femtows.ws_connect(PingCounter, url, enable_auto_pong=False)
    assert isinstance(client, PingCounter)
    while client.pings < 4:
        client.ping_seen.clear()
        await client.ping_seen.wait()
    assert not transport.is_disconnected
    assert server_listener.transport is not None
    assert server_listener.transport.close_handshake is None
    assert server_listener.frames == []  # the client's pongs were consumed by auto-ping
    transport.disconnect()
    server.close()


# -- user-specific ping/pong ----------------------------------------------------------------


class TextPingClient(RecordingListener):
    """Application-level heartbeat: TEXT "ping" answered by TEXT "pong"."""

    def send_user_specific_ping(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, b"ping")

    def is_user_specific_pong(self, frame: WSFrame) -> bool:
        return frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() == b"pong"


class TextPongServer(WSListener):
    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.pings = 0
        self.ping_seen = asyncio.Event()
        self.close_code: Any = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() == b"ping":
            self.pings += 1
            self.ping_seen.set()
            if self.answer:
                transport.send(WSMsgType.TEXT, b"pong")
        elif frame.msg_type == WSMsgType.TEXT:
            transport.send(WSMsgType.TEXT, frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            transport.send_close(frame.get_close_code())
            transport.disconnect()


async def test_custom_text_ping_pong_is_consumed() -> None:
    peer = TextPongServer()
    server, url = await serve(peer)
    transport, client = await femtows.ws_connect(
        TextPingClient, url, enable_auto_ping=True, auto_ping_idle_timeout=0.05,
        auto_ping_reply_timeout=0.05,
    )
    assert isinstance(client, TextPingClient)
    while peer.pings < 3:
        peer.ping_seen.clear()
        await peer.ping_seen.wait()
    # A "pong" that arrives while none is expected is ordinary data, delivered.
    transport.send(WSMsgType.TEXT, b"not-a-ping")
    msg = await client.wait_message(0)
    assert msg == (WSMsgType.TEXT, b"not-a-ping")
    assert not transport.is_disconnected
    assert all(payload != b"pong" for _, payload, _ in client.frames)
    transport.disconnect()
    server.close()


async def test_custom_text_ping_unanswered_disconnects() -> None:
    peer = TextPongServer(answer=False)
    server, url = await serve(peer)
    transport, client = await femtows.ws_connect(
        TextPingClient, url, enable_auto_ping=True, auto_ping_idle_timeout=IDLE,
        auto_ping_reply_timeout=REPLY,
    )
    await transport.wait_disconnected()
    assert peer.pings == 1
    assert peer.close_code == WSCloseCode.GOING_AWAY
    server.close()


class JsonPingClient(RecordingListener):
    """Pongs recognised only after parsing: on_ws_frame calls notify_user_specific_pong_received.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pongs = 0

    def send_user_specific_ping(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, json.dumps({"op": "ping"}).encode())

    def is_user_specific_pong(self, frame: WSFrame) -> bool:
        return False

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            obj = json.loads(frame.get_payload_as_utf8_text())
            if obj.get("op") == "pong":
                self.pongs += 1
                transport.notify_user_specific_pong_received()
                return
        super().on_ws_frame(transport, frame)


class JsonPongServer(WSListener):
    def __init__(self) -> None:
        self.pings = 0
        self.ping_seen = asyncio.Event()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            if json.loads(frame.get_payload_as_utf8_text()).get("op") == "ping":
                self.pings += 1
                self.ping_seen.set()
                transport.send(WSMsgType.TEXT, json.dumps({"op": "pong"}).encode())


async def test_notify_user_specific_pong_received_keeps_connection_alive() -> None:
    peer = JsonPongServer()
    server, url = await serve(peer)
    transport, client = await femtows.ws_connect(
        JsonPingClient, url, enable_auto_ping=True, auto_ping_idle_timeout=0.05,
        auto_ping_reply_timeout=0.05,
    )
    assert isinstance(client, JsonPingClient)
    while peer.pings < 4:
        peer.ping_seen.clear()
        await peer.ping_seen.wait()
    assert client.pongs >= 3
    assert not transport.is_disconnected
    assert transport.close_handshake is None
    rtts = await transport.measure_roundtrip_time(3)
    assert len(rtts) == 3 and all(0 < r < 5 for r in rtts)
    transport.disconnect()
    server.close()


class RaisingPingClient(RecordingListener):
    def send_user_specific_ping(self, transport: WSTransport) -> None:
        raise RuntimeError("boom in send_user_specific_ping")


async def test_exception_in_send_user_specific_ping_fails_with_1011() -> None:
    peer = PingCounter()
    server, url = await serve(peer)
    transport, client = await femtows.ws_connect(
        RaisingPingClient, url, enable_auto_ping=True, auto_ping_idle_timeout=0.05,
        auto_ping_reply_timeout=0.05,
    )
    with pytest.raises(RuntimeError, match="boom in send_user_specific_ping"):
        await transport.wait_disconnected()
    await peer.disconnected.wait()
    assert peer.close_frame is not None
    assert peer.close_frame[0] == WSCloseCode.INTERNAL_ERROR
    server.close()


# -- measure_roundtrip_time -----------------------------------------------------------------


async def test_measure_roundtrip_time(tls: Any) -> None:
    server = await femtows.ws_create_server(
        lambda request: PingCounter(), "127.0.0.1", 0, **tls.server_kwargs()
    )
    url = f"{tls.scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    transport, client = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
    rtts = await transport.measure_roundtrip_time(5)
    assert len(rtts) == 5
    assert all(isinstance(r, float) and 0 < r < 5 for r in rtts)
    assert isinstance(client, RecordingListener)
    assert client.frames == []  # the pongs were consumed
    with pytest.raises(ValueError):
        await transport.measure_roundtrip_time(0)
    transport.disconnect()
    await transport.wait_disconnected()
    with pytest.raises(ConnectionResetError):
        await transport.measure_roundtrip_time(1)
    server.close()


async def test_measure_roundtrip_time_fails_when_connection_drops() -> None:
    peer = PingCounter(answer=False)
    server, url = await serve(peer, enable_auto_pong=False)
    transport, client = await femtows.ws_connect(RecordingListener, url)
    task = asyncio.ensure_future(transport.measure_roundtrip_time(1))
    await peer.ping_seen.wait()
    with pytest.raises(RuntimeError, match="already running"):
        await transport.measure_roundtrip_time(1)
    transport.disconnect()
    with pytest.raises(ConnectionResetError):
        await task
    server.close()


async def test_measure_roundtrip_time_waits_for_auto_ping_in_flight() -> None:
    """An auto-ping is waiting for its pong when the measurement starts: the measurement waits
    for that pong before its own rounds, and auto-ping sends nothing while it runs."""
    peer = PingCounter(answer=False)
    server, url = await serve(peer, enable_auto_pong=False)
    transport, client = await femtows.ws_connect(
        RecordingListener, url, enable_auto_ping=True, auto_ping_idle_timeout=IDLE,
        auto_ping_reply_timeout=IDLE,
    )
    await peer.ping_seen.wait()
    assert transport.auto_ping_expect_pong
    task = asyncio.ensure_future(transport.measure_roundtrip_time(3))
    for _ in range(3):
        await asyncio.sleep(0)  # let the task start and block
    # A data round trip: had the measurement pinged, the peer would have seen that PING
    # before this message (same TCP stream), so before we get the echo back.
    transport.send(WSMsgType.BINARY, b"marker")
    assert await client.wait_message(0) == (WSMsgType.BINARY, b"marker")
    assert not task.done()
    assert peer.pings == 1  # the measurement has not pinged yet
    # Answer the held auto-ping, then answer everything from now on.
    peer.answer = True
    assert peer.server_transport is not None
    peer.server_transport.send_pong(peer.held.pop())
    rtts = await task
    assert len(rtts) == 3
    assert peer.pings == 4
    assert not transport.auto_ping_expect_pong
    assert not transport.is_disconnected
    transport.disconnect()
    server.close()


async def test_pong_without_expectation_is_delivered() -> None:
    """With no ping outstanding, a PONG is an ordinary frame for on_ws_frame."""
    server, url = await serve(PingCounter())
    transport, client = await femtows.ws_connect(RecordingListener, url)
    assert isinstance(client, RecordingListener)
    transport.send(WSMsgType.PING, b"hello")
    frames = await client.wait_frames(1)
    assert frames[0][:2] == (WSMsgType.PONG, b"hello")
    transport.disconnect()
    server.close()
