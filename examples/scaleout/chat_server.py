"""Broadcast/chat service: N worker processes on one port, fanned out through Redis pub/sub.

    pip install 'femtows[scaleout]'        # femtows + the redis client (PyPI "redis")
    python scripts/redis/run.py serve      # or any Redis >= 5 you have; prints its URL
    python examples/scaleout/chat_server.py --workers 4 --port 8765 \\
        --redis redis://127.0.0.1:6379/0

Every worker listens on the same port with SO_REUSEPORT (the kernel spreads new connections
across them), subscribes to one Redis channel and publishes to it every TEXT message its
clients send, so a message sent to any worker reaches every client of every worker, and of
every machine that runs this with the same ``--redis`` and ``--channel``. Design, delivery
semantics, outage and slow-client policy: docs/scaling.md.

What a client sees (TEXT, JSON):

- on connect: ``{"type": "hello", "node": ..., "worker": 2, "pid": ..., "client": "host/2-17"}``
- each broadcast, including its own: ``{"type": "msg", "from": "host/2-17", "text": "..."}``;
  broadcasts that reach a worker together (under load) come as one TEXT message holding
  several such envelopes separated by ``\\n`` (JSON never contains a raw newline);
  ``--no-coalesce`` sends one TEXT message per broadcast;
- ``{"type": "error", "error": "broker unavailable: message not delivered"}`` when it sent a
  message while Redis was unreachable (that message was dropped, not queued);
- ``{"type": "notice", "event": "broker_down"}`` and ``{"type": "notice", "event":
  "broker_back", "down_s": 1.23}``: broadcasts published in between were not delivered here;
- CLOSE 1008 "slow consumer" when it reads so slowly that ``--max-client-buffer`` bytes are
  queued for it, 1003 for a BINARY message, 1009 for a message over ``--max-message``, 1007
  for invalid UTF-8, and 1001 when the server shuts down (SIGTERM/SIGINT).

Stdout: ``LISTENING <port> workers=<n>`` once every worker accepts connections; logs go to
stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

from femtows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - told to the user in main()
    aioredis = None  # type: ignore[assignment]
    RedisError = Exception  # type: ignore[assignment,misc]

log = logging.getLogger("scaleout")

TEXT = WSMsgType.TEXT
NOT_DELIVERED = json.dumps({"type": "error",
                            "error": "broker unavailable: message not delivered"}).encode()
BROKER_DOWN = json.dumps({"type": "notice", "event": "broker_down"}).encode()
BACKOFF_MIN, BACKOFF_MAX = 0.05, 2.0  # seconds between reconnection attempts (doubling, jitter)
PUBLISH_BATCH = 512  # PUBLISH commands per pipeline round trip
COALESCE_BYTES = 16 << 10  # broadcasts coalesced into one TEXT message, at most about this much


class ChatClient(WSListener):
    """One WebSocket client: publishes what it sends, receives every broadcast via the hub."""

    def __init__(self, hub: Hub, client_id: str) -> None:
        self.hub = hub
        self.client_id = client_id
        self.transport: Optional[WSTransport] = None
        self.parts: List[bytes] = []  # a fragmented message being reassembled
        self.parts_size = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        # The bounded per-connection queue: what the kernel's socket buffer cannot take waits
        # in the transport's buffer; past `high` bytes pause_writing() fires (policy below).
        # A fixed SO_SNDBUF keeps the kernel's share bounded too (autotuning lets it grow to
        # net.ipv4.tcp_wmem's maximum, 4 MiB by default, per connection).
        underlying = transport.underlying_transport
        underlying.set_write_buffer_limits(high=self.hub.max_client_buffer)
        sock = underlying.get_extra_info("socket")
        if self.hub.sndbuf and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.hub.sndbuf)
        transport.send(TEXT, json.dumps({
            "type": "hello", "node": self.hub.node, "worker": self.hub.worker_id,
            "pid": os.getpid(), "client": self.client_id}))
        self.hub.join(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.hub.leave(self)

    def pause_writing(self) -> None:
        # Slow-subscriber policy: disconnect, never skip. The client got every broadcast up to
        # the CLOSE in order, and knows from 1008 that it missed what came after.
        self.hub.kick_slow(self)

    def resume_writing(self) -> None:
        pass

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type == TEXT and frame.fin and not self.parts:
            self.hub.publish(self, frame.get_payload_as_utf8_text())  # core checked the UTF-8
        elif msg_type == TEXT or (msg_type == WSMsgType.CONTINUATION and self.parts):
            self.parts_size += frame.payload_size
            if self.parts_size > self.hub.max_message:
                self.fail(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
                return
            self.parts.append(frame.get_payload_as_bytes())
            if frame.fin:
                data, self.parts, self.parts_size = b"".join(self.parts), [], 0
                try:
                    text = data.decode()
                except UnicodeDecodeError:
                    self.fail(WSCloseCode.INVALID_TEXT, "invalid UTF-8")
                    return
                self.hub.publish(self, text)
        elif msg_type == WSMsgType.BINARY:
            self.fail(WSCloseCode.UNSUPPORTED_DATA, "text messages only")
        elif msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        # PING is answered by the core (auto pong); PONG and stray CONTINUATION are ignored.

    def fail(self, code: WSCloseCode, reason: str) -> None:
        assert self.transport is not None
        self.hub.leave(self)
        self.transport.send_close(code, reason.encode())
        self.transport.disconnect()


class Hub:
    """One worker's clients and its link to Redis (one subscriber and one publisher socket)."""

    def __init__(self, args: argparse.Namespace, worker_id: int) -> None:
        self.worker_id = worker_id
        self.node: str = args.node
        self.redis_url: str = args.redis
        self.channel: str = args.channel
        self.max_client_buffer: int = args.max_client_buffer
        self.sndbuf: int = args.sndbuf
        self.max_message: int = args.max_message
        self.max_pending: int = args.max_pending
        self.clients: Set[ChatClient] = set()
        self._targets: Optional[Tuple[WSTransport, ...]] = ()  # None: rebuild from clients
        self._next_id = 0
        self.pending: Deque[bytes] = collections.deque()  # envelopes waiting to be PUBLISHed
        self._pending_event = asyncio.Event()
        self._paused_readers: Set[ChatClient] = set()
        self.broker_up = False
        self.subscribed = asyncio.Event()  # set at the first successful subscription
        self.down_since: Optional[float] = None
        self.unpublished = 0  # local messages that could not be published in this outage
        self.slow_kicked = 0
        self.coalesce: bool = args.coalesce
        self._batch: List[bytes] = []
        self._batch_bytes = 0
        self._flush_scheduled = False
        self.broadcasts = 0  # received from Redis (when coalescing) ...
        self.frames = 0  # ... and the TEXT messages they went out in
        self.stopping = False

    # -- clients ----------------------------------------------------------------------------

    def new_client(self, request: WSUpgradeRequest) -> WSListener:
        self._next_id += 1
        return ChatClient(self, f"{self.node}/{self.worker_id}-{self._next_id}")

    def join(self, client: ChatClient) -> None:
        if self.stopping:
            client.fail(WSCloseCode.GOING_AWAY, "server shutting down")
            return
        self.clients.add(client)
        self._targets = None
        if not self.broker_up and client.transport is not None:
            client.transport.send(TEXT, BROKER_DOWN)

    def leave(self, client: ChatClient) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self._targets = None
        self._paused_readers.discard(client)

    def kick_slow(self, client: ChatClient) -> None:
        if client not in self.clients:
            return
        self.leave(client)
        self.slow_kicked += 1
        log.warning("worker %d: client %s reads too slowly (over %d bytes queued): closing "
                    "with 1008", self.worker_id, client.client_id, self.max_client_buffer)
        # Not from inside the write that called pause_writing(): on the next loop iteration.
        asyncio.get_running_loop().call_soon(client.fail, WSCloseCode.POLICY_VIOLATION,
                                             "slow consumer")

    # -- the hot paths ------------------------------------------------------------------------

    def on_broadcast(self, envelope: bytes) -> None:
        """A broadcast from Redis. Coalesced with the others Redis already delivered with it:
        they go out after the relay has parsed everything buffered, as one TEXT message of
        newline-separated envelopes (one frame and one syscall per client for the lot)."""
        if not self.coalesce:
            self.fanout(envelope)
            return
        self._batch.append(envelope)
        self._batch_bytes += len(envelope)
        if self._batch_bytes >= COALESCE_BYTES:
            self.flush_batch()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush_batch)

    def flush_batch(self) -> None:
        self._flush_scheduled = False
        batch = self._batch
        if batch:
            self._batch, self._batch_bytes = [], 0
            self.fanout(batch[0] if len(batch) == 1 else b"\n".join(batch))
            self.broadcasts += len(batch)
            self.frames += 1

    def fanout(self, envelope: bytes) -> None:
        """One TEXT message to every local client: one send() each, no task, no copy."""
        targets = self._targets
        if targets is None:
            targets = self._targets = tuple(c.transport for c in self.clients
                                            if c.transport is not None)
        for transport in targets:
            transport.send(TEXT, envelope)

    def publish(self, client: ChatClient, text: str) -> None:
        """Queue a client's message for PUBLISH; refuse it at once while Redis is down."""
        transport = client.transport
        assert transport is not None
        if not self.broker_up:
            self.unpublished += 1
            transport.send(TEXT, NOT_DELIVERED)
            return
        self.pending.append(json.dumps(
            {"type": "msg", "from": client.client_id, "text": text}).encode())
        self._pending_event.set()
        if len(self.pending) >= self.max_pending and client not in self._paused_readers:
            # Redis is slower than our clients: stop reading from the ones that send.
            transport.underlying_transport.pause_reading()
            self._paused_readers.add(client)

    def _resume_readers(self) -> None:
        for client in self._paused_readers:
            if client.transport is not None and not client.transport.is_disconnected:
                client.transport.underlying_transport.resume_reading()
        self._paused_readers.clear()

    # -- Redis --------------------------------------------------------------------------------

    async def run_broker(self) -> None:
        """Connect, subscribe, relay; on any failure log, back off, reconnect, re-subscribe."""
        assert aioredis is not None
        backoff = BACKOFF_MIN
        while not self.stopping:
            # retries=0: redis-py would otherwise reconnect and re-subscribe behind our back,
            # and an outage would go unnoticed (and unlogged) here.
            client = aioredis.Redis.from_url(
                self.redis_url, socket_connect_timeout=2, socket_keepalive=True,
                socket_keepalive_options=_keepalive_options(), retry=Retry(NoBackoff(), 0))
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                # Wait for the confirmation: only then are we sure to get what others publish.
                while True:
                    reply = await pubsub.get_message(timeout=2)
                    if reply is None:
                        raise asyncio.TimeoutError("no confirmation of SUBSCRIBE within 2 s")
                    if reply["type"] == "subscribe":
                        break
                await client.ping()  # the publisher connection works too
                self._up()
                backoff = BACKOFF_MIN
                await _first_failure(self._relay(pubsub), self._publisher(client))
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                self._down(exc)
            finally:
                await _close_quietly(pubsub, client, unsubscribe=self.stopping)
            if self.stopping:
                return
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _relay(self, pubsub: Any) -> None:
        on_broadcast = self.on_broadcast
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "message":
                on_broadcast(message["data"])

    async def _publisher(self, client: Any) -> None:
        while True:
            await self._pending_event.wait()
            self._pending_event.clear()
            while self.pending:
                n = min(len(self.pending), PUBLISH_BATCH)
                batch = [self.pending.popleft() for _ in range(n)]
                try:
                    pipe = client.pipeline(transaction=False)
                    for envelope in batch:
                        pipe.publish(self.channel, envelope)
                    await pipe.execute()
                except BaseException:
                    self.unpublished += len(batch)  # maybe published, maybe not: counted lost
                    raise
                if len(self.pending) < self.max_pending // 2:
                    self._resume_readers()

    def _up(self) -> None:
        self.broker_up = True
        self.subscribed.set()
        if self.down_since is None:
            log.info("worker %d: subscribed to %r on %s", self.worker_id, self.channel,
                     self.redis_url)
            return
        down_s = time.monotonic() - self.down_since
        log.warning(
            "worker %d: redis back, re-subscribed to %r; redis was unavailable for %.2f s; "
            "messages published meanwhile were not delivered to this worker's %d clients; "
            "%d messages from this worker's clients could not be published",
            self.worker_id, self.channel, down_s, len(self.clients), self.unpublished)
        self.down_since = None
        self.unpublished = 0
        self.flush_batch()
        self.fanout(json.dumps({"type": "notice", "event": "broker_back",
                                "down_s": round(down_s, 3)}).encode())

    def _down(self, exc: BaseException) -> None:
        was_up, self.broker_up = self.broker_up, False
        self.unpublished += len(self.pending)
        self.pending.clear()
        self._resume_readers()
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("worker %d: redis unavailable (%s: %s); reconnecting with backoff up "
                        "to %.1f s", self.worker_id, type(exc).__name__, exc, BACKOFF_MAX)
        if was_up:
            self.flush_batch()
            self.fanout(BROKER_DOWN)

    async def flush(self, timeout: float) -> None:
        """Give queued messages up to ``timeout`` seconds to reach Redis (at shutdown)."""
        deadline = time.monotonic() + timeout
        while self.pending and self.broker_up and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


def _keepalive_options() -> Dict[int, int]:
    # A Redis that vanishes without closing the connection (host down, partition) is noticed
    # after about 5 + 3 * 2 s of silence, not after the kernel's default two hours.
    options = {}
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            options[getattr(socket, name)] = value
    return options


async def _first_failure(*coros: Any) -> None:
    """Run the coroutines until the first one raises; cancel the others; re-raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _close_quietly(pubsub: Any, client: Any, unsubscribe: bool) -> None:
    try:
        if unsubscribe:
            await asyncio.wait_for(pubsub.unsubscribe(), 1)
        await pubsub.aclose()
        await client.aclose()
    except (RedisError, OSError, asyncio.TimeoutError):
        pass


# ------------------------------------------------------------------------------------------------
# One worker process


async def run_worker(args: argparse.Namespace, worker_id: int) -> None:
    loop = asyncio.get_running_loop()
    hub = Hub(args, worker_id)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Our stdin is a pipe from the supervisor: EOF means it is gone (even SIGKILLed).
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        if not os.read(stdin, 512):
            loop.remove_reader(stdin)
            stop.set()

    loop.add_reader(stdin, on_stdin)
    server = await ws_create_server(hub.new_client, args.host, args.port, reuse_port=True,
                                    max_frame_size=args.max_message,
                                    close_timeout=args.close_timeout)
    broker = asyncio.ensure_future(hub.run_broker())
    # Ready once subscribed, so that a client connected after LISTENING gets every broadcast;
    # a Redis still down after 10 s does not keep us from serving (clients are told).
    try:
        await asyncio.wait_for(hub.subscribed.wait(), 10)
    except asyncio.TimeoutError:
        log.warning("worker %d: serving without redis for now", worker_id)
    print(f"WORKER {worker_id} READY", flush=True)
    await stop.wait()

    # Graceful shutdown: stop accepting, send what clients already sent, unsubscribe, close
    # every client with 1001, wait (bounded) for their closing handshakes, exit.
    server.close()
    hub.stopping = True
    await hub.flush(1.0)
    broker.cancel()
    await asyncio.gather(broker, return_exceptions=True)
    clients = [c.transport for c in hub.clients if c.transport is not None]
    for transport in clients:
        transport.send_close(WSCloseCode.GOING_AWAY, b"server shutting down")
    if clients:
        await asyncio.wait([asyncio.ensure_future(t.wait_disconnected()) for t in clients],
                           timeout=args.close_timeout)
    log.info("worker %d: shut down, %d clients closed with 1001, %d slow clients were "
             "disconnected during the run, %d broadcasts went out in %d TEXT messages",
             worker_id, len(clients), hub.slow_kicked, hub.broadcasts, hub.frames)


# ------------------------------------------------------------------------------------------------
# The supervisor: picks the port, starts N workers, forwards SIGTERM, exits when they have


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (not listen) with SO_REUSEPORT, so port 0 becomes one port all workers share."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def supervise(args: argparse.Namespace) -> int:
    reserved = reserve_port(args.host, args.port)
    port = reserved.getsockname()[1]
    argv = [sys.executable, os.path.abspath(__file__), "--host", args.host, "--port", str(port),
            "--redis", args.redis, "--channel", args.channel, "--node", args.node,
            "--max-client-buffer", str(args.max_client_buffer), "--sndbuf", str(args.sndbuf),
            "--max-message", str(args.max_message), "--max-pending", str(args.max_pending),
            "--close-timeout", str(args.close_timeout),
            "--loop", args.loop, *([] if args.coalesce else ["--no-coalesce"]),
            *(["--verbose"] if args.verbose else [])]
    workers: Dict[int, subprocess.Popen[str]] = {}
    stopping = False

    def stop_all(signum: int = signal.SIGTERM, frame: Any = None) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        # Workers that have not exited by then get SIGKILL.
        signal.alarm(int(args.close_timeout) + 10)

    def kill_all(signum: int, frame: Any) -> None:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGALRM, kill_all)
    for i in range(args.workers):
        # stdin: a pipe we never write to; the worker stops when it closes (we died).
        workers[i] = subprocess.Popen([*argv, "--worker-id", str(i)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
    for i, proc in workers.items():
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != f"WORKER {i} READY":
            log.error("worker %d did not start", i)
            stop_all()
            break
    else:
        reserved.close()
        print(f"LISTENING {port} workers={args.workers}", flush=True)
    status = 0
    while any(proc.poll() is None for proc in workers.values()):
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        for i, proc in workers.items():
            if proc.pid == pid:
                proc.returncode = os.waitstatus_to_exitcode(code)
                if not stopping:
                    log.error("worker %d exited unexpectedly (%s): stopping the others", i,
                              proc.returncode)
                    status = 1
                    stop_all()
    signal.alarm(0)
    return status


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0: a free port")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL")
    parser.add_argument("--channel", default="femtows:chat", help="the pub/sub channel")
    parser.add_argument("--node", default=socket.gethostname(),
                        help="this machine's name in client ids (default: hostname)")
    parser.add_argument("--max-client-buffer", type=int, default=1 << 20,
                        help="bytes queued for one client before it is closed as slow (1008)")
    parser.add_argument("--sndbuf", type=int, default=256 << 10,
                        help="SO_SNDBUF of client sockets (the kernel doubles it); 0: autotuned")
    parser.add_argument("--close-timeout", type=float, default=5,
                        help="seconds a closed client (slow, or at shutdown) gets to receive "
                             "what is queued for it and the CLOSE before the connection is "
                             "aborted")
    parser.add_argument("--max-message", type=int, default=64 << 10,
                        help="largest client message in bytes (1009 above)")
    parser.add_argument("--max-pending", type=int, default=10_000,
                        help="messages waiting for PUBLISH before senders stop being read")
    parser.add_argument("--no-coalesce", dest="coalesce", action="store_false",
                        help="one TEXT message per broadcast, even when Redis delivered many "
                             "at once")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--verbose", action="store_true", help="femtows's per-connection logs")
    parser.add_argument("--worker-id", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.verbose:  # one INFO line per connection is too many at thousands of clients
        logging.getLogger("femtows").setLevel(logging.WARNING)
    if aioredis is None:
        print("this example needs the redis client: pip install 'femtows[scaleout]' "
              "(or: pip install redis)", file=sys.stderr)
        return 2
    if args.worker_id is None:
        return supervise(args)
    if args.loop == "uvloop":
        import uvloop
        uvloop.install()
    asyncio.run(run_worker(args, args.worker_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
