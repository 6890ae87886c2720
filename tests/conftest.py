"""Test plumbing: every ``async def`` test runs once per event loop (asyncio, uvloop) and per
transport layer (``afn``: aiofastnet's transports, the default, and for plain-TCP servers too
although they default to the loop's; ``loopnet``: the loop's own, as for a user without
aiofastnet, simulated by hiding the module from ``femtows._net``).

No pytest-asyncio: a small ``pytest_pyfunc_call`` hook runs coroutine tests on a fresh loop of
the kind given by the ``loop_kind`` parameter, bounded by ``TEST_TIMEOUT`` so nothing hangs.
The ``tls`` fixture parametrises tests over plain TCP and TLS with the self-signed test
certificate in tests/certs (valid for localhost and 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import selectors
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from femtows import _net

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a test dependency on POSIX
    uvloop = None

CERTS = Path(__file__).parent / "certs"
TEST_TIMEOUT = float(os.environ.get("FEMTOWS_TEST_TIMEOUT", "30"))
LOOP_KINDS = ["asyncio", "uvloop"] if uvloop is not None else ["asyncio"]
NET_KINDS = ["afn", "loopnet"] if _net._aiofastnet is not None else ["loopnet"]


def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        assert uvloop is not None
        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return asyncio.new_event_loop


@pytest.fixture(autouse=True)
def loop_kind() -> str:
    """Overridden by parametrisation for coroutine tests (see pytest_generate_tests)."""
    return "asyncio"


@pytest.fixture(autouse=True)
def net_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Parametrised for coroutine tests; ``loopnet`` hides aiofastnet from femtows._net."""
    kind: str = getattr(request, "param", "afn" if "afn" in NET_KINDS else "loopnet")
    if kind == "loopnet":
        monkeypatch.setattr(_net, "_aiofastnet", None)
    else:
        # Plain-TCP servers default to the loop's transports; "afn" keeps them on aiofastnet.
        monkeypatch.setattr(_net, "TCP_SERVERS_USE_AIOFASTNET", True)
    return kind


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if inspect.iscoroutinefunction(metafunc.function):
        metafunc.parametrize("loop_kind", LOOP_KINDS)
        metafunc.parametrize("net_kind", NET_KINDS, indirect=True)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Optional[bool]:
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    loop = _loop_factory(pyfuncitem.funcargs["loop_kind"])()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.wait_for(func(**kwargs), TEST_TIMEOUT))
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return True


class TLSConfig:
    """Server and client SSL contexts (None, None for plain TCP)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.server: Optional[ssl.SSLContext] = None
        self.client: Optional[ssl.SSLContext] = None
        if enabled:
            self.server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.server.load_cert_chain(CERTS / "cert.pem", CERTS / "key.pem")
            self.client = ssl.create_default_context(cafile=str(CERTS / "cert.pem"))

    @property
    def scheme(self) -> str:
        return "wss" if self.enabled else "ws"

    def server_kwargs(self) -> dict[str, Any]:
        return {"ssl": self.server} if self.enabled else {}

    def client_kwargs(self) -> dict[str, Any]:
        return {"ssl_context": self.client} if self.enabled else {}


@pytest.fixture(params=[False, True], ids=["tcp", "tls"])
def tls(request: pytest.FixtureRequest) -> TLSConfig:
    return TLSConfig(request.param)


# ------------------------------------------------------------------------------------------------
# Real proxy servers (tests/test_proxy.py, tests/test_examples.py)

RUN_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "proxies" / "run.py"
START_TIMEOUT = 240.0  # apt-get install on a fresh machine


class ProxyServers:
    """The JSON printed by ``run.py serve``, or why the servers could not be started."""

    def __init__(self, info: Optional[dict[str, Any]], error: Optional[str]) -> None:
        self._info = info
        self._error = error

    def get(self) -> dict[str, Any]:
        if self._info is None:
            pytest.fail(f"the real proxy servers could not be started: {self._error}",
                        pytrace=False)
        return self._info


@pytest.fixture(scope="session")
def proxy_servers() -> Iterator[ProxyServers]:
    """tinyproxy (plain and Basic auth), stunnel in front of tinyproxy, dante (SOCKS4/5)."""
    proc = subprocess.Popen(
        [sys.executable, str(RUN_SCRIPT), "serve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
    info: Optional[dict[str, Any]] = None
    error: Optional[str] = None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if selector.select(START_TIMEOUT):
            line = proc.stdout.readline()
            if line:
                info = json.loads(line)
    if info is None:
        if proc.poll() is None:
            proc.kill()
            error = f"scripts/proxies/run.py did not start within {START_TIMEOUT:.0f}s"
        proc.wait()
        error = error or proc.stderr.read().strip() or f"run.py exited with {proc.returncode}"
    try:
        yield ProxyServers(info, error)
    finally:
        if proc.poll() is None:
            proc.stdin.close()  # run.py stops and reaps the servers on EOF
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# ------------------------------------------------------------------------------------------------
# Real WebSocket peers: Node's ws and headless Chromium (scripts/peers, see its README.md)

PEERS_DIR = Path(__file__).resolve().parents[1] / "scripts" / "peers"


def _start_peer(kind: str) -> Any:
    sys.path.insert(0, str(PEERS_DIR))
    import peers

    try:
        peer = peers.NodePeer() if kind == "node" else peers.ChromiumPeer()
        peer_ok = peer.call_sync("return 1") if kind == "node" else 1
        assert peer_ok == 1
    except (peers.PeerError, OSError) as exc:
        pytest.fail(f"the {kind} peer could not be started: {exc}", pytrace=False)
    return peer


@pytest.fixture(scope="session")
def node_peer() -> Iterator[Any]:
    """A Node process with the ``ws`` package (scripts/peers/peers.py NodePeer)."""
    peer = _start_peer("node")
    yield peer
    peer.close()


@pytest.fixture(scope="session")
def chromium_peer() -> Iterator[Any]:
    """Headless Chromium driven over DevTools (scripts/peers/peers.py ChromiumPeer)."""
    peer = _start_peer("chromium")
    yield peer
    peer.close()
