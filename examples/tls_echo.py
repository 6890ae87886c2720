"""Echo over TLS (wss://): a server with a certificate, a client that checks it.

    python examples/tls_echo.py [--cert tests/certs/cert.pem --key tests/certs/key.pem]

The server and the client run in one process. The client trusts exactly the server's
certificate (a self-signed one for 127.0.0.1 here; use your CA's bundle in production).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from pathlib import Path

from femtows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_connect,
    ws_create_server,
)

CERTS = Path(__file__).resolve().parent.parent / "tests" / "certs"


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        else:
            transport.send(frame.msg_type, frame.get_payload_as_bytes())


class Client(WSListener):
    def on_ws_connected(self, transport: WSTransport) -> None:
        ssl_object = transport.underlying_transport.get_extra_info("ssl_object")
        print(f"connected with {ssl_object.version()}")
        transport.send(WSMsgType.TEXT, "hello over TLS")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            print(f"echo: {frame.get_payload_as_utf8_text()!r}, secure: {transport.is_secure}")
            transport.send_close(WSCloseCode.OK)


def echo_factory(request: WSUpgradeRequest) -> WSListener:
    return Echo()


async def main(cert: str, key: str) -> None:
    # Server side: a TLS context with the certificate chain and its private key.
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = await ws_create_server(echo_factory, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]

    # Client side: a wss:// URL runs TLS; ssl_context says which certificates to trust.
    client_ctx = ssl.create_default_context(cafile=cert)
    transport, _ = await ws_connect(Client, f"wss://127.0.0.1:{port}/", ssl_context=client_ctx)
    await transport.wait_disconnected()

    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert", default=str(CERTS / "cert.pem"))
    parser.add_argument("--key", default=str(CERTS / "key.pem"))
    args = parser.parse_args()
    asyncio.run(main(args.cert, args.key))
