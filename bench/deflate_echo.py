"""Compressed echo of market-data-like JSON: femtows core, femtows-ws, websockets, aiohttp.

Every library runs its own echo server and one client in this process (one event loop), with
permessage-deflate negotiated (each library's default parameters), and sends the same seeded
messages one at a time (send, wait for the echo). Slices alternate between libraries so that
machine load hits all of them alike; the result is round trips per second per library and size,
and the ratio to websockets. CPU per message is the process's CPU time (client + server) per
round trip.

    PYTHONPATH=. python -m bench.deflate_echo --slices 5 --seconds 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import time
from typing import Any, Awaitable, Callable, Dict, List, Tuple

SIZES = [256, 2048, 16 * 1024, 100 * 1024]
LIBS = ["femtows", "femtows-ws", "websockets", "aiohttp"]


def market_messages(size: int, count: int = 64, seed: int = 7) -> List[str]:
    """Seeded order-book / trade updates as JSON, each about ``size`` bytes."""
    rng = random.Random(seed * 1_000_003 + size)
    symbols = ["BTC-USD", "ETH-USD", "SOL-USD", "AAPL", "MSFT", "EUR-USD", "XAU-USD"]
    out = []
    for _ in range(count):
        price = rng.uniform(10, 100_000)
        levels = []
        update: Dict[str, Any] = {
            "type": rng.choice(["l2update", "snapshot", "trade"]),
            "symbol": rng.choice(symbols),
            "seq": rng.randrange(10**12),
            "ts": f"2026-11-30T10:{rng.randrange(60):02d}:{rng.uniform(0, 60):09.6f}Z",
            "levels": levels,
        }
        length = len(json.dumps(update))
        while length < size:
            level = [rng.choice(["bid", "ask"]), round(price * rng.uniform(0.99, 1.01), 2),
                     round(rng.expovariate(2.0), 6), rng.randrange(1, 40)]
            levels.append(level)
            length += len(json.dumps(level)) + 2
        out.append(json.dumps(update)[:size] if size < 300 else json.dumps(update))
    return out


Echo = Callable[[str], Awaitable[str]]


async def femtows_core() -> Tuple[Echo, Callable[[], Awaitable[None]]]:
    import femtows
    from femtows import WSListener, WSMsgType

    class Server(WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()
            else:
                transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)

    class Client(WSListener):
        waiter: asyncio.Future[bytes]

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                self.waiter.set_result(frame.get_payload_as_bytes())

    server = await femtows.ws_create_server(lambda r: Server(), "127.0.0.1", 0,
                                            compression="deflate", max_frame_size=2**24)
    port = server.sockets[0].getsockname()[1]
    transport, client = await femtows.ws_connect(Client, f"ws://127.0.0.1:{port}/",
                                                 compression="deflate", max_frame_size=2**24)
    assert transport.compression is not None
    loop = asyncio.get_running_loop()

    async def echo(message: str) -> str:
        client.waiter = loop.create_future()
        transport.send(WSMsgType.TEXT, message.encode())
        return (await client.waiter).decode()

    async def stop() -> None:
        transport.disconnect()
        server.close()

    return echo, stop


async def websockets_like(lib: str) -> Tuple[Echo, Callable[[], Awaitable[None]]]:
    if lib == "femtows-ws":
        from femtows.websockets.asyncio.client import connect
        from femtows.websockets.asyncio.server import serve
    else:
        from websockets.asyncio.client import connect  # type: ignore[no-redef]
        from websockets.asyncio.server import serve  # type: ignore[no-redef]

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    server = await serve(handler, "127.0.0.1", 0, max_size=None, ping_interval=None)
    port = server.sockets[0].getsockname()[1]
    ws = await connect(f"ws://127.0.0.1:{port}/", max_size=None, ping_interval=None)
    assert ws.protocol.extensions

    async def echo(message: str) -> str:
        await ws.send(message)
        reply: Any = await ws.recv()
        return str(reply)

    async def stop() -> None:
        await ws.close()
        server.close()
        await server.wait_closed()

    return echo, stop


async def aiohttp_pair() -> Tuple[Echo, Callable[[], Awaitable[None]]]:
    import aiohttp
    from aiohttp import web

    async def handler(request: Any) -> Any:
        ws = web.WebSocketResponse(max_msg_size=0, compress=True)
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(f"http://127.0.0.1:{port}/", max_msg_size=0, compress=15)
    assert ws.compress

    async def echo(message: str) -> str:
        await ws.send_str(message)
        return (await ws.receive()).data  # type: ignore[no-any-return]

    async def stop() -> None:
        await ws.close()
        await session.close()
        await runner.cleanup()

    return echo, stop


async def start(lib: str) -> Tuple[Echo, Callable[[], Awaitable[None]]]:
    if lib == "femtows":
        return await femtows_core()
    if lib == "aiohttp":
        return await aiohttp_pair()
    return await websockets_like(lib)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def main(slices: int, seconds: float) -> None:
    pairs = {lib: await start(lib) for lib in LIBS}
    rps: Dict[Tuple[str, int], List[float]] = {}
    cpu_us: Dict[Tuple[str, int], List[float]] = {}
    for size in SIZES:
        messages = market_messages(size)
        for lib in LIBS:  # check + warm up
            echo = pairs[lib][0]
            for m in messages:
                assert await echo(m) == m
        for _ in range(slices):
            for lib in LIBS:
                echo = pairs[lib][0]
                n = 0
                t0, c0 = time.perf_counter(), cpu()
                while time.perf_counter() - t0 < seconds:
                    for m in messages[:16]:
                        await echo(m)
                    n += 16
                dt, dc = time.perf_counter() - t0, cpu() - c0
                rps.setdefault((lib, size), []).append(n / dt)
                cpu_us.setdefault((lib, size), []).append(dc / n * 1e6)
    for _, stop in pairs.values():
        await stop()
    print("| size | " + " | ".join(f"{lib} rt/s" for lib in LIBS)
          + " | femtows / websockets | femtows-ws / websockets | CPU µs per rt (femtows, "
          "femtows-ws, websockets, aiohttp) |")
    print("|---:|" + "---:|" * (len(LIBS) + 3))
    for size in SIZES:
        med = {lib: statistics.median(rps[(lib, size)]) for lib in LIBS}
        cpus = ", ".join(f"{statistics.median(cpu_us[(lib, size)]):.0f}" for lib in LIBS)
        print(f"| {size} | " + " | ".join(f"{med[lib]:.0f}" for lib in LIBS)
              + f" | {med['femtows'] / med['websockets']:.2f}x"
              + f" | {med['femtows-ws'] / med['websockets']:.2f}x | {cpus} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="per slice per library")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args.slices, args.seconds))
    else:
        asyncio.run(main(args.slices, args.seconds))
