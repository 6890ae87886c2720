"""Timings for the hostile-peer cases (tests/test_hostile_peers.py asserts the behaviour; the
figures belong here, not in pass/fail tests):

    python -m tests.load.hostile

* slowloris: a femtows server in a child process (tests/load/server.py) holds N connections
  that sent half an upgrade request; how long a normal client takes to connect, upgrade and
  exchange one message meanwhile (and with none pending, for comparison);
* shrink: what giving a grown read buffer back costs: 1 MiB frames fed to the protocol with
  and without a shrink (``_on_shrink_timer``) before each one; femtows shrinks at most once
  per second per connection, so the cost per shrink is the cost per connection-second;
* trickle: the server-side cost per byte of a frame (and of an upgrade request) fed one byte
  per read straight into the protocol (no sockets), for growing sizes: constant per byte means
  no quadratic behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from typing import Any, Optional

import femtows
from femtows import WSFrame, WSListener, WSTransport
from femtows._core.core import WSProtocol
from tests.load.run import Client, Server, raise_nofile
from tests.utils import encode_frame, raw_upgrade_request


async def connect_time(url: str, rounds: int = 20) -> list[float]:
    """Connect + upgrade + one echo + close, ``rounds`` times; seconds each."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        transport, client = await femtows.ws_connect(Client, url)
        assert isinstance(client, Client)
        assert await client.round_trip(transport, b"x") == b"x"
        times.append(time.perf_counter() - t0)
        transport.send_close(femtows.WSCloseCode.OK)
        await transport.wait_disconnected()
    return times


async def slowloris(n: int) -> None:
    server = Server()
    writers = []
    try:
        idle = await connect_time(server.url)
        partial = raw_upgrade_request()[:-30]
        for _ in range(n // 100):
            pairs = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", server.port)
                                           for _ in range(100)))
            for _, writer in pairs:
                writer.write(partial)
                writers.append(writer)
        pending = await connect_time(server.url)
        fds = server.ask("stats")["fds"]
        print(f"slowloris: {n} half-sent upgrade requests pending (server fds {fds}); a normal "
              f"client's connect+upgrade+echo: median {statistics.median(pending) * 1e3:.1f} ms, "
              f"max {max(pending) * 1e3:.1f} ms (none pending: median "
              f"{statistics.median(idle) * 1e3:.1f} ms, max {max(idle) * 1e3:.1f} ms)")
    finally:
        for writer in writers:
            writer.close()
        server.close()


class Sink(WSListener):
    """Counts frames and keeps the last payload."""

    def __init__(self) -> None:
        self.frames = 0
        self.payload = b""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.frames += 1
        self.payload = frame.get_payload_as_bytes()


class FakeTransport(asyncio.Transport):
    """Just enough of a transport for WSProtocol; keeps what is written."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def new_protocol(sink: Sink, transport: Optional[FakeTransport] = None) -> Any:
    """A server-side WSProtocol handing every connection to ``sink``, connected to
    ``transport`` (a new FakeTransport by default)."""
    proto = WSProtocol(
        is_client=False, listener_factory=lambda request: sink,
        logger=logging.getLogger("femtows.trickle"), read_buffer_init_size=16 * 1024,
        max_frame_size=1 << 30, validate_utf8=True, allow_rsv_bits=False,
        enable_auto_pong=True, disconnect_on_exception=True, close_timeout=5,
        websocket_handshake_timeout=None, max_head_size=16 * 1024)
    proto.connection_made(transport if transport is not None else FakeTransport())
    return proto


def feed(proto: Any, chunk: bytes) -> None:
    view = memoryview(proto.get_buffer(-1))
    n = min(len(view), len(chunk))
    view[:n] = chunk[:n]
    proto.buffer_updated(n)
    if n < len(chunk):
        feed(proto, chunk[n:])


async def shrink_cost(rounds: int = 200) -> None:
    frame = encode_frame(0x2, b"s" * (1 << 20))
    reads = [frame[i:i + 65536] for i in range(0, len(frame), 65536)]
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(3):
        for shrink in (False, True):
            sink = Sink()
            proto = new_protocol(sink)
            feed(proto, raw_upgrade_request())
            t0 = time.perf_counter()
            for _ in range(rounds):
                if shrink:
                    proto._on_shrink_timer()
                for chunk in reads:
                    feed(proto, chunk)
            results[shrink].append((time.perf_counter() - t0) / rounds)
            assert sink.frames == rounds
            proto.connection_lost(None)
    keep, shrink = min(results[False]), min(results[True])
    print(f"shrink: 1 MiB frame in 64 KiB reads: {keep * 1e6:.0f} us per frame keeping the "
          f"grown buffer, {shrink * 1e6:.0f} us with a shrink before each: "
          f"{(shrink - keep) * 1e6:.0f} us per shrink + regrow (at most one per connection per "
          f"second)")


def trickle_seconds(data: bytes, split: int) -> float:
    """Feed the head (``split`` bytes) at once, then the rest one byte per read; seconds."""
    sink = Sink()
    proto = new_protocol(sink)
    if split:
        feed(proto, data[:split])
    t0 = time.perf_counter()
    for i in range(split, len(data)):
        feed(proto, data[i:i + 1])
    elapsed = time.perf_counter() - t0
    assert split == 0 or sink.frames == 1
    return elapsed


async def trickle() -> None:
    request = raw_upgrade_request()
    for size in (4096, 16384, 65536, 262144):
        frame = encode_frame(0x1, b"a" * size)
        seconds = min(trickle_seconds(request + frame, len(request)) for _ in range(3))
        print(f"trickle: TEXT frame of {size:>6} B one byte per read: {seconds * 1e3:7.1f} ms, "
              f"{seconds / len(frame) * 1e9:5.0f} ns per byte")
    for filler in (1024, 4096, 15000):
        head = raw_upgrade_request(extra=b"X-Filler: " + b"f" * filler + b"\r\n")
        seconds = min(trickle_seconds(head, 0) for _ in range(3))
        print(f"trickle: upgrade request of {len(head):>6} B one byte per read: "
              f"{seconds * 1e3:7.1f} ms, {seconds / len(head) * 1e9:5.0f} ns per byte")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slowloris", type=int, default=1000)
    args = parser.parse_args()
    raise_nofile()
    import uvloop

    uvloop.run(shrink_cost())
    uvloop.run(trickle())
    uvloop.run(slowloris(args.slowloris))


if __name__ == "__main__":
    main()
