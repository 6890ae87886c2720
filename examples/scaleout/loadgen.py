"""Load generator for chat_server.py: many subscribers, one publisher at a fixed rate.

    python examples/scaleout/loadgen.py --url ws://127.0.0.1:8765/ \\
        --clients 2000 --rate 1000 --duration 20 --procs 2
    python examples/scaleout/loadgen.py --start-workers 4 ...   # also starts redis-server
                                                                # and chat_server.py

``--procs`` receiver processes hold ``--clients`` connections between them (spread over the
server's workers by SO_REUSEPORT); one more connection publishes ``--rate`` messages/s for
``--duration`` seconds, each carrying its send time (CLOCK_MONOTONIC, shared by the processes
of one machine), then an END message. Every receiver waits until each of its clients got END
(or ``--drain`` seconds) and reports. Printed:

- delivered messages/s (broadcasts received by all clients / from the first send to the last
  receipt) against the offered rate (rate x clients);
- lost deliveries (a client missing any broadcast, e.g. closed as a slow consumer) and the
  close codes seen;
- p50/p99/max fan-out latency, publisher send to client receipt, over the messages received
  by every ``--probe-every``-th client (parsing a timestamp costs CPU the server shares);
- RSS and CPU seconds of each server worker, server CPU per delivered message (from /proc:
  same machine only; the worker pids come from the hello message).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from array import array
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from femtows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

MSG_PREFIX = b'{"type": "msg"'
END_SUFFIX = b'"text": "END"}'
CONNECT_CONCURRENCY = 50


class Subscriber(WSListener):
    """Counts broadcasts; probes also record latency. Everything here is per message."""

    def __init__(self, shared: Receiver, probe: bool) -> None:
        self.shared = shared
        self.probe = probe
        self.received = 0
        self.worker_pid = 0
        self.close_code: Optional[int] = None
        self.done = False

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            data = frame.get_payload_as_bytes()
            if data.startswith(MSG_PREFIX):
                # One or more envelopes, one per line (the server coalesces under load).
                count = data.count(b"\n") + 1
                if data.endswith(END_SUFFIX):
                    self.done = True
                    self.shared.client_done()
                    count -= 1
                self.received += count
                self.shared.frames += count > 0
                now = time.monotonic_ns()
                if self.probe and count:
                    latencies = self.shared.latencies_us
                    for line in data.split(b"\n")[:count]:
                        latencies.append((now - int(line[line.rindex(b" ") + 1:-2])) // 1000)
                self.shared.last_ns = now
            elif data.startswith(b'{"type": "hello"'):
                self.worker_pid = int(json.loads(data)["pid"])
        elif frame.msg_type == WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.done:
            self.done = True
            self.shared.client_done()


class Receiver:
    """One receiver process's clients."""

    def __init__(self, count: int, probe_every: int, offset: int) -> None:
        self.count = count
        self.clients: List[Subscriber] = []
        self.latencies_us = array("q")
        self.last_ns = 0
        self.frames = 0
        self.remaining = count
        self.all_done = asyncio.Event()
        self.probe_every = probe_every
        self.offset = offset

    def client_done(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.all_done.set()

    async def connect(self, url: str) -> None:
        semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(i: int) -> None:
            async with semaphore:
                probe = (self.offset + i) % self.probe_every == 0
                _, client = await ws_connect(lambda: Subscriber(self, probe), url,
                                             websocket_handshake_timeout=30)
                assert isinstance(client, Subscriber)
                self.clients.append(client)

        await asyncio.gather(*(one(i) for i in range(self.count)))


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def receiver_main(url: str, count: int, probe_every: int, offset: int, drain: float,
                  loop_kind: str, pipe: Connection) -> None:
    async def run() -> None:
        receiver = Receiver(count, probe_every, offset)
        try:
            await receiver.connect(url)
        except Exception as exc:
            pipe.send({"error": f"{type(exc).__name__}: {exc}"})
            raise SystemExit(1) from None
        loop = asyncio.get_running_loop()
        while not all(c.worker_pid for c in receiver.clients):  # hello not yet in
            await asyncio.sleep(0.01)
        pipe.send({"pids": sorted({c.worker_pid for c in receiver.clients})})
        await loop.run_in_executor(None, pipe.recv)  # "go": the publisher started
        cpu0 = time.process_time()
        await loop.run_in_executor(None, pipe.recv)  # the publisher sent END
        try:
            await asyncio.wait_for(receiver.all_done.wait(), drain)
        except asyncio.TimeoutError:
            pass
        codes: Dict[str, int] = {}
        for c in receiver.clients:
            if c.close_code is not None:
                codes[str(c.close_code)] = codes.get(str(c.close_code), 0) + 1
        pipe.send({"received": [c.received for c in receiver.clients], "codes": codes,
                   "cpu": time.process_time() - cpu0, "frames": receiver.frames,
                   "last_ns": receiver.last_ns, "latencies_us": receiver.latencies_us.tobytes()})

    loop = _new_loop(loop_kind)
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()


class Publisher(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


async def publish(url: str, rate: float, duration: float) -> tuple[int, int]:
    """Send ``rate`` messages/s for ``duration`` s; returns (messages sent, first send ns)."""
    transport, _ = await ws_connect(Publisher, url)
    loop = asyncio.get_running_loop()
    start = loop.time()
    first_ns = time.monotonic_ns()
    sent = 0
    total = int(rate * duration)
    while sent < total:
        due = min(total, int((loop.time() - start) * rate) + 1)
        while sent < due:  # catch up if the loop was late: the offered rate is kept
            transport.send(WSMsgType.TEXT, f"{sent} {time.monotonic_ns()}")
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - loop.time()))
    transport.send(WSMsgType.TEXT, "END")
    transport.send_close(1000)
    return sent, first_ns


def proc_stats(pid: int) -> tuple[float, float]:
    """(RSS in MiB, CPU seconds user+system) of a process on this machine."""
    rss = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def percentile(sorted_values: List[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", help="the chat server (ws://host:port/)")
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=1000, help="messages/s published")
    parser.add_argument("--duration", type=float, default=20, help="seconds of publishing")
    parser.add_argument("--procs", type=int, default=2, help="receiver processes")
    parser.add_argument("--probe-every", type=int, default=10,
                        help="every n-th client records latencies")
    parser.add_argument("--drain", type=float, default=30,
                        help="seconds to wait for END after the last send")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop",
                        help="event loop of the receivers and the publisher")
    parser.add_argument("--start-workers", type=int, default=0,
                        help="start redis-server (scripts/redis/run.py) and chat_server.py "
                             "with this many workers (--loop) instead of using --url")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="with --start-workers: an extra chat_server.py argument "
                             "(repeatable), e.g. --server-arg=--no-coalesce")
    args = parser.parse_args()
    if args.start_workers:
        return with_local_server(args)
    if not args.url:
        parser.error("--url or --start-workers is required")
    return run(args)


def with_local_server(args: argparse.Namespace) -> int:
    """Start redis-server and chat_server.py on 127.0.0.1, run the load, stop both."""
    here = Path(__file__).resolve().parent
    redis_run = subprocess.Popen(
        [sys.executable, str(here.parents[1] / "scripts" / "redis" / "run.py"), "serve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert redis_run.stdout is not None and redis_run.stdin is not None
    try:
        redis_url = json.loads(redis_run.stdout.readline())["url"]
        server = subprocess.Popen(
            [sys.executable, str(here / "chat_server.py"), "--port", "0", "--workers",
             str(args.start_workers), "--redis", redis_url, "--loop", args.loop,
             *args.server_arg],
            stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        try:
            line = server.stdout.readline()
            if not line.startswith("LISTENING "):
                print("chat_server.py did not start")
                return 1
            args.url = f"ws://127.0.0.1:{line.split()[1]}/"
            print(f"started redis-server ({redis_url}) and chat_server.py with "
                  f"{args.start_workers} workers ({args.loop}) at {args.url}", flush=True)
            return run(args)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    finally:
        redis_run.stdin.close()
        redis_run.wait(30)


def run(args: argparse.Namespace) -> int:

    ctx = multiprocessing.get_context("spawn")
    pipes = []
    procs = []
    share = [args.clients // args.procs + (i < args.clients % args.procs)
             for i in range(args.procs)]
    offset = 0
    for count in share:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=receiver_main, args=(args.url, count, args.probe_every,
                                                       offset, args.drain, args.loop, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
        offset += count
    t0 = time.monotonic()
    pids: Set[int] = set()
    for pipe in pipes:
        ready = pipe.recv()
        if "error" in ready:
            print(f"a receiver could not connect: {ready['error']}")
            for proc in procs:
                proc.terminate()
            return 1
        pids.update(ready["pids"])
    print(f"{args.clients} clients connected in {time.monotonic() - t0:.1f} s over "
          f"{len(pids)} workers", flush=True)
    before = {pid: proc_stats(pid) for pid in sorted(pids)}
    for pipe in pipes:
        pipe.send("go")
    loop = _new_loop(args.loop)
    try:
        sent, first_ns = loop.run_until_complete(publish(args.url, args.rate, args.duration))
    finally:
        loop.close()
    for pipe in pipes:
        pipe.send("end")
    results: List[Dict[str, Any]] = [pipe.recv() for pipe in pipes]
    after = {pid: proc_stats(pid) for pid in sorted(pids)}
    for proc in procs:
        proc.join(30)

    received = [n for r in results for n in r["received"]]
    delivered = sum(received)
    lost = sum(max(0, sent - n) for n in received)
    codes: Dict[str, int] = {}
    for r in results:
        for code, n in r["codes"].items():
            codes[code] = codes.get(code, 0) + n
    last_ns = max(r["last_ns"] for r in results)
    elapsed = max(1e-9, (last_ns - first_ns) / 1e9)
    latencies = array("q")
    for r in results:
        latencies.frombytes(r["latencies_us"])
    ordered = sorted(latencies)
    print(f"published {sent} messages in {args.duration:.1f} s ({args.rate:.0f}/s offered), "
          f"{args.clients} subscribers: offered {args.rate * args.clients:,.0f} deliveries/s")
    print(f"delivered {delivered:,} ({delivered / elapsed:,.0f} messages/s over {elapsed:.1f} s "
          f"from first send to last receipt); missing {lost} deliveries (lost, or still "
          f"queued when the drain ended); close codes {codes}")
    frames = sum(r["frames"] for r in results)
    print(f"broadcasts per TEXT message received (server-side coalescing): "
          f"{delivered / max(1, frames):.2f}")
    print(f"fan-out latency (send -> receipt, {len(ordered):,} samples): "
          f"p50 {percentile(ordered, 0.50):.1f} ms, p99 {percentile(ordered, 0.99):.1f} ms, "
          f"max {percentile(ordered, 1.0):.1f} ms")
    rows = []
    for pid in sorted(pids):
        rss, cpu = after[pid]
        rows.append(f"pid {pid}: {rss:.1f} MiB, {cpu - before[pid][1]:.1f} CPU s")
    worker_cpu = sum(after[pid][1] - before[pid][1] for pid in pids)
    print("RSS per worker (and CPU seconds used from the first send to the end of the drain): "
          + "; ".join(rows))
    print(f"server CPU per delivered message: {worker_cpu / max(1, delivered) * 1e6:.2f} us "
          f"({worker_cpu:.1f} s in total); receivers' CPU: "
          + ", ".join(f"{r['cpu']:.1f} s" for r in results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
