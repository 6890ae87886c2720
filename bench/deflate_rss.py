"""RSS per idle connection of a server, with and without permessage-deflate.

Starts each server in its own process (femtows core echo, websockets echo), opens N client
connections from this process (femtows clients offering permessage-deflate, or not), sends one
~1 KiB JSON message on each and reads the echo (so both directions' zlib state exists), then
reads the server's VmRSS. Reports (RSS with N connections - RSS before) / N.

    python -m bench.deflate_rss [--conns 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from typing import List

import femtows
from bench.deflate_micro import market_messages
from tests.utils import RecordingListener

SERVER = r'''
import asyncio, sys
kind, compression = sys.argv[1], sys.argv[2] == "on"
async def main():
    if kind.startswith("femtows"):
        import femtows
        from tests.utils import EchoListener
        if not compression:
            cfg = None
        elif kind == "femtows-default":
            cfg = "deflate"
        else:
            cfg = femtows.WSDeflateConfig(server_max_window_bits=12, client_max_window_bits=12,
                                          mem_level=5)
        server = await femtows.ws_create_server(lambda r: EchoListener(), "127.0.0.1", 0,
                                                compression=cfg)
    else:
        from websockets.asyncio.server import serve
        async def echo(ws):
            async for m in ws:
                await ws.send(m)
        server = await serve(echo, "127.0.0.1", 0,
                             compression="deflate" if compression else None)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
'''


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def measure(kind: str, compression: bool, conns: int) -> float:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, "on" if compression else "off"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        await asyncio.sleep(0.2)
        before = rss_kib(proc.pid)
        message = market_messages(1024, 1)[0]
        transports: List[femtows.WSTransport] = []
        for _ in range(conns):
            t, client = await femtows.ws_connect(
                RecordingListener, f"ws://127.0.0.1:{port}/",
                compression="deflate" if compression else None)
            assert isinstance(client, RecordingListener)
            assert (t.compression is not None) == compression
            t.send(femtows.WSMsgType.BINARY, message)
            await client.wait_message(0)
            transports.append(t)
        await asyncio.sleep(0.5)
        after = rss_kib(proc.pid)
        for t in transports:
            t.disconnect(False)
        return (after - before) * 1024 / conns
    finally:
        proc.kill()
        proc.wait()


async def amain(conns: int) -> None:
    print(f"server RSS per idle connection, {conns} connections, one ~1 KiB message echoed "
          f"on each (server: window 12 bits, memLevel 5 when compressed)")
    for kind in ("femtows", "femtows-default", "websockets"):
        for compression in (False, True):
            if kind == "femtows-default" and not compression:
                continue
            per = await measure(kind, compression, conns)
            print(f"{kind:>10} compression={'on ' if compression else 'off'} "
                  f"{per / 1024:8.1f} KiB per connection")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conns", type=int, default=1000)
    args = parser.parse_args()
    sys.path.insert(0, os.getcwd())
    asyncio.run(amain(args.conns))


if __name__ == "__main__":
    main()
