"""ws_connect(socket_factory=...): the user's socket under the WebSocket (seed "Setting socket
options"; picows-reference §1.2).

Both calling conventions: ``factory(host, port)`` as the seed documents, ``factory(parsed_url)``
as picows 2.3.1 does, chosen from the signature. Sync or async; returns a connected socket, an
unconnected one, or None.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import femtows
from femtows import WSCloseCode, WSMsgType, WSParsedURL
from tests.test_proxy import FakeProxy, socks5_handler
from tests.utils import EchoListener, RecordingListener, echo_round_trip, pipe, start_echo_server


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].strip("/"))


async def test_two_args_sync_unconnected_socket(tls: Any) -> None:
    """factory(host, port) returns an unconnected socket with an option set before connect();
    femtows connects it and the option is on the connection's socket."""
    calls: list[tuple[str, int]] = []
    made: list[socket.socket] = []

    def factory(host: str, port: int) -> socket.socket:
        calls.append((host, port))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        made.append(sock)
        return sock

    server, url = await start_echo_server(tls)
    async with server:
        transport, client = await femtows.ws_connect(
            RecordingListener, url, socket_factory=factory, **tls.client_kwargs()
        )
        assert isinstance(client, RecordingListener)
        used = transport.underlying_transport.get_extra_info("socket")
        assert used.fileno() == made[0].fileno()
        assert used.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert used.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # still set by us
        assert transport.is_secure == tls.enabled
        transport.send(WSMsgType.TEXT, b"hi")
        assert await client.wait_message(0) == (WSMsgType.TEXT, b"hi")
        transport.disconnect()
        await transport.wait_disconnected()
    assert calls == [("127.0.0.1", port_of(url))]


async def test_one_arg_async_connected_socket(tls: Any) -> None:
    """async factory(parsed_url) returns a socket it connected itself: used as it is."""
    seen: list[WSParsedURL] = []

    async def factory(url: WSParsedURL) -> socket.socket:
        seen.append(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (url.host, url.port))
        return sock

    server, url = await start_echo_server(tls)
    async with server:
        await echo_round_trip(url + "path?q=1", socket_factory=factory, **tls.client_kwargs())
    assert len(seen) == 1
    assert isinstance(seen[0], WSParsedURL)
    assert (seen[0].scheme, seen[0].host, seen[0].port) == (tls.scheme, "127.0.0.1", port_of(url))
    assert seen[0].resource_name == "/path?q=1"


async def test_star_args_factory_gets_the_parsed_url() -> None:
    """A factory that takes anything gets picows's convention (one WSParsedURL)."""
    seen: list[tuple[Any, ...]] = []

    def factory(*args: Any) -> None:
        seen.append(args)

    server, url = await start_echo_server()
    async with server:
        await echo_round_trip(url, socket_factory=factory)
    assert len(seen) == 1 and len(seen[0]) == 1 and isinstance(seen[0][0], WSParsedURL)


@pytest.mark.parametrize("is_async", [False, True])
async def test_none_means_default_path(is_async: bool) -> None:
    calls: list[Any] = []

    def sync_factory(host: str, port: int) -> None:
        calls.append((host, port))

    async def async_factory(host: str, port: int) -> None:
        calls.append((host, port))

    server, url = await start_echo_server()
    async with server:
        await echo_round_trip(url, socket_factory=async_factory if is_async else sync_factory,
                         local_addr=("127.0.0.1", 0))  # connection keywords still apply
    assert calls == [("127.0.0.1", port_of(url))]


@pytest.mark.parametrize("result", [42, "socket", object()])
async def test_non_socket_result_is_type_error(result: Any) -> None:
    server, url = await start_echo_server()
    async with server:
        with pytest.raises(TypeError, match="must return a socket.socket or None"):
            await femtows.ws_connect(RecordingListener, url, socket_factory=lambda u: result)


async def test_datagram_socket_is_refused() -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server, url = await start_echo_server()
    async with server:
        with pytest.raises(ValueError, match="SOCK_STREAM"):
            await femtows.ws_connect(RecordingListener, url, socket_factory=lambda h, p: udp)
    assert udp.fileno() == -1  # closed: it was handed over to us


async def test_factory_exception_propagates_unchanged() -> None:
    class Custom(Exception):
        pass

    def factory(host: str, port: int) -> socket.socket:
        raise Custom("from the factory")

    with pytest.raises(Custom, match="from the factory"):
        await femtows.ws_connect(RecordingListener, "ws://127.0.0.1:9/", socket_factory=factory)


async def test_factory_with_wrong_signature() -> None:
    def three(a: Any, b: Any, c: Any) -> None:
        pass

    with pytest.raises(TypeError, match=r"\(host, port\) or one WSParsedURL"):
        await femtows.ws_connect(RecordingListener, "ws://127.0.0.1:9/", socket_factory=three)
    with pytest.raises(TypeError, match="callable"):
        await femtows.ws_connect(
            RecordingListener, "ws://127.0.0.1:9/", socket_factory=3  # type: ignore[arg-type]
        )


async def test_connect_keywords_cannot_apply_to_a_given_socket() -> None:
    """local_addr would be silently ignored with a ready socket: TypeError instead."""
    sock = socket.socket()
    server, url = await start_echo_server()
    async with server:
        with pytest.raises(TypeError, match="local_addr cannot be used"):
            await femtows.ws_connect(RecordingListener, url, socket_factory=lambda u: sock,
                                     local_addr=("127.0.0.1", 0))
    assert sock.fileno() == -1


async def test_unconnected_socket_connect_failure_closes_it() -> None:
    made: list[socket.socket] = []

    def factory(host: str, port: int) -> socket.socket:
        made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        return made[0]

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            await femtows.ws_connect(
                RecordingListener, f"ws://127.0.0.1:{port}/", socket_factory=factory
            )
    assert made[0].fileno() == -1


async def test_factory_is_called_for_each_redirect() -> None:
    calls: list[int] = []

    def factory(host: str, port: int) -> None:
        calls.append(port)

    def listener_factory(request: femtows.WSUpgradeRequest) -> Any:
        if request.path == b"/start":
            response = femtows.WSUpgradeResponse.create_redirect_response(302, "/final")
            return femtows.WSUpgradeResponseWithListener(response, None)
        from tests.utils import EchoListener

        return EchoListener()

    server = await femtows.ws_create_server(listener_factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await echo_round_trip(f"ws://127.0.0.1:{port}/start", socket_factory=factory)
    assert calls == [port, port]


# -- with a proxy, the factory makes the socket to the proxy


async def test_factory_socket_to_http_proxy(tls: Any) -> None:
    calls: list[tuple[str, int]] = []
    server, url = await start_echo_server(tls)

    async def proxy_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await pipe(reader, writer, port_of(url))

    def factory(host: str, port: int) -> socket.socket:
        calls.append((host, port))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock

    async with server, FakeProxy(proxy_handler) as proxy:
        transport, client = await femtows.ws_connect(
            RecordingListener, url, proxy=f"http://127.0.0.1:{proxy.port}",
            socket_factory=factory, **tls.client_kwargs(),
        )
        assert isinstance(client, RecordingListener)
        used = transport.underlying_transport.get_extra_info("socket")
        assert used.getpeername()[1] == proxy.port
        assert used.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        transport.send(WSMsgType.TEXT, b"via proxy")
        assert await client.wait_message(0) == (WSMsgType.TEXT, b"via proxy")
        transport.disconnect()
        await transport.wait_disconnected()
    assert calls == [("127.0.0.1", proxy.port)]


async def test_factory_socket_to_socks_proxy(tls: Any) -> None:
    """The SOCKS handshake runs on the factory's socket (python-socks's forward hop)."""
    seen: list[WSParsedURL] = []
    records: list[tuple[int, str, int]] = []
    server, url = await start_echo_server(tls)

    def factory(proxy_url: WSParsedURL) -> socket.socket:
        seen.append(proxy_url)
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    async with server, FakeProxy(socks5_handler(records, port_of(url))) as proxy:
        await echo_round_trip(
            url, proxy=f"socks5://127.0.0.1:{proxy.port}", socket_factory=factory,
            **tls.client_kwargs(),
        )
    assert [(u.scheme, u.host, u.port) for u in seen] == [("socks5", "127.0.0.1", proxy.port)]
    assert records == [(0x01, "127.0.0.1", port_of(url))]


async def test_unix_socket_from_factory_and_server_sock(tmp_path: Any, caplog: Any) -> None:
    """A Unix-domain stream works end to end: the server listens on an AF_UNIX socket passed
    as ``sock``, the client's socket_factory returns a connected AF_UNIX socket. No TCP option
    is applied to it, and the INFO connection line still appears."""
    import logging

    path = str(tmp_path / "ws.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    server = await femtows.ws_create_server(lambda r: EchoListener(), sock=listener)

    def factory(host: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return sock

    async with server:
        with caplog.at_level(logging.INFO, logger="femtows.client"):
            transport, client = await femtows.ws_connect(
                RecordingListener, "ws://localhost/", socket_factory=factory
            )
        assert isinstance(client, RecordingListener)
        transport.send(WSMsgType.TEXT, "over a unix socket")
        assert await client.wait_message(0) == (WSMsgType.TEXT, b"over a unix socket")
        transport.send_close(WSCloseCode.OK)
        await transport.wait_disconnected()
        assert any("connection established" in r.getMessage() for r in caplog.records)
