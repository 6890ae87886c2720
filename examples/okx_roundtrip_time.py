"""Measure round-trip time with an application-level heartbeat, and reconnect while it is slow.

Exchanges such as OKX expect a TEXT "ping" and answer TEXT "pong"; WebSocket PING frames are
not what they measure. The listener below tells femtows how to send and recognise that
heartbeat (``send_user_specific_ping`` / ``is_user_specific_pong``). The same two methods
drive auto-ping, so the connection is also kept alive and a dead peer is detected.

By default the example starts a local server that answers "ping" with "pong" (and adds a
configurable delay), so it runs anywhere. Point it at the real exchange with a URL:

    python examples/okx_roundtrip_time.py
    python examples/okx_roundtrip_time.py --url wss://ws.okx.com:8443/ws/v5/public
    python examples/okx_roundtrip_time.py --server-delay 0.02 --threshold 0.01

It connects, measures ``--rounds`` round trips, and reconnects (up to ``--attempts`` times)
while the median RTT is above ``--threshold`` seconds; a latency-sensitive client does this to
land on a faster edge server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Optional

from femtows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
    ws_create_server,
)


class HeartbeatClient(WSListener):
    """Uses TEXT "ping"/"pong" as the heartbeat, for auto-ping and measure_roundtrip_time."""

    def send_user_specific_ping(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, b"ping")

    def is_user_specific_pong(self, frame: WSFrame) -> bool:
        # Checked only while a pong is expected; a True result consumes the frame.
        return frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() == b"pong"

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()


class PongServer(WSListener):
    """The local stand-in for the exchange: answers "ping" with "pong" after ``delay`` s."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() == b"ping":
            if self.delay > 0:
                asyncio.get_running_loop().call_later(
                    self.delay, transport.send, WSMsgType.TEXT, b"pong"
                )
            else:
                transport.send(WSMsgType.TEXT, b"pong")
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


async def measure(url: str, rounds: int) -> list[float]:
    transport, _ = await ws_connect(
        HeartbeatClient,
        url,
        enable_auto_ping=True,
        auto_ping_idle_timeout=5,
        auto_ping_reply_timeout=2,
    )
    try:
        return await transport.measure_roundtrip_time(rounds)
    finally:
        transport.send_close(WSCloseCode.OK)
        transport.disconnect()
        await transport.wait_disconnected()


async def main(url: Optional[str], rounds: int, threshold: float, attempts: int,
               server_delay: float) -> None:
    server = None
    if url is None:
        server = await ws_create_server(lambda request: PongServer(server_delay), "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        print(f"local server at {url} (pong delay {server_delay * 1000:.1f} ms)")
    try:
        for attempt in range(1, attempts + 1):
            rtts = await measure(url, rounds)
            median = statistics.median(rtts)
            print(f"attempt {attempt}: {len(rtts)} rounds, median RTT {median * 1000:.3f} ms, "
                  f"min {min(rtts) * 1000:.3f} ms, max {max(rtts) * 1000:.3f} ms", flush=True)
            if median <= threshold:
                print(f"RTT OK (<= {threshold * 1000:.1f} ms)")
                return
            print(f"RTT above {threshold * 1000:.1f} ms, reconnecting")
        print(f"RTT still above threshold after {attempts} attempts")
    finally:
        if server is not None:
            server.close()
            await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Measure WebSocket RTT with a text heartbeat")
    parser.add_argument("--url", default=None, help="e.g. wss://ws.okx.com:8443/ws/v5/public "
                        "(default: a local server)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.1, help="seconds")
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--server-delay", type=float, default=0.0,
                        help="local server only: seconds before each pong")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.rounds, args.threshold, args.attempts, args.server_delay))
