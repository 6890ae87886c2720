"""The Python side of one benchmark slice: one library, one role, in a fresh process.

    python bench/pyside.py --lib femtows|femtows-cython|picows|websockets|aiohttp|floor \\
        --role client|server --loop uvloop|asyncio --tls 0|1 --size N --conns N \\
        --duration S --port P [--warmup S] [--cython-so PATH]

client: opens ``--conns`` connections to the echo server on ``--port`` (the native peer), each
    with one BINARY message of ``--size`` bytes in flight: send, wait for the complete echo
    through the library's normal receive path, check its type and length, send again. After
    ``--warmup`` seconds it prints ``START``, after ``--duration`` more one JSON line
    ``{"count", "elapsed", "rps", "cpu_user", "cpu_sys", "error", ...}``, then exits at once.
server: echo server on 127.0.0.1:``--port`` (0 = any); prints ``LISTENING <port>`` and serves
    until killed. The load generator (the native peer) does the counting.

``floor`` is no WebSocket at all: the same bytes echoed by an ``asyncio.BufferedProtocol``
(the native peer runs in ``--raw`` mode), the upper bound for any library on this loop.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import json
import os
import resource
import socket
import ssl
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Awaitable, Callable, Deque, List, Optional

REPO = Path(__file__).resolve().parent.parent
CERT = REPO / "tests" / "certs" / "cert.pem"
KEY = REPO / "tests" / "certs" / "key.pem"
LIBS = (
    "femtows", "femtows-loop", "femtows-cython", "picows", "femtows-ws", "picows-ws",
    "websockets", "aiohttp", "floor", "floor-afn", "femtows-sync", "websockets-sync",
    "uvicorn-femtows", "uvicorn-websockets-sansio", "uvicorn-wsproto", "floor-task",
    "floor-asgi",
)
# The websockets asyncio API and its re-implementations: the same program on each.
WEBSOCKETS_APIS = {
    "websockets": "websockets.asyncio",
    "femtows-ws": "femtows.websockets.asyncio",
    "picows-ws": "picows.websockets",
}

# The websockets threading API and its twin (client side only): blocking calls in threads.
SYNC_APIS = {
    "websockets-sync": "websockets.sync.client",
    "femtows-sync": "femtows.websockets.sync.client",
}

# A running client: a function returning (round trips so far, first error or None).
Progress = Callable[[], "tuple[int, Optional[str]]"]


def client_ssl_context() -> ssl.SSLContext:
    """Verifies the test certificate (issued for localhost and 127.0.0.1)."""
    return ssl.create_default_context(cafile=str(CERT))


def server_ssl_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(CERT), str(KEY))
    return ctx


def make_payload(size: int) -> bytes:
    """The same byte pattern for every library (content is irrelevant to the cost)."""
    return bytes((i * 131 + 7) & 0xFF for i in range(256)) * (size // 256) + bytes(size % 256)


def load_cython_module(path: Optional[str]) -> ModuleType:
    """Import the compiled bench/echo_cython.pyx (built by bench/build.py)."""
    if path is None:
        sys.path.insert(0, str(REPO))
        from bench.build import build_cython  # noqa: PLC0415 (standalone use only)

        path = str(build_cython())
    spec = importlib.util.spec_from_file_location("echo_cython", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def callback_listeners(ws: Any, message: bytes) -> tuple[type, type]:
    """Client and server listener classes for a picows-style callback API (femtows or picows)."""
    binary = ws.WSMsgType.BINARY
    close = ws.WSMsgType.CLOSE
    size = len(message)

    class EchoClient(ws.WSListener):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.count = 0
            self.error: Optional[str] = None

        def on_ws_connected(self, transport: Any) -> None:
            transport.send(binary, message)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type != binary or frame.payload_size != size:
                self.error = f"unexpected echo: {frame.msg_type!r}, {frame.payload_size} bytes"
                transport.disconnect()
                return
            self.count += 1
            transport.send(binary, message)

    class EchoServer(ws.WSListener):  # type: ignore[misc, name-defined]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == close:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            else:
                transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)

    return EchoClient, EchoServer


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class FloorClient(asyncio.BufferedProtocol):
    """Raw echo client: write the message, count bytes until all of it came back, repeat."""

    def __init__(self, message: bytes) -> None:
        self.message = message
        self.size = len(message)
        self.view = memoryview(bytearray(max(256 * 1024, self.size)))
        self.received = 0
        self.count = 0
        self.error: Optional[str] = None
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        set_nodelay(transport)
        transport.write(self.message)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        if self.received >= self.size:
            assert self.transport is not None
            if self.received != self.size:
                self.error = f"echo of {self.received} bytes for {self.size}"
                self.transport.abort()
                return
            self.received = 0
            self.count += 1
            self.transport.write(self.message)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.error is None:
            self.error = f"connection lost: {exc!r}"


class FloorServer(asyncio.BufferedProtocol):
    """Raw echo server: writes back each chunk straight from the receive buffer.

    All connections share one receive buffer (the echo is written before the next read), so
    an idle connection costs only what asyncio itself needs. Zero copy: if the transport could
    not send everything at once it may still reference the buffer, so the server then switches
    to a fresh one instead of overwriting it.
    """

    buffer_size = 256 * 1024
    view = memoryview(bytearray(0))  # shared; allocated by the first get_buffer

    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        set_nodelay(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        if not len(FloorServer.view):
            FloorServer.view = memoryview(bytearray(FloorServer.buffer_size))
        return FloorServer.view

    def buffer_updated(self, nbytes: int) -> None:
        assert self.transport is not None
        self.transport.write(FloorServer.view[:nbytes])
        if self.transport.get_write_buffer_size():
            FloorServer.view = memoryview(bytearray(0))


class HandshakeFloorServer(asyncio.Protocol):
    """Handshake floor: a server that does no WebSocket work at all (``--handshake-floor``).

    It answers the first request head with a fixed 101 (the accept value of the native
    client's fixed key, computed once here, not per connection), any later data that starts
    with a CLOSE frame with a CLOSE, then closes. Nothing is parsed or validated, so no real
    server on the same transports can cost less: the handshake table's lower bound.
    """

    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )

    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.head = b""
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        set_nodelay(transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if not self.upgraded:
            self.head += data
            if b"\r\n\r\n" in self.head:
                self.upgraded = True
                self.transport.write(self.response)
        elif data[:1] == b"\x88":
            self.transport.write(b"\x88\x02\x03\xe8")
            self.transport.close()


class TaskFloorServer(asyncio.Protocol):
    """Raw echo through one asyncio task per connection (``floor-task``, server only).

    ``data_received`` hands each chunk to the connection's task through a future; the task
    writes it back. This is the least any ASGI WebSocket server pays per message beyond the
    raw floor (an ASGI app is a coroutine that awaits ``receive()``), with no WebSocket or
    ASGI work at all: the uvicorn rows' lower bound, before the framework's own cost
    (bench/fastapi_cost.py).
    """

    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.waiter: Optional[asyncio.Future[bytes]] = None
        self.pending: Deque[bytes] = collections.deque()
        self.task: Optional[asyncio.Task[None]] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        set_nodelay(transport)
        self.task = asyncio.get_running_loop().create_task(self.echo())

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            waiter.set_result(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.task is not None:
            self.task.cancel()

    async def echo(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.pending:
                data = self.pending.popleft()
            else:
                self.waiter = loop.create_future()
                data = await self.waiter
            assert self.transport is not None
            self.transport.write(data)


class AsgiFloorServer(asyncio.Protocol):
    """The uvicorn rows' FastAPI app on raw TCP (``floor-asgi``, server only): each chunk
    received is one ``websocket.receive`` event, each ``websocket.send`` one write; no
    HTTP upgrade, no framing, no masking. What remains is the ASGI app's own per-message cost,
    its coroutine chain suspended and resumed once per message included: the least a uvicorn
    WebSocket implementation can cost. (Its receive/send are plain Python coroutines; a
    compiled implementation's can be a little cheaper.)
    """

    app: Any = None

    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.waiter: Optional[asyncio.Future[Any]] = None
        self.queue: Deque[Any] = collections.deque([{"type": "websocket.connect"}])
        self.task: Optional[asyncio.Task[None]] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        set_nodelay(transport)
        scope = {
            "type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "scheme": "ws", "path": "/", "raw_path": b"/",
            "root_path": "", "query_string": b"", "headers": [], "subprotocols": [],
            "client": transport.get_extra_info("peername"),
            "server": transport.get_extra_info("sockname"), "state": {},
        }
        self.task = asyncio.get_running_loop().create_task(
            self.app(scope, self.receive, self.send))

    def data_received(self, data: bytes) -> None:
        self.push({"type": "websocket.receive", "bytes": data})

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.push({"type": "websocket.disconnect", "code": 1006})

    def push(self, message: Any) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            waiter.set_result(message)
        else:
            self.queue.append(message)

    async def receive(self) -> Any:
        if self.queue:
            return self.queue.popleft()
        self.waiter = asyncio.get_running_loop().create_future()
        return await self.waiter

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.send":
            assert self.transport is not None
            self.transport.write(message["bytes"])


# ---------------------------------------------------------------------------------------------
# Clients: each opens the connections, starts the echo loops and returns a progress function.


async def start_callback_client(
    ws: Any, listener: Callable[[], Any], url: str, conns: int, tls: Optional[ssl.SSLContext],
    **kwargs: Any,
) -> Progress:
    if tls:
        kwargs["ssl_context"] = tls
    pairs = await asyncio.gather(*(ws.ws_connect(listener, url, **kwargs) for _ in range(conns)))
    listeners = [pair[1] for pair in pairs]

    def progress() -> tuple[int, Optional[str]]:
        errors = [lst.error for lst in listeners if lst.error]
        return sum(lst.count for lst in listeners), (errors[0] if errors else None)

    return progress


def task_progress(counter: List[int], tasks: List[asyncio.Task[None]]) -> Progress:
    def progress() -> tuple[int, Optional[str]]:
        for task in tasks:
            if task.done():
                exc = task.exception()
                return counter[0], f"echo loop ended: {exc!r}"
        return counter[0], None

    return progress


def websockets_api(lib: str, part: str) -> Any:
    """``connect`` (part "client") or ``serve`` ("server") of a websockets-style API."""
    base = WEBSOCKETS_APIS[lib]
    if lib == "picows-ws":  # picows.websockets exports both at the top level
        module = importlib.import_module(base)
    else:
        module = importlib.import_module(f"{base}.{part}")
    return module.connect if part == "client" else module.serve


async def start_websockets_client(
    message: bytes, url: str, conns: int, tls: Optional[ssl.SSLContext], lib: str = "websockets"
) -> Progress:
    connect = websockets_api(lib, "client")

    size = len(message)
    counter = [0]
    kwargs: dict[str, Any] = {"ssl": tls} if tls else {}
    sockets = await asyncio.gather(
        *(connect(url, compression=None, max_size=None, **kwargs) for _ in range(conns))
    )

    async def echo_loop(ws: Any) -> None:
        while True:
            await ws.send(message)
            reply = await ws.recv()
            if not isinstance(reply, bytes) or len(reply) != size:
                raise RuntimeError(f"unexpected echo: {type(reply).__name__}, {len(reply)}")
            counter[0] += 1

    return task_progress(counter, [asyncio.ensure_future(echo_loop(ws)) for ws in sockets])


def start_sync_client(
    message: bytes, url: str, conns: int, tls: Optional[ssl.SSLContext], lib: str
) -> Progress:
    """One thread per connection running the blocking echo loop (threading API)."""
    import threading

    connect = importlib.import_module(SYNC_APIS[lib]).connect
    size = len(message)
    counters = [0] * conns
    errors: List[str] = []
    kwargs: dict[str, Any] = {"ssl": tls} if tls else {}
    sockets = [
        connect(url, compression=None, max_size=None, legacy=True, **kwargs)
        for _ in range(conns)
    ]

    def echo_loop(index: int, ws: Any) -> None:
        try:
            while True:
                ws.send(message)
                reply = ws.recv()
                if not isinstance(reply, bytes) or len(reply) != size:
                    raise RuntimeError(f"unexpected echo: {type(reply).__name__}, {len(reply)}")
                counters[index] += 1
        except Exception as exc:  # reported through progress()
            errors.append(repr(exc))

    for index, ws in enumerate(sockets):
        threading.Thread(target=echo_loop, args=(index, ws), daemon=True).start()

    def progress() -> tuple[int, Optional[str]]:
        return sum(counters), (errors[0] if errors else None)

    return progress


async def start_aiohttp_client(
    message: bytes, url: str, conns: int, tls: Optional[ssl.SSLContext]
) -> Progress:
    import aiohttp

    size = len(message)
    counter = [0]
    session = aiohttp.ClientSession()
    sockets = await asyncio.gather(
        *(
            session.ws_connect(url, ssl=tls if tls else False, max_msg_size=0, compress=0)
            for _ in range(conns)
        )
    )

    async def echo_loop(ws: Any) -> None:
        while True:
            await ws.send_bytes(message)
            reply = await ws.receive()
            if reply.type != aiohttp.WSMsgType.BINARY or len(reply.data) != size:
                raise RuntimeError(f"unexpected echo: {reply.type!r}")
            counter[0] += 1

    return task_progress(counter, [asyncio.ensure_future(echo_loop(ws)) for ws in sockets])


async def start_floor_client(
    message: bytes, port: int, conns: int, tls: Optional[ssl.SSLContext], afn: bool = False
) -> Progress:
    loop = asyncio.get_running_loop()
    protocols: List[FloorClient] = []
    for _ in range(conns):
        if afn:
            import aiofastnet

            _, proto = await aiofastnet.create_connection(
                loop, lambda: FloorClient(message), "127.0.0.1", port, ssl=tls
            )
        else:
            _, proto = await loop.create_connection(
                lambda: FloorClient(message), "127.0.0.1", port, ssl=tls
            )
        protocols.append(proto)

    def progress() -> tuple[int, Optional[str]]:
        errors = [p.error for p in protocols if p.error]
        return sum(p.count for p in protocols), (errors[0] if errors else None)

    return progress


async def start_client(args: argparse.Namespace) -> Progress:
    message = make_payload(args.size)
    tls = client_ssl_context() if args.tls else None
    url = f"{'wss' if args.tls else 'ws'}://127.0.0.1:{args.port}/"
    if args.lib == "femtows":
        import femtows

        client, _ = callback_listeners(femtows, message)
        return await start_callback_client(femtows, client, url, args.conns, tls)
    if args.lib == "femtows-loop":
        import femtows

        client, _ = callback_listeners(femtows, message)
        return await start_callback_client(
            femtows, client, url, args.conns, tls, use_aiofastnet=False
        )
    if args.lib == "femtows-cython":
        import femtows

        module = load_cython_module(args.cython_so)
        return await start_callback_client(
            femtows, lambda: module.EchoClientListener(message), url, args.conns, tls
        )
    if args.lib == "picows":
        import picows

        client, _ = callback_listeners(picows, message)
        return await start_callback_client(picows, client, url, args.conns, tls)
    if args.lib in WEBSOCKETS_APIS:
        return await start_websockets_client(message, url, args.conns, tls, args.lib)
    if args.lib in SYNC_APIS:
        return start_sync_client(message, url, args.conns, tls, args.lib)
    if args.lib == "aiohttp":
        return await start_aiohttp_client(message, url, args.conns, tls)
    return await start_floor_client(
        message, args.port, args.conns, tls, afn=args.lib == "floor-afn"
    )


async def run_client(args: argparse.Namespace) -> None:
    progress = await start_client(args)
    await asyncio.sleep(args.warmup)
    count0, _ = progress()
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    print("START", flush=True)
    await asyncio.sleep(args.duration)
    count1, error = progress()
    t1 = time.perf_counter()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = t1 - t0
    count = count1 - count0
    result = {
        "lib": args.lib,
        "role": "client",
        "count": count,
        "elapsed": round(elapsed, 6),
        "rps": round(count / elapsed, 1),
        "cpu_user": round(ru1.ru_utime - ru0.ru_utime, 6),
        "cpu_sys": round(ru1.ru_stime - ru0.ru_stime, 6),
        "error": error if error else (None if count else "no round trips"),
    }
    print(json.dumps(result), flush=True)
    os._exit(0)  # no teardown: the next slice is a fresh process anyway


# ---------------------------------------------------------------------------------------------
# Servers


def fastapi_echo_app() -> Any:
    """The FastAPI echo app of the uvicorn rows (bench/uvicorn_app.py)."""
    if str(REPO) not in sys.path:  # run as a script: bench/ is on the path, not the repo
        sys.path.insert(0, str(REPO))
    from bench.uvicorn_app import app

    return app


async def start_uvicorn_server(impl: str, tls: Optional[ssl.SSLContext], backlog: int) -> int:
    """A FastAPI echo endpoint on uvicorn with the WebSocket implementation ``impl`` (femtows,
    websockets-sansio, wsproto); returns the port (bench/uvicorn_bench.py)."""
    import uvicorn

    app = fastapi_echo_app()

    ws: Any = impl
    if impl == "femtows":
        from femtows.uvicorn import FemtowsProtocol

        ws = FemtowsProtocol
    if tls is not None:
        raise SystemExit("the uvicorn rows run over TCP only")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    config = uvicorn.Config(app, ws=ws, ws_max_size=64 * 1024 * 1024, ws_ping_interval=None,
                            ws_per_message_deflate=False, lifespan="off", log_level="warning",
                            access_log=False)
    server = uvicorn.Server(config)
    asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    return int(sock.getsockname()[1])


async def start_server(args: argparse.Namespace) -> int:
    """Start the echo server; returns the bound port."""
    tls = server_ssl_context() if args.tls else None
    host = "127.0.0.1"
    backlog = 4096
    if args.lib.startswith("uvicorn-"):
        return await start_uvicorn_server(args.lib[len("uvicorn-"):], tls, backlog)
    if args.lib in ("femtows", "femtows-loop", "femtows-cython", "picows"):
        ws: Any
        if args.lib == "picows":
            import picows as ws
        else:
            import femtows as ws
        if args.lib == "femtows-cython":
            module = load_cython_module(args.cython_so)
            factory: Callable[[Any], Any] = lambda request: module.EchoServerListener()  # noqa: E731
        else:
            _, server_listener = callback_listeners(ws, b"")
            factory = lambda request: server_listener()  # noqa: E731
        extra: dict[str, Any] = {"use_aiofastnet": False} if args.lib == "femtows-loop" else {}
        server = await ws.ws_create_server(
            factory, host, args.port, ssl=tls, backlog=backlog, **extra
        )
        return int(server.sockets[0].getsockname()[1])
    if args.lib in WEBSOCKETS_APIS:
        serve = websockets_api(args.lib, "server")

        async def handler(ws: Any) -> None:
            async for message in ws:
                await ws.send(message)

        wserver = await serve(
            handler, host, args.port, ssl=tls, compression=None, max_size=None, backlog=backlog
        )
        return int(next(iter(wserver.sockets)).getsockname()[1])
    if args.lib == "aiohttp":
        from aiohttp import WSMsgType, web

        async def ahandler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(max_msg_size=0, compress=False)
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await ws.send_str(msg.data)
            return ws

        app = web.Application()
        app.router.add_get("/", ahandler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, args.port, ssl_context=tls, backlog=backlog)
        await site.start()
        return int(runner.addresses[0][1])
    loop = asyncio.get_running_loop()
    FloorServer.buffer_size = max(256 * 1024, args.size)
    floor: Callable[[], asyncio.BaseProtocol] = (
        HandshakeFloorServer if args.handshake_floor
        else TaskFloorServer if args.lib == "floor-task"
        else AsgiFloorServer if args.lib == "floor-asgi" else FloorServer
    )
    if args.lib == "floor-asgi":
        AsgiFloorServer.app = fastapi_echo_app()
    if args.lib == "floor-afn":
        import aiofastnet

        fserver = await aiofastnet.create_server(
            loop, floor, host, args.port, ssl=tls, backlog=backlog
        )
    else:
        fserver = await loop.create_server(floor, host, args.port, ssl=tls, backlog=backlog)
    return int(fserver.sockets[0].getsockname()[1])


async def run_server(args: argparse.Namespace) -> None:
    port = await start_server(args)
    print(f"LISTENING {port}", flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------------------------------------


def raise_nofile_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_on_loop(loop_name: str, main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main()`` on a fresh uvloop or asyncio event loop."""
    factory: Optional[Callable[[], asyncio.AbstractEventLoop]] = None
    if loop_name == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())  # type: ignore[arg-type]
    else:
        loop = factory()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", choices=LIBS, required=True)
    parser.add_argument("--role", choices=("client", "server"), required=True)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--tls", type=int, choices=(0, 1), default=0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--handshake-floor", action="store_true",
                        help="floor rows: serve handshakes, not echoes (HandshakeFloorServer)")
    parser.add_argument("--cython-so", help="compiled echo_cython module (default: build it)")
    parser.add_argument("--femtows-from", metavar="DIR",
                        help="import femtows from DIR (a checkout built in place with "
                        "`python setup.py build_ext --inplace`), not the installed one: "
                        "before/after comparisons in one run")
    return parser.parse_args(argv)


def import_femtows_from(directory: str) -> None:
    """Make ``import femtows`` load the package in ``directory``, ahead of an installed one
    (an editable install's import hook included), and check that it did."""
    if "femtows" in sys.modules:
        raise RuntimeError("femtows is already imported")
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
    sys.path.insert(0, os.path.abspath(directory))
    import femtows

    where = Path(femtows.__file__).resolve()
    if not where.is_relative_to(Path(directory).resolve()):
        raise RuntimeError(f"femtows came from {where}, not from {directory}")


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.femtows_from:
        import_femtows_from(args.femtows_from)
    raise_nofile_limit()
    if args.role == "client":
        run_on_loop(args.loop, lambda: run_client(args))
    else:
        run_on_loop(args.loop, lambda: run_server(args))


if __name__ == "__main__":
    main()
