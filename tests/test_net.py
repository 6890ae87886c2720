"""Which transport layer carries a connection: aiofastnet's (default when installed) or the loop's.

conftest.py runs every coroutine test under both (``net_kind``); these tests check that the
choice really happens and that ``use_aiofastnet`` overrides it on both sides.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import pytest

import femtows
from femtows import WSCloseCode, WSMsgType, _net
from tests.utils import RecordingListener, start_echo_server


def is_aiofastnet(transport: femtows.WSTransport) -> bool:
    return type(transport.underlying_transport).__module__.startswith("aiofastnet")


@pytest.mark.parametrize("use", [None, False, True])
async def test_client_transport_follows_use_aiofastnet(
    tls: Any, net_kind: str, use: Optional[bool]
) -> None:
    server, url = await start_echo_server(tls)
    async with server:
        if use is True and net_kind == "loopnet":
            with pytest.raises(ImportError, match="aiofastnet is not installed"):
                await femtows.ws_connect(
                    RecordingListener, url, use_aiofastnet=use, **tls.client_kwargs()
                )
            return
        transport, client = await femtows.ws_connect(
            RecordingListener, url, use_aiofastnet=use, **tls.client_kwargs()
        )
        assert isinstance(client, RecordingListener)
        expected = use is True or (use is None and net_kind == "afn")
        assert is_aiofastnet(transport) == expected
        assert transport.is_secure == tls.enabled
        transport.send(WSMsgType.BINARY, b"x" * 70000)
        assert await client.wait_message(0) == (WSMsgType.BINARY, b"x" * 70000)
        transport.send_close(WSCloseCode.OK)
        await transport.wait_disconnected()


@pytest.mark.parametrize("use", [None, False, True])
async def test_server_transport_follows_use_aiofastnet(
    tls: Any, net_kind: str, use: Optional[bool]
) -> None:
    if use is True and net_kind == "loopnet":
        with pytest.raises(ImportError, match="aiofastnet is not installed"):
            await start_echo_server(tls, use_aiofastnet=use)
        return
    server_side: list[femtows.WSTransport] = []

    class Echo(femtows.WSListener):
        def on_ws_connected(self, transport: femtows.WSTransport) -> None:
            server_side.append(transport)

        def on_ws_frame(self, transport: femtows.WSTransport, frame: femtows.WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            else:
                transport.send(frame.msg_type, frame.get_payload_as_bytes())

    server = await femtows.ws_create_server(
        lambda request: Echo(), "127.0.0.1", 0, use_aiofastnet=use, **tls.server_kwargs()
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        transport, client = await femtows.ws_connect(
            RecordingListener, f"{tls.scheme}://127.0.0.1:{port}/", **tls.client_kwargs()
        )
        assert isinstance(client, RecordingListener)
        transport.send(WSMsgType.TEXT, "hello")
        assert await client.wait_message(0) == (WSMsgType.TEXT, b"hello")
        expected = use is True or (use is None and net_kind == "afn")
        assert is_aiofastnet(server_side[0]) == expected
        transport.send_close(WSCloseCode.OK)
        await transport.wait_disconnected()


def test_aiofastnet_module_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _net.aiofastnet_module(False) is None
    monkeypatch.setattr(_net, "_aiofastnet", None)
    assert _net.aiofastnet_module(None) is None
    with pytest.raises(ImportError):
        _net.aiofastnet_module(True)


async def test_tls_server_takes_shutdown_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio's own TLS servers take ssl_shutdown_timeout from Python 3.11 on; uvloop's and
    aiofastnet's (not for Unix servers: those are the loop's) on every version."""
    loop = asyncio.get_running_loop()
    stdlib_loop = isinstance(loop, asyncio.BaseEventLoop)
    monkeypatch.setattr(_net, "ASYNCIO_HAS_SSL_SHUTDOWN_TIMEOUT", True)
    assert _net.tls_server_takes_shutdown_timeout(loop, unix=True)
    monkeypatch.setattr(_net, "ASYNCIO_HAS_SSL_SHUTDOWN_TIMEOUT", False)
    assert _net.tls_server_takes_shutdown_timeout(loop, unix=True) == (not stdlib_loop)
    expected_tcp = not stdlib_loop or _net._aiofastnet is not None
    assert _net.tls_server_takes_shutdown_timeout(loop, unix=False) == expected_tcp
    monkeypatch.setattr(_net, "_aiofastnet", None)
    assert _net.tls_server_takes_shutdown_timeout(loop, unix=False) == (not stdlib_loop)
