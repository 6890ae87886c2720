"""TLS: serve(ssl=...) and connect("wss://...", ssl=...) with a self-signed certificate, the
scheme/ssl consistency checks of connect(), and a certificate that does not verify.

The certificate is tests/certs (valid for localhost and 127.0.0.1); WS_PROGRAM_CERTS points
to that directory when the program is not run from its place in the repository.
"""

import asyncio
import os
import pathlib
import ssl

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

CERTS = pathlib.Path(
    os.environ.get("WS_PROGRAM_CERTS", pathlib.Path(__file__).resolve().parents[2] / "certs")
)


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def main():
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(CERTS / "cert.pem", CERTS / "key.pem")
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(CERTS / "cert.pem")

    async with serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"wss://127.0.0.1:{port}/", ssl=client_context) as ws:
            await ws.send("over TLS")
            secure = ws.transport.get_extra_info("ssl_object") is not None
            print(await ws.recv(), "| secure:", secure)
        async with connect(f"wss://localhost:{port}/", ssl=client_context) as ws:
            await ws.send("by name")
            print(await ws.recv())
        try:
            async with connect(f"wss://127.0.0.1:{port}/", open_timeout=5):
                pass
        except ssl.SSLCertVerificationError as exc:
            print("default context refuses the self-signed certificate:", exc.verify_message)
    try:
        connect("ws://127.0.0.1:1/", ssl=client_context)
    except ValueError as exc:
        print("ValueError:", exc)


asyncio.run(main())
