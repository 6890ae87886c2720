"""Load, churn and soak runs against a femtows (or picows) server in a process of its own.

    python -m tests.load.run load  [--conns 10000]
    python -m tests.load.run churn [--cycles 100000 --checkpoint 10000 --concurrency 32]
    python -m tests.load.run soak  [--messages 1000000 --conns 100 --seed 1] [--api websockets]

This process is the client side (femtows clients on uvloop); the server is
``tests/load/server.py`` in a child process, so the RSS read from it is the server's alone. Each
run prints its figures as it goes and ends with a JSON summary; the exit status is 1 when an
invariant failed (they are listed under ``failures``). ``--api websockets`` runs the soak's
server and clients on the websockets drop-in (``femtows.websockets.asyncio``) instead of the
core. tests/load/test_load.py runs the same functions with small sizes in CI;
tests/load/README.md has the full-size commands and results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Optional

import femtows
from femtows import WSFrame, WSListener, WSMsgType, WSTransport

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
# A connection's read buffer at rest (16 KiB + the 64-byte slack) and the bound of its write
# buffer (16 KiB + header + 256): what every buffer must be back to after large messages.
SMALL_BUFFER = 16 * 1024 + 256 + 14


def raise_nofile() -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Server:
    """tests/load/server.py in a child process; ``ask`` sends one command, returns its JSON."""

    def __init__(self, lib: str = "femtows", loop: str = "uvloop", net: str = "afn",
                 soak: bool = False, api: str = "core",
                 mmap_threshold: Optional[int] = None) -> None:
        cmd = [sys.executable, "-m", "tests.load.server", "--lib", lib, "--loop", loop,
               "--net", net, "--api", api] + (["--soak"] if soak else [])
        env = dict(os.environ)
        if mmap_threshold is not None:
            # glibc: a fixed mmap threshold (which also stops it from moving dynamically).
            env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the server did not start (exit {self.proc.wait()})")
        info = json.loads(line)
        self.port: int = info["port"]
        self.nofile: int = info["nofile"]
        self.url = f"ws://127.0.0.1:{self.port}/"

    def ask(self, command: str = "stats") -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the server process exited")
        return json.loads(line)

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool],
                       timeout: float = 60.0) -> dict[str, Any]:
        """Poll ``stats`` until ``predicate`` holds (the server finishes closing on its own
        schedule); fails after ``timeout`` seconds with the last figures."""
        deadline = time.monotonic() + timeout
        while True:
            stats: dict[str, Any] = self.ask("stats")
            if predicate(stats):
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"server state not reached in {timeout}s: {stats}")
            await asyncio.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Client(WSListener):
    """Hands each echo to the one waiting ``round_trip``. Server PINGs are answered by
    femtows's auto-pong (the server counts the PONGs)."""

    def __init__(self) -> None:
        self.waiter: Optional[asyncio.Future[bytes]] = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        t = frame.msg_type
        if t == WSMsgType.BINARY or t == WSMsgType.TEXT:
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(frame.get_payload_as_bytes())

    async def round_trip(self, transport: WSTransport, message: bytes) -> bytes:
        self.waiter = asyncio.get_running_loop().create_future()
        transport.send(WSMsgType.BINARY, message)
        return await self.waiter


class DropinClient:
    """A ``femtows.websockets.asyncio`` client connection (compression off, 2 MiB max_size)
    with the same ``round_trip`` as :class:`Client`."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, url: str) -> DropinClient:
        from femtows.websockets.asyncio.client import connect

        ws = await connect(url, compression=None, max_size=2 * MiB, ping_interval=None)
        return cls(ws)

    async def round_trip(self, transport: Any, message: bytes) -> bytes:
        await self.ws.send(message)
        echo: bytes = await self.ws.recv()
        return echo

    async def close(self) -> None:
        await self.ws.close()


async def close(transport: WSTransport) -> None:
    transport.send_close(femtows.WSCloseCode.OK)
    await transport.wait_disconnected()


def mib(n: int) -> str:
    return f"{n / MiB:.2f} MiB"


# ------------------------------------------------------------------------------------------------
# (a) many concurrent connections


async def run_load(server: Server, conns: int, connect_concurrency: int = 256,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Open ``conns`` connections and keep them all open; each exchanges one message and
    answers a server PING; then close them all. Checks counts, fds and tasks."""
    failures: list[str] = []
    base = server.ask("stats")
    log(f"server before: rss={mib(base['rss'])} fds={base['fds']} tasks={base['tasks']}")
    sem = asyncio.Semaphore(connect_concurrency)
    opened: list[tuple[WSTransport, Client]] = []
    errors: list[str] = []
    t0 = time.monotonic()

    async def open_one(i: int) -> None:
        async with sem:
            try:
                transport, client = await femtows.ws_connect(Client, server.url,
                                                             websocket_handshake_timeout=60)
                assert isinstance(client, Client)
                message = i.to_bytes(4, "big") * 8
                if await client.round_trip(transport, message) != message:
                    errors.append(f"connection {i}: wrong echo")
                opened.append((transport, client))
            except Exception as e:  # counted and reported, not raised: all must be seen
                errors.append(f"connection {i}: {e!r}")

    await asyncio.gather(*(open_one(i) for i in range(conns)))
    t_open = time.monotonic() - t0
    held = await server.wait_for(lambda s: s["open"] >= len(opened), 30)
    log(f"{len(opened)} connections open and echoed in {t_open:.1f}s: server "
        f"rss={mib(held['rss'])} (+{(held['rss'] - base['rss']) / max(conns, 1) / 1024:.1f} "
        f"KiB/conn) fds={held['fds']} open={held['open']}")
    server.ask("ping")
    pinged = await server.wait_for(lambda s: s["pongs"] - base["pongs"] >= len(opened), 60)
    log(f"server PING answered by all: pongs={pinged['pongs'] - base['pongs']}")
    await asyncio.gather(*(close(t) for t, _ in opened), return_exceptions=True)
    end = await server.wait_for(lambda s: s["open"] == 0, 60)
    log(f"server after closing all: rss={mib(end['rss'])} fds={end['fds']} tasks={end['tasks']}")
    if errors:
        failures.append(f"{len(errors)} client errors, first: {errors[:3]}")
    if len(opened) != conns or held["open"] != conns:
        failures.append(f"open: client {len(opened)}, server {held['open']}, wanted {conns}")
    if pinged["pongs"] - base["pongs"] != conns:
        failures.append(f"pongs {pinged['pongs'] - base['pongs']} != {conns}")
    if held["fds"] < base["fds"] + conns:
        failures.append(f"server fds while held {held['fds']} < {base['fds']} + {conns}")
    if end["fds"] != base["fds"]:
        failures.append(f"server fds {base['fds']} -> {end['fds']}")
    if end["tasks"] != base["tasks"]:
        failures.append(f"server tasks {base['tasks']} -> {end['tasks']}")
    if end["errors"] != base["errors"]:
        failures.append(f"server logged {end['errors'] - base['errors']} errors")
    if end["connected"] - base["connected"] != conns or end["disconnected"] != end["connected"]:
        failures.append(f"server connected/disconnected {end['connected']}/{end['disconnected']}")
    return {"run": "load", "conns": conns, "open_seconds": round(t_open, 2),
            "rss_before": base["rss"], "rss_held": held["rss"], "rss_after": end["rss"],
            "kib_per_conn": round((held["rss"] - base["rss"]) / max(conns, 1) / 1024, 2),
            "fds": [base["fds"], held["fds"], end["fds"]], "failures": failures}


# ------------------------------------------------------------------------------------------------
# (b) churn


async def run_churn(server: Server, cycles: int, checkpoint: int, concurrency: int = 32,
                    message: bool = False, rss_tolerance: float = 0.02,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """``cycles`` connect/upgrade/close cycles (plus one echo each with ``message``),
    ``concurrency`` at a time, in batches of ``checkpoint``; after each batch the server's
    figures are read with no connection open. The RSS after the last batch must be at most
    the RSS after the first batch + ``rss_tolerance``; fds and tasks must not move."""
    failures: list[str] = []
    errors: list[str] = []
    points: list[dict[str, Any]] = []
    base = server.ask("stats")
    payload = b"churn"

    async def cycle() -> None:
        try:
            transport, client = await femtows.ws_connect(Client, server.url,
                                                         websocket_handshake_timeout=60)
            if message:
                assert isinstance(client, Client)
                if await client.round_trip(transport, payload) != payload:
                    errors.append("wrong echo")
            await close(transport)
        except Exception as e:
            errors.append(repr(e))

    async def worker(n: int) -> None:
        for _ in range(n):
            await cycle()

    done = 0
    t0 = time.monotonic()
    while done < cycles:
        batch = min(checkpoint, cycles - done)
        per, extra = divmod(batch, concurrency)
        await asyncio.gather(*(worker(per + (1 if i < extra else 0))
                               for i in range(concurrency)))
        done += batch
        target = base["disconnected"] + done

        def settled(s: dict[str, Any], target: int = target) -> bool:
            return bool(s["open"] == 0 and s["disconnected"] >= target)

        stats = await server.wait_for(settled, 60)
        stats["cycles"] = done
        stats["seconds"] = round(time.monotonic() - t0, 1)
        points.append(stats)
        log(f"{done:>7} cycles {stats['seconds']:>6}s: rss={mib(stats['rss'])} "
            f"fds={stats['fds']} tasks={stats['tasks']} blocks={stats['blocks']} "
            f"objects={stats['objects']} errors={len(errors)}+{stats['errors']}")
    first, last = points[0], points[-1]
    if errors:
        failures.append(f"{len(errors)} client errors, first: {errors[:3]}")
    if last["errors"] != base["errors"]:
        failures.append(f"server logged {last['errors'] - base['errors']} errors")
    if last["connected"] - base["connected"] != cycles:
        failures.append(f"server saw {last['connected'] - base['connected']} upgrades, "
                        f"wanted {cycles}")
    if last["fds"] != first["fds"] or last["fds"] != base["fds"]:
        failures.append(f"server fds {base['fds']} -> {first['fds']} -> {last['fds']}")
    if last["tasks"] != base["tasks"]:
        failures.append(f"server tasks {base['tasks']} -> {last['tasks']}")
    bound = first["rss"] * (1 + rss_tolerance)
    if last["rss"] > bound:
        failures.append(f"server RSS {mib(first['rss'])} after {first['cycles']} cycles -> "
                        f"{mib(last['rss'])} after {last['cycles']} (> +{rss_tolerance:.1%})")
    return {"run": "churn", "cycles": cycles, "seconds": last["seconds"],
            "cycles_per_s": round(cycles / max(last["seconds"], 1e-9)),
            "rss": [(p["cycles"], p["rss"]) for p in points],
            "rss_growth_after_first": last["rss"] - first["rss"],
            "fds": [p["fds"] for p in points], "blocks": [p["blocks"] for p in points],
            "failures": failures}


# ------------------------------------------------------------------------------------------------
# Soak


def soak_sizes(seed: int, count: int) -> list[int]:
    """Seeded message sizes, 0 B to 1 MiB: 99% log-uniform up to 16 KiB, 1% log-uniform from
    16 KiB to 1 MiB, plus the length-field boundaries (125/126, 65535/65536) and 1 MiB itself
    at fixed positions."""
    rng = random.Random(seed)
    sizes = []
    for _ in range(count):
        if rng.random() < 0.99:
            sizes.append(int(2 ** rng.uniform(0, 14)) - 1)
        else:
            sizes.append(int(2 ** rng.uniform(14, 20)))
    for i, n in enumerate((125, 126, 127, 65535, 65536, 65537, MiB)):
        for j in range(i, count, max(count // 50, 1) + 7 * i):
            sizes[j] = n
    return sizes


def soak_message(block: bytes, offset: int, size: int) -> bytes:
    """``size`` bytes from ``block``; from 4 bytes on, the last 4 are the CRC-32 of the rest
    (the soak server checks it)."""
    if size < 4:
        return block[offset:offset + size]
    body = block[offset:offset + size - 4]
    return body + zlib.crc32(body).to_bytes(4, "big")


async def run_soak(server: Server, messages: int, conns: int, seed: int = 1,
                   warmup: float = 0.1, rss_tolerance: float = 0.02, samples: int = 10,
                   api: str = "core", log: Callable[[str], None] = print) -> dict[str, Any]:
    """``messages`` echoed messages of mixed sizes over ``conns`` connections, one in flight
    per connection. Every echo is compared with what was sent (and the server checks every
    CRC); the server RSS after ``warmup`` of the messages vs the end must be within
    ``rss_tolerance``; at the end every connection's read/write buffers must be back to their
    initial size (femtows). With ``api="websockets"`` the clients are ``femtows.websockets``
    connections (and ``server`` must have been started with the same ``api``)."""
    failures: list[str] = []
    sizes = soak_sizes(seed, messages)
    rng = random.Random(seed + 1)
    block = rng.randbytes(MiB + 4096)
    offsets = [rng.randrange(0, 4096) for _ in range(1024)]
    base = server.ask("stats")
    clients: list[tuple[Any, Any]] = []
    for _ in range(conns):
        if api == "websockets":
            clients.append((None, await DropinClient.connect(server.url)))
            continue
        transport, client = await femtows.ws_connect(Client, server.url)
        assert isinstance(client, Client)
        clients.append((transport, client))
    next_index = 0
    bad: list[str] = []
    points: list[dict[str, Any]] = []
    # Phases end at the warm-up and at every 1/samples; the server is sampled between phases,
    # with every connection idle.
    ends = sorted({int(messages * warmup)} | {messages * k // samples
                                              for k in range(1, samples + 1)})
    sent_bytes = 0
    t0 = time.monotonic()

    async def worker(transport: Any, client: Any, end: int) -> None:
        nonlocal next_index, sent_bytes
        while next_index < end:
            i = next_index
            next_index += 1
            size = sizes[i]
            msg = soak_message(block, offsets[i & 1023], size)
            echo = await client.round_trip(transport, msg)
            sent_bytes += size
            if echo != msg:
                bad.append(f"message {i} ({size} B): echo differs")

    for end_at in ends:
        await asyncio.gather(*(worker(t, c, end_at) for t, c in clients))
        target = base["messages"] + end_at

        def delivered(s: dict[str, Any], target: int = target) -> bool:
            return bool(s["messages"] >= target)

        await server.wait_for(delivered)
        # Sampled once the connections are idle and their buffers settled (femtows gives a
        # grown read buffer back after READ_SHRINK_DELAY idle): RSS flat means nothing
        # accumulates, not that no large message is in flight.
        idle_at = time.monotonic()
        max_rbuf = max_buffer = None
        while True:
            buffers = server.ask("buffers")["buffers"]
            if buffers is None:
                break
            max_rbuf = max(b[0] for b in buffers)
            max_buffer = max(max(b) for b in buffers)
            if max_buffer <= SMALL_BUFFER or time.monotonic() - idle_at > 10:
                break
            await asyncio.sleep(0.1)
        stats = server.ask("stats")
        stats["at"] = end_at
        stats["seconds"] = round(time.monotonic() - t0, 1)
        stats["settle"] = round(time.monotonic() - idle_at, 2)
        points.append(stats)
        log(f"{end_at:>8} messages {stats['seconds']:>6}s: rss={mib(stats['rss'])} "
            f"(largest buffer {max_rbuf} B, {stats['settle']}s after the last message) "
            f"blocks={stats['blocks']} bad={len(bad)}+{stats['bad_messages']}")
    seconds = time.monotonic() - t0
    end = points[-1]
    await asyncio.gather(*(close(t) if t is not None else c.close() for t, c in clients))
    closed = await server.wait_for(lambda s: s["open"] == 0)
    log(f"{messages} messages, {sent_bytes / MiB:.0f} MiB each way, in {seconds:.1f}s; "
        f"server rss at end {mib(end['rss'])}")
    if bad:
        failures.append(f"{len(bad)} echoes differ, first: {bad[:3]}")
    if end["bad_messages"] != base["bad_messages"]:
        failures.append(f"server found {end['bad_messages']} bad CRCs")
    if end["errors"] != base["errors"] or closed["errors"] != base["errors"]:
        failures.append(f"server logged {closed['errors'] - base['errors']} errors")
    warm = next(p for p in points if p["at"] == int(messages * warmup))
    if warm is not end:
        if end["rss"] > warm["rss"] * (1 + rss_tolerance):
            failures.append(f"server RSS {mib(warm['rss'])} after {warm['at']} messages -> "
                            f"{mib(end['rss'])} at the end (> +{rss_tolerance:.1%})")
    if buffers is not None:
        grown = [b for b in buffers if max(b) > SMALL_BUFFER]
        if grown:
            failures.append(f"{len(grown)} connections kept grown buffers: {grown[:5]}")
    return {"run": "soak", "api": api, "messages": messages, "conns": conns,
            "seconds": round(seconds, 1),
            "mib_each_way": round(sent_bytes / MiB), "rss": [(p["at"], p["rss"]) for p in points],
            "buffers_at_end": sorted(set(map(tuple, buffers or []))),
            "failures": failures}


# ------------------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.lib, args.server_loop, args.net, soak=args.run == "soak",
                    api=args.api, mmap_threshold=args.mmap_threshold)
    try:
        print(f"server: {args.lib} on {args.server_loop}/{args.net}, pid {server.proc.pid}, "
              f"RLIMIT_NOFILE {server.nofile}; client RLIMIT_NOFILE {raise_nofile()}",
              flush=True)
        if args.run == "load":
            return await run_load(server, args.conns)
        if args.run == "churn":
            return await run_churn(server, args.cycles, args.checkpoint, args.concurrency,
                                   args.message)
        return await run_soak(server, args.messages, args.conns, args.seed,
                              warmup=args.warmup, api=args.api)
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", choices=["load", "churn", "soak"])
    parser.add_argument("--lib", choices=["femtows", "picows"], default="femtows",
                        help="the server's library (the clients are femtows)")
    parser.add_argument("--server-loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--net", choices=["afn", "loopnet"], default="afn",
                        help="femtows server transports: aiofastnet or the loop's")
    parser.add_argument("--conns", type=int, help="load: 10000; soak: 100")
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--checkpoint", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--message", action="store_true", help="churn: one echo per cycle")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--api", choices=["core", "websockets"], default="core",
                        help="soak: server and clients on the core's callback API or on the "
                             "websockets drop-in (femtows.websockets.asyncio, compression off)")
    parser.add_argument("--warmup", type=float, default=0.1,
                        help="soak: the fraction of the messages after which the RSS is the "
                             "reference of the flatness check")
    parser.add_argument("--mmap-threshold", type=int,
                        help="the server's glibc MALLOC_MMAP_THRESHOLD_ (bytes): fixed instead "
                             "of glibc's dynamic one (see README: the drop-in's soak)")
    args = parser.parse_args()
    if args.api != "core" and (args.run != "soak" or args.lib != "femtows"):
        parser.error("--api websockets is for the femtows soak")
    if args.conns is None:
        args.conns = 10_000 if args.run == "load" else 100
    raise_nofile()
    import uvloop

    result = uvloop.run(main_async(args))
    print(json.dumps(result), flush=True)
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
