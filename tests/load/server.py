"""The server process of the load, churn and soak runs (tests/load/run.py starts it).

    python -m tests.load.server [--lib femtows|picows] [--loop uvloop|asyncio] [--net afn|loopnet]
                                [--api core|websockets]

It serves an echo listener on 127.0.0.1 (ephemeral port, printed as the first stdout line:
``{"port": N}``) and answers one command per stdin line with one JSON line on stdout, so that
its RSS is measured alone, without the clients' memory:

* ``stats``: counters and process figures (see :func:`stats`);
* ``ping``: send a PING to every open connection (the PONGs are counted in ``pongs``);
* ``trim``: ``malloc_trim(0)`` (glibc), then ``stats``;
* ``tracemalloc start`` / ``tracemalloc top``: start tracing / the 15 largest growths since
  the start, by line;
* ``buffers``: femtows only: the read and write buffer capacities of every open connection
  (``femtows._core.core._buffer_sizes``);
* ``quit``.

The listener echoes every data frame and counts it (``--api websockets``: a
``femtows.websockets.asyncio`` ``serve()`` handler echoes every message instead, compression
off); ``--soak`` also CRC-checks every message
against the 4-byte CRC-32 the soak client puts at its end (see run.py), so both directions are
verified.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import logging
import os
import resource
import sys
import threading
import tracemalloc
import zlib
from typing import Any, Optional


class Counters:
    def __init__(self) -> None:
        self.connected = 0
        self.disconnected = 0
        self.messages = 0
        self.pongs = 0
        self.bad_messages = 0
        self.errors = 0  # ERROR records logged by the library
        self.open: set[Any] = set()


COUNTS = Counters()


class _ErrorCounter(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        COUNTS.errors += 1
        sys.stderr.write(f"server log: {record.getMessage()}\n")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_listener_class(lib: Any, soak: bool) -> Any:
    msg_type = lib.WSMsgType

    class EchoListener(lib.WSListener):  # type: ignore[misc]
        """Echo data frames; count messages and PONGs; with soak, check each message's CRC."""

        def __init__(self) -> None:
            self.transport: Any = None
            self.parts: list[bytes] = []

        def on_ws_connected(self, transport: Any) -> None:
            self.transport = transport
            COUNTS.connected += 1
            COUNTS.open.add(self)

        def on_ws_disconnected(self, transport: Any) -> None:
            COUNTS.disconnected += 1
            COUNTS.open.discard(self)
            self.transport = None

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            t = frame.msg_type
            if t == msg_type.PONG:
                COUNTS.pongs += 1
                return
            if t == msg_type.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
                return
            if t not in (msg_type.TEXT, msg_type.BINARY, msg_type.CONTINUATION):
                return
            view = frame.get_payload_as_memoryview()
            transport.send(t, view, frame.fin)
            if soak:
                # Checked in place (no copy: the server's own allocations would blur its RSS);
                # fragmented messages, which the soak client does not send, are joined first.
                if self.parts or not frame.fin:
                    self.parts.append(frame.get_payload_as_bytes())
                    if not frame.fin:
                        return
                    view = memoryview(b"".join(self.parts))
                    self.parts.clear()
                if not crc_ok(view):
                    COUNTS.bad_messages += 1
            if frame.fin:
                COUNTS.messages += 1

    return EchoListener


def crc_ok(view: Any) -> bool:
    """Messages under 4 bytes carry no CRC (the client compares their echo)."""
    return len(view) < 4 or zlib.crc32(view[:-4]) == int.from_bytes(view[-4:], "big")


class DropinConnection:
    """What ``COUNTS.open`` holds for a drop-in connection: ``transport`` is its core
    WSTransport (for ``buffers`` and ``ping``)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.transport: Any = ws._wst


async def dropin_handler(ws: Any, soak: bool) -> None:
    """The drop-in echo handler: every message back as it came, counted; with soak, checked."""
    from femtows.websockets.exceptions import ConnectionClosed

    conn = DropinConnection(ws)
    COUNTS.connected += 1
    COUNTS.open.add(conn)
    try:
        async for message in ws:
            if soak and not crc_ok(memoryview(message)):
                COUNTS.bad_messages += 1
            await ws.send(message)
            COUNTS.messages += 1
    except ConnectionClosed:
        pass
    finally:
        COUNTS.disconnected += 1
        COUNTS.open.discard(conn)
        conn.transport = None


def stats() -> dict[str, Any]:
    """What the clients check: counters, RSS, open fds, asyncio tasks, live objects."""
    gc.collect()
    return {
        "rss": rss_bytes(),
        "fds": len(os.listdir("/proc/self/fd")),
        "tasks": len(asyncio.all_tasks()),
        "open": len(COUNTS.open),
        "connected": COUNTS.connected,
        "disconnected": COUNTS.disconnected,
        "messages": COUNTS.messages,
        "pongs": COUNTS.pongs,
        "bad_messages": COUNTS.bad_messages,
        "errors": COUNTS.errors,
        "blocks": sys.getallocatedblocks(),
        "objects": len(gc.get_objects()),
    }


def command(line: str, lib_name: str) -> Optional[dict[str, Any]]:
    cmd = line.split()
    if not cmd or cmd[0] == "stats":
        return stats()
    if cmd[0] == "uncollected":
        # Connection objects still in memory, before any collection: what refcounting alone
        # did not free (reference cycles wait for the cyclic GC).
        names = {"WSTransport", "WSProtocol", "EchoListener"}
        found: dict[str, int] = {}
        for o in gc.get_objects():
            name = type(o).__name__
            if name in names:
                found[name] = found.get(name, 0) + 1
        return {"uncollected": found, "open": len(COUNTS.open)}
    if cmd[0] == "ping":
        for listener in list(COUNTS.open):
            if listener.transport is not None:
                listener.transport.send_ping(b"load")
        return {"pinged": len(COUNTS.open)}
    if cmd[0] == "trim":
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return stats()
    if cmd[0] == "tracemalloc":
        if cmd[1] == "start":
            tracemalloc.start(int(cmd[2]) if len(cmd) > 2 else 1)
            global SNAPSHOT
            SNAPSHOT = tracemalloc.take_snapshot()
            return {"tracing": True}
        gc.collect()
        snap = tracemalloc.take_snapshot()
        diff = snap.compare_to(SNAPSHOT, "traceback" if len(cmd) > 2 else "lineno")
        return {"top": [str(d) for d in diff[:15]]}
    if cmd[0] == "types":
        gc.collect()
        counts: dict[str, int] = {}
        for o in gc.get_objects():
            name = type(o).__qualname__
            counts[name] = counts.get(name, 0) + 1
        return {"types": sorted(counts.items(), key=lambda kv: -kv[1])[:25]}
    if cmd[0] == "buffers":
        if lib_name != "femtows":
            return {"buffers": None}
        from femtows._core.core import _buffer_sizes

        sizes = [_buffer_sizes(li.transport) for li in list(COUNTS.open) if li.transport]
        return {"buffers": sizes}
    return None


SNAPSHOT: Any = None


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    if args.lib == "femtows":
        import femtows as lib

        kwargs: dict[str, Any] = {"use_aiofastnet": args.net == "afn"}
    else:
        import picows as lib  # type: ignore[no-redef]

        kwargs = {}
    for name in ("femtows", "picows", "aiofastnet", "asyncio"):
        logging.getLogger(name).addHandler(_ErrorCounter(logging.ERROR))
    server: Any
    if args.api == "websockets":
        from femtows.websockets.asyncio.server import serve as ws_serve

        logging.getLogger("websockets").addHandler(_ErrorCounter(logging.ERROR))
        server = await ws_serve(lambda ws: dropin_handler(ws, args.soak), "127.0.0.1", 0,
                                backlog=4096, compression=None, max_size=2 * 1024 * 1024,
                                ping_interval=None)
    else:
        listener_class = make_listener_class(lib, args.soak)
        server = await lib.ws_create_server(
            lambda request: listener_class(), "127.0.0.1", 0, backlog=4096, **kwargs)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port, "pid": os.getpid(), "nofile": raise_nofile()}), flush=True)
    done = asyncio.Event()

    def on_line(line: str) -> None:
        if line.strip() == "quit" or not line:
            done.set()
            return
        result = command(line, args.lib)
        print(json.dumps(result), flush=True)

    def reader() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(on_line, line)
        loop.call_soon_threadsafe(on_line, "")

    threading.Thread(target=reader, daemon=True).start()
    await done.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lib", choices=["femtows", "picows"], default="femtows")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--net", choices=["afn", "loopnet"], default="afn")
    parser.add_argument("--soak", action="store_true", help="CRC-check every message")
    parser.add_argument("--api", choices=["core", "websockets"], default="core",
                        help="the core's listener, or a femtows.websockets.asyncio server")
    args = parser.parse_args()
    raise_nofile()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
