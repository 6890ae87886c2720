"""examples/scaleout/chat_server.py against a real redis-server (scripts/redis/run.py).

Every test starts the example as a separate process tree (a supervisor and N SO_REUSEPORT
workers) and talks to it with femtows clients, so the example cannot rot. redis-server is
installed by scripts/redis/run.py when missing (apt-get, bounded) and started on 127.0.0.1 on
a free port for each test. The tests are plain functions running their own event loop: the
server under test is a separate process, so the loop x transport matrix of conftest.py would
only run the same scenario four times.

Recovery times are printed (pytest -s shows them), never asserted: waits are on events (a
notice, a message, a CLOSE), bounded by ``SCENARIO_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Coroutine, Iterator, Optional

import pytest

from femtows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

REPO = Path(__file__).resolve().parents[1]
RUN_SCRIPT = REPO / "scripts" / "redis" / "run.py"
CHAT_SERVER = REPO / "examples" / "scaleout" / "chat_server.py"
LOADGEN = REPO / "examples" / "scaleout" / "loadgen.py"
START_TIMEOUT = 240.0  # apt-get install redis-server on a fresh machine
SERVER_START_TIMEOUT = 60.0  # the supervisor and its workers import femtows and redis
SCENARIO_TIMEOUT = 60.0
WORKERS = 4


def _readline(stream: Any, timeout: float, what: str) -> str:
    """One line from a child's pipe, or a test failure after ``timeout`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            pytest.fail(f"{what}: no output within {timeout:.0f}s", pytrace=False)
    line: str = stream.readline()
    return line


class RedisService:
    """``scripts/redis/run.py serve`` in a child process: stop()/kill()/start() make outages."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(RUN_SCRIPT), "serve"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        info = self._answer(START_TIMEOUT)
        self.port = int(info["port"])
        self.url = str(info["url"])

    def _answer(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = _readline(self.proc.stdout, timeout, "scripts/redis/run.py")
        if not line:
            self.proc.wait()
            pytest.fail(f"redis-server could not be started: {self.proc.stderr.read()}",
                        pytrace=False)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def command(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer(30)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # run.py stops redis-server and removes its directory
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def redis_service() -> Iterator[RedisService]:
    """A real redis-server on 127.0.0.1 for one test (restartable on the same port)."""
    service = RedisService()
    try:
        yield service
    finally:
        service.close()


class ChatService:
    """The example running as a supervisor with ``workers`` worker processes."""

    def __init__(self, redis_url: str, log_path: Path, workers: int, *extra: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - the child writes to it until close()
        self.proc = subprocess.Popen(
            [sys.executable, str(CHAT_SERVER), "--workers", str(workers), "--port", "0",
             "--redis", redis_url, *extra],
            stdout=subprocess.PIPE, stderr=self._log, text=True)
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, SERVER_START_TIMEOUT, "chat_server.py")
        assert line.startswith("LISTENING "), (line, self.log())
        self.port = int(line.split()[1])
        self.url = f"ws://127.0.0.1:{self.port}/"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # its workers see their stdin close and shut down
                self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._log.close()


@pytest.fixture
def chat_factory(tmp_path: Path) -> Iterator[Callable[..., ChatService]]:
    started: list[ChatService] = []

    def start(redis_url: str, workers: int = WORKERS, *extra: str) -> ChatService:
        service = ChatService(redis_url, tmp_path / f"chat{len(started)}.log", workers, *extra)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()


class Client(WSListener):
    """A chat client that records the JSON messages it receives and wakes waiters."""

    def __init__(self) -> None:
        self.transport: Optional[WSTransport] = None
        self.hello: dict[str, Any] = {}
        self.msgs: list[tuple[str, str]] = []  # (from, text) of every broadcast, in order
        self.notices: list[str] = []
        self.errors: list[str] = []
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.frames = 0
        self.changed = asyncio.Event()
        self.gone = asyncio.Event()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.frames += 1
            # Broadcasts that reached the worker together come in one message, one per line.
            for line in frame.get_payload_as_utf8_text().split("\n"):
                message = json.loads(line)
                kind = message["type"]
                if kind == "hello":
                    self.hello = message
                elif kind == "msg":
                    self.msgs.append((message["from"], message["text"]))
                elif kind == "notice":
                    self.notices.append(message["event"])
                elif kind == "error":
                    self.errors.append(message["error"])
        elif frame.msg_type == WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            self.close_reason = (frame.get_close_message() or b"").decode()
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        self.changed.set()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.gone.set()
        self.changed.set()

    @property
    def worker(self) -> int:
        return int(self.hello["worker"])

    def send(self, text: str) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, text)

    async def wait_until(self, predicate: Callable[[Client], bool]) -> None:
        while not predicate(self):
            self.changed.clear()
            await self.changed.wait()


def has_msgs(count: int) -> Callable[[Client], bool]:
    return lambda client: len(client.msgs) == count


async def connect(url: str) -> Client:
    _, client = await ws_connect(Client, url)
    assert isinstance(client, Client)
    await client.wait_until(lambda c: bool(c.hello))
    return client


async def connect_spread(url: str, per_worker: int, workers: int = WORKERS,
                         limit: int = 96) -> list[Client]:
    """Connect until every worker has ``per_worker`` clients (SO_REUSEPORT hashes the
    connection's addresses, so the spread is random); at most ``limit`` connections."""
    clients: list[Client] = []
    while len(clients) < limit:
        counts = Counter(c.worker for c in clients)
        if len(counts) == workers and min(counts.values()) >= per_worker:
            break
        clients.append(await connect(url))
    counts = Counter(c.worker for c in clients)
    assert sorted(counts) == list(range(workers)), counts
    return clients


class Stage:
    """The scenario's current step, for the failure message of a timeout."""

    name = "start"


def run(scenario: Coroutine[Any, Any, None], chat: Optional[ChatService] = None) -> None:
    Stage.name = "start"
    try:
        asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT))
    except asyncio.TimeoutError:
        log = chat.log()[-4000:] if chat is not None else ""
        pytest.fail(f"timed out at stage {Stage.name!r}; server log:\n{log}", pytrace=False)


async def close_all(clients: list[Client]) -> None:
    for client in clients:
        if client.transport is not None and not client.transport.is_disconnected:
            client.transport.send_close(1000)
    await asyncio.gather(*(c.gone.wait() for c in clients))


def test_redis_script_restarts_on_the_same_port(redis_service: RedisService) -> None:
    redis = pytest.importorskip("redis")
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    client = redis.Redis(port=redis_service.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    assert client.ping()
    assert redis_service.command("stop") == {"event": "stopped"}
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert redis_service.command("start")["port"] == redis_service.port
    assert client.ping()
    client.close()


def test_broadcast_reaches_every_client_on_every_worker_once_in_order(
        redis_service: RedisService, chat_factory: Callable[..., ChatService]) -> None:
    chat = chat_factory(redis_service.url)
    per_publisher = 50

    async def scenario() -> None:
        clients = await connect_spread(chat.url, per_worker=2)
        publishers = [next(c for c in clients if c.worker == w) for w in range(WORKERS)]
        # Every publisher sends all its messages at once: they interleave in Redis.
        for seq in range(per_publisher):
            for publisher in publishers:
                publisher.send(f"{publisher.hello['client']} {seq}")
        total = per_publisher * len(publishers)
        await asyncio.gather(*(c.wait_until(lambda c: len(c.msgs) >= total)
                               for c in clients))
        reference = clients[0].msgs
        for client in clients:
            assert len(client.msgs) == total  # nothing twice
            for publisher in publishers:
                me = publisher.hello["client"]
                seqs = [int(text.split()[1]) for sender, text in client.msgs if sender == me]
                assert seqs == list(range(per_publisher)), (client.hello, me)  # in order
            # One channel on one Redis: every client sees the same global order.
            assert client.msgs == reference
        await close_all(clients)

    run(scenario(), chat)
    assert chat.terminate() == 0


def test_two_deployments_on_one_redis_act_as_one_service(
        redis_service: RedisService, chat_factory: Callable[..., ChatService]) -> None:
    # Two supervisors with their own ports and --node names stand for two machines.
    machine_a = chat_factory(redis_service.url, 2, "--node", "a")
    machine_b = chat_factory(redis_service.url, 2, "--node", "b")

    async def scenario() -> None:
        on_a = await connect_spread(machine_a.url, per_worker=1, workers=2)
        on_b = await connect_spread(machine_b.url, per_worker=1, workers=2)
        assert {c.hello["node"] for c in on_a} == {"a"} and {c.hello["node"] for c in on_b} == {"b"}
        on_a[0].send("from a")
        on_b[0].send("from b")
        everyone = on_a + on_b
        await asyncio.gather(*(c.wait_until(has_msgs(2)) for c in everyone))
        for client in everyone:
            assert sorted(client.msgs) == sorted([(on_a[0].hello["client"], "from a"),
                                                  (on_b[0].hello["client"], "from b")])
            assert client.msgs == everyone[0].msgs  # one global order across machines
        await close_all(everyone)

    run(scenario(), machine_a)
    assert machine_a.terminate() == 0 and machine_b.terminate() == 0


@pytest.mark.parametrize("outage", ["stop", "kill"])
def test_redis_restart_mid_test_recovers_and_logs_what_was_lost(
        redis_service: RedisService, chat_factory: Callable[..., ChatService],
        outage: str) -> None:
    chat = chat_factory(redis_service.url)

    async def scenario() -> None:
        clients = await connect_spread(chat.url, per_worker=1)
        Stage.name = "broadcast before outage"
        clients[0].send("before")
        await asyncio.gather(*(c.wait_until(lambda c: len(c.msgs) == 1) for c in clients))

        Stage.name = "outage"
        t_down = time.monotonic()
        assert redis_service.command(outage) == {"event": "stopped"}
        await asyncio.gather(*(c.wait_until(lambda c: "broker_down" in c.notices)
                               for c in clients))
        print(f"\n[{outage}] every worker noticed the outage after "
              f"{time.monotonic() - t_down:.3f} s")
        Stage.name = "send during outage"
        sender = clients[-1]
        for i in range(3):  # refused at once, not queued: the sender is told
            sender.send(f"during outage {i}")
        await sender.wait_until(lambda c: len(c.errors) == 3)

        Stage.name = "restart"
        assert redis_service.command("start")["port"] == redis_service.port
        t_up = time.monotonic()
        await asyncio.gather(*(c.wait_until(lambda c: "broker_back" in c.notices)
                               for c in clients))
        resubscribed = time.monotonic() - t_up
        Stage.name = "broadcast after restart"
        clients[1].send("after")
        await asyncio.gather(*(c.wait_until(lambda c: len(c.msgs) == 2) for c in clients))
        recovered = time.monotonic() - t_up
        print(f"[{outage}] after redis-server was back: every worker re-subscribed in "
              f"{resubscribed:.3f} s, a broadcast reached all {len(clients)} clients in "
              f"{recovered:.3f} s (bound: the reconnection backoff, at most 2 s)")
        for client in clients:
            assert [text for _, text in client.msgs] == ["before", "after"]
            assert client.notices == ["broker_down", "broker_back"]
        assert sender.errors == ["broker unavailable: message not delivered"] * 3

        log = chat.log()
        back = re.findall(r"worker (\d+): redis back, re-subscribed to 'femtows:chat'; redis "
                          r"was unavailable for [\d.]+ s; messages published meanwhile were "
                          r"not delivered to this worker's (\d+) clients; (\d+) messages from "
                          r"this worker's clients could not be published", log)
        assert sorted(int(w) for w, _, _ in back) == list(range(WORKERS)), log
        unpublished = {int(w): int(n) for w, _, n in back}
        assert unpublished[sender.worker] == 3
        assert sum(unpublished.values()) == 3
        per_worker = Counter(c.worker for c in clients)
        assert {int(w): int(n) for w, n, _ in back} == dict(per_worker)
        assert log.count("redis unavailable (") == WORKERS
        await close_all(clients)

    run(scenario(), chat)
    assert chat.terminate() == 0


def test_sigterm_closes_clients_with_1001_and_unsubscribes(
        redis_service: RedisService, chat_factory: Callable[..., ChatService]) -> None:
    redis = pytest.importorskip("redis")
    chat = chat_factory(redis_service.url)
    channel_subscribers = redis.Redis(port=redis_service.port, socket_timeout=5)

    async def scenario() -> None:
        clients = await connect_spread(chat.url, per_worker=1)
        assert channel_subscribers.pubsub_numsub("femtows:chat") == [(b"femtows:chat", WORKERS)]
        chat.proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*(c.gone.wait() for c in clients))
        for client in clients:
            assert (client.close_code, client.close_reason) == (1001, "server shutting down")
        assert await asyncio.get_running_loop().run_in_executor(None, chat.proc.wait, 30) == 0
        assert channel_subscribers.pubsub_numsub("femtows:chat") == [(b"femtows:chat", 0)]
        closed = [int(n) for n in re.findall(r"shut down, (\d+) clients closed with 1001",
                                             chat.log())]
        assert sum(closed) == len(clients) and len(closed) == WORKERS

    run(scenario(), chat)
    channel_subscribers.close()


def test_slow_subscriber_is_closed_with_1008_after_an_in_order_prefix(
        redis_service: RedisService, chat_factory: Callable[..., ChatService]) -> None:
    # One worker, a 64 KiB per-connection queue. The slow client stops reading; ~12 MiB of
    # broadcasts (far over any kernel socket buffers plus the queue) go to it meanwhile.
    # --close-timeout 60: the slow client resumes reading only after the whole run; the
    # default 5 s could abort its connection first under load (then it would see no 1008).
    chat = chat_factory(redis_service.url, 1, "--max-client-buffer", str(64 << 10),
                        "--close-timeout", "60")
    count, pad = 400, "x" * (30 << 10)

    async def scenario() -> None:
        slow, fast = await connect(chat.url), await connect(chat.url)
        assert slow.transport is not None
        slow.transport.underlying_transport.pause_reading()
        for seq in range(count):  # paced by the fast client, so Redis is never the bottleneck
            fast.send(f"{seq} {pad}")
            await fast.wait_until(has_msgs(seq + 1))
        assert fast.close_code is None
        slow.transport.underlying_transport.resume_reading()
        await slow.gone.wait()
        assert (slow.close_code, slow.close_reason) == (1008, "slow consumer")
        got = [int(text.split()[0]) for _, text in slow.msgs]
        assert got == list(range(len(got))) and len(got) < count  # a prefix, no gap
        assert "reads too slowly" in chat.log()
        await close_all([fast])

    run(scenario(), chat)
    assert chat.terminate() == 0


def test_binary_and_oversized_messages_are_refused(
        redis_service: RedisService, chat_factory: Callable[..., ChatService]) -> None:
    chat = chat_factory(redis_service.url, 1, "--max-message", "1000")

    async def scenario() -> None:
        binary, big, fragmented = [await connect(chat.url) for _ in range(3)]
        assert binary.transport and big.transport and fragmented.transport
        binary.transport.send(WSMsgType.BINARY, b"\x00")
        big.send("x" * 1001)
        fragmented.transport.send(WSMsgType.TEXT, "x" * 600, fin=False)
        fragmented.transport.send(WSMsgType.CONTINUATION, "x" * 600, fin=True)
        await asyncio.gather(binary.gone.wait(), big.gone.wait(), fragmented.gone.wait())
        assert binary.close_code == 1003
        assert big.close_code == 1009
        assert fragmented.close_code == 1009

    run(scenario(), chat)


def test_loadgen_smoke(redis_service: RedisService,
                       chat_factory: Callable[..., ChatService]) -> None:
    # The documented load run (docs/scaling.md), tiny: it must run end to end and count right.
    chat = chat_factory(redis_service.url, 2)
    out = subprocess.run(
        [sys.executable, str(LOADGEN), "--url", chat.url, "--clients", "20", "--rate", "100",
         "--duration", "1", "--procs", "2"],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    print(out.stdout)
    assert "published 100 messages" in out.stdout, out.stdout
    assert "delivered 2,000 (" in out.stdout and "missing 0 " in out.stdout, out.stdout
    assert "RSS per worker" in out.stdout


def load_chat_server() -> Any:
    """examples/scaleout/chat_server.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("scaleout_chat_server", CHAT_SERVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, msg_type: WSMsgType, message: bytes) -> None:
        assert msg_type == WSMsgType.TEXT
        self.sent.append(bytes(message))


class FakeClient:
    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport


@pytest.mark.parametrize("coalesce", [True, False])
def test_broadcasts_that_arrive_together_go_out_as_one_message(coalesce: bool) -> None:
    chat = load_chat_server()
    args = chat.parse_args(["--redis", "redis://127.0.0.1:1/0",
                            *([] if coalesce else ["--no-coalesce"])])

    async def scenario() -> None:
        hub = chat.Hub(args, 0)
        transport = FakeTransport()
        hub.clients.add(FakeClient(transport))
        hub._targets = None
        for i in range(3):  # what the relay parsed from one read, without yielding
            hub.on_broadcast(json.dumps({"type": "msg", "n": i}).encode())
        next_iteration = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(next_iteration.set_result, None)
        await next_iteration  # the flush was scheduled first, so it has run
        lines = [[json.loads(line)["n"] for line in frame.split(b"\n")]
                 for frame in transport.sent]
        assert lines == ([[0, 1, 2]] if coalesce else [[0], [1], [2]])
        # Past COALESCE_BYTES a batch goes out at once; a notice never overtakes a batch.
        transport.sent.clear()
        big = json.dumps({"type": "msg", "n": "x" * chat.COALESCE_BYTES}).encode()
        hub.on_broadcast(b'{"n": 0}')
        hub.on_broadcast(big)
        assert transport.sent == ([b'{"n": 0}\n' + big] if coalesce else [b'{"n": 0}', big])
        hub.on_broadcast(b'{"n": 1}')
        hub.broker_up = True
        hub._down(ConnectionError("test"))
        assert transport.sent[-2:] == [b'{"n": 1}', chat.BROKER_DOWN]

    run(scenario())
