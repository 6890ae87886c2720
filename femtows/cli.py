"""The command line: ``python -m femtows ws://host:port/path`` and ``python -m femtows serve``.

Client, interactive (stdin and stdout are a terminal): prints ``Connected to <uri>.``, reads
lines at a ``> `` prompt and sends each as a TEXT message, prints incoming messages as
``< text`` (or ``< (binary) <hex>``) above the line being typed, and closes with 1000 on Ctrl-D
or Ctrl-C, printing ``Connection closed: 1000 (OK).`` — what ``python -m websockets`` does.

Client, non-interactive (stdin or stdout is not a terminal): one message per input line, one
received message per output line (control characters escaped, so a message is always one
line), status lines on stderr. At the end of input the client closes with 1000 and waits for
the server's CLOSE. The exit status says how the connection ended: 0 when both sides closed
with 1000 or 1001, 1 otherwise (and when it could not connect), 2 for bad arguments.

Server: ``python -m femtows serve [--echo] HOST:PORT`` prints what every client sends (and
echoes it with ``--echo``) until Ctrl-C: the other half of the two-terminal test.

Errors (refused connection, bad URL, failed handshake, TLS failure) print one line and exit
non-zero, never a traceback. Built on the core API (``ws_connect`` / ``ws_create_server``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import signal
import ssl
import sys
import threading
from typing import Callable, Optional, Sequence, TextIO

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
from femtows.version import __version__
from femtows.websockets.frames import Close

__all__ = ["main"]

# Control characters (C0, DEL, C1) shown as Python escapes: a message can neither move the
# cursor nor span lines. NO-BREAK SPACE and SOFT HYPHEN are harmless and kept.
_ESCAPES = str.maketrans(
    {i: repr(chr(i))[1:-1] for i in itertools.chain(range(32), range(127, 160))}
)

# Exit statuses.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def escape(text: str) -> str:
    """Return ``text`` with control characters escaped, safe to print on one terminal line."""
    return text.translate(_ESCAPES)


def show_message(payload: bytes, is_text: bool, binary_format: str) -> str:
    """How a received message is printed: escaped text, or ``(binary) `` + hex or base64."""
    if is_text:
        return escape(payload.decode("utf-8"))
    shown = base64.b64encode(payload).decode() if binary_format == "base64" else payload.hex()
    return f"(binary) {shown}"


def close_status(transport: WSTransport) -> Close:
    """The close code and reason the connection ended with, as websockets reports them: what
    the peer sent, else what we sent, else 1006 (no CLOSE frame at all)."""
    handshake = transport.close_handshake
    info = None
    if handshake is not None:
        info = handshake.recv if handshake.recv is not None else handshake.sent
    if info is None:
        return Close(int(WSCloseCode.ABNORMAL_CLOSURE), "")
    code = int(info.code) or 1005  # an empty CLOSE payload means "no status received"
    return Close(code, info.reason or "")


def closed_cleanly(transport: WSTransport) -> bool:
    """Both CLOSE frames were exchanged and both said 1000 or 1001."""
    handshake = transport.close_handshake
    if handshake is None or handshake.recv is None or handshake.sent is None:
        return False
    ok = (0, 1000, 1001)  # 0: an empty CLOSE, which a 1000 reply answers
    return int(handshake.recv.code) in ok and int(handshake.sent.code) in ok


class _Terminal:
    """Writes on the terminal without garbling the line being typed at the prompt."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def above_prompt(self, line: str) -> None:
        # Save the cursor, open a line above the prompt, print there, restore the cursor.
        self.out.write(f"\x1b7\n\x1b[A\x1b[L{line}\n\x1b8\x1b[B")
        self.out.flush()

    def over_prompt(self, line: str) -> None:
        self.out.write(f"\r\x1b[K{line}\n")
        self.out.flush()


class _Assembler:
    """Joins the frames of fragmented messages and hands complete messages on."""

    def __init__(self, on_message: Callable[[bytes, bool], None]) -> None:
        self.on_message = on_message
        self.parts: list[bytes] = []
        self.is_text = False

    def feed(self, frame: WSFrame) -> None:
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            self.parts = []
            self.is_text = frame.msg_type == WSMsgType.TEXT
        elif frame.msg_type != WSMsgType.CONTINUATION:
            return
        self.parts.append(frame.get_payload_as_bytes())
        if frame.fin:
            payload = b"".join(self.parts)
            self.parts = []
            self.on_message(payload, self.is_text)


class _ClientListener(WSListener):
    def __init__(self, on_message: Callable[[bytes, bool], None]) -> None:
        self.assembler = _Assembler(on_message)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            return  # femtows answers the CLOSE and disconnects
        self.assembler.feed(frame)


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {text!r}")
    return name.strip(), value.strip()


def _client_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m femtows",
        description="Interactive WebSocket client (femtows). "
        "'python -m femtows serve --help' for the server.",
    )
    parser.add_argument("uri", metavar="<uri>", help="ws:// or wss:// URL to connect to")
    parser.add_argument("--header", action="append", type=_parse_header, default=[],
                        metavar="NAME:VALUE", help="extra request header (repeatable)")
    parser.add_argument("--subprotocol", action="append", default=[], metavar="NAME",
                        help="subprotocol to offer (repeatable, in order of preference)")
    parser.add_argument("--proxy", metavar="URL",
                        help="HTTP(S) or SOCKS proxy, e.g. http://127.0.0.1:3128")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify the server's TLS certificate (wss://)")
    parser.add_argument("--binary", choices=("hex", "base64"), default="hex",
                        help="how binary messages are shown (default: hex)")
    parser.add_argument("--ping-interval", type=float, default=20.0, metavar="SECONDS",
                        help="ping the server after this much silence; 0 disables "
                        "(default: 20)")
    parser.add_argument("--version", action="version", version=f"femtows {__version__}")
    return parser


def _server_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m femtows serve",
        description="A WebSocket server that prints what clients send (femtows).",
    )
    parser.add_argument("address", metavar="HOST:PORT",
                        help="where to listen, e.g. 127.0.0.1:8765 (port 0: any free port)")
    parser.add_argument("--echo", action="store_true", help="send every message back")
    parser.add_argument("--binary", choices=("hex", "base64"), default="hex",
                        help="how binary messages are shown (default: hex)")
    parser.add_argument("--version", action="version", version=f"femtows {__version__}")
    return parser


def _client_ssl_context(args: argparse.Namespace) -> Optional[ssl.SSLContext]:
    if not args.uri.lower().startswith("wss:"):
        return None
    context = ssl.create_default_context()
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return escape(text)


async def _run_client(args: argparse.Namespace, interactive: bool) -> int:
    loop = asyncio.get_running_loop()
    terminal = _Terminal(sys.stdout)
    status = sys.stdout if interactive else sys.stderr

    def on_message(payload: bytes, is_text: bool) -> None:
        shown = show_message(payload, is_text, args.binary)
        if interactive:
            terminal.above_prompt(f"< {shown}")
        else:
            sys.stdout.write(f"{shown}\n")
            sys.stdout.flush()

    headers = list(args.header)
    if args.subprotocol:
        headers.append(("Sec-WebSocket-Protocol", ", ".join(args.subprotocol)))
    ping = args.ping_interval
    try:
        transport, _listener = await ws_connect(
            lambda: _ClientListener(on_message),
            args.uri,
            ssl_context=_client_ssl_context(args),
            extra_headers=headers or None,
            proxy=args.proxy,
            enable_auto_ping=ping > 0,
            auto_ping_idle_timeout=ping if ping > 0 else 10,
            auto_ping_reply_timeout=ping if ping > 0 else 10,
        )
    except (Exception, asyncio.TimeoutError) as exc:
        status.write(f"Failed to connect to {args.uri}: {_error_text(exc)}.\n")
        status.flush()
        return EXIT_FAILED

    status.write(f"Connected to {args.uri}.\n")
    status.flush()

    stop: asyncio.Future[None] = loop.create_future()  # set on end of input or Ctrl-C

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    def send_line(line: str) -> None:
        if not transport.is_disconnected and not transport.is_close_frame_sent:
            transport.send(WSMsgType.TEXT, line)

    def read_lines() -> None:
        # A thread, so that Ctrl-C (delivered to the main thread) is never blocked by input().
        while True:
            if interactive:
                sys.stdout.write("> ")
                sys.stdout.flush()
            line = sys.stdin.readline()
            try:
                if not line:
                    loop.call_soon_threadsafe(request_stop)
                    return
                loop.call_soon_threadsafe(send_line, line.rstrip("\r\n"))
            except RuntimeError:  # the loop is closed: we are exiting
                return

    with _sigint_handler(loop, request_stop):
        threading.Thread(target=read_lines, daemon=True).start()
        disconnected = asyncio.ensure_future(transport.wait_disconnected())
        await asyncio.wait([disconnected, stop], return_when=asyncio.FIRST_COMPLETED)
        if not disconnected.done():
            transport.send_close(WSCloseCode.OK)
        try:
            await disconnected
        except Exception:
            pass  # a protocol error or a lost connection: the close status says it

    line = f"Connection closed: {escape(str(close_status(transport)))}."
    if interactive:
        terminal.over_prompt(line)
    else:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    return EXIT_OK if closed_cleanly(transport) else EXIT_FAILED


class _sigint_handler:
    """Turn SIGINT into a clean close for the duration of the ``with`` block."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self.loop = loop
        self.callback = callback
        self.installed = False

    def __enter__(self) -> None:
        try:
            self.loop.add_signal_handler(signal.SIGINT, self.callback)
            self.installed = True
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or not supported: Ctrl-C raises KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            self.loop.remove_signal_handler(signal.SIGINT)


class _ServerListener(WSListener):
    def __init__(self, name: str, echo: bool, binary_format: str) -> None:
        self.name = name
        self.echo = echo
        self.binary_format = binary_format
        self.transport: Optional[WSTransport] = None
        self.assembler = _Assembler(self.on_message)

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        _print(f"[{self.name}] connected")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            return
        self.assembler.feed(frame)

    def on_message(self, payload: bytes, is_text: bool) -> None:
        _print(f"[{self.name}] < {show_message(payload, is_text, self.binary_format)}")
        if self.echo and self.transport is not None:
            self.transport.send(WSMsgType.TEXT if is_text else WSMsgType.BINARY, payload)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        _print(f"[{self.name}] disconnected: {escape(str(close_status(transport)))}")


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


async def _run_server(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    host, port = _split_address(args.address)
    counter = itertools.count(1)

    def factory(request: WSUpgradeRequest) -> WSListener:
        return _ServerListener(f"#{next(counter)}", args.echo, args.binary)

    try:
        server = await ws_create_server(factory, host, port)
    except OSError as exc:
        sys.stderr.write(f"Cannot listen on {args.address}: {_error_text(exc)}.\n")
        return EXIT_FAILED
    bound = server.sockets[0].getsockname()
    shown_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    _print(f"Listening on ws://{shown_host}:{bound[1]}/ (Ctrl-C to stop)")
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    with _sigint_handler(loop, request_stop):
        loop.add_signal_handler(signal.SIGTERM, request_stop)
        try:
            await stop
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
    server.close()
    await server.wait_closed()
    _print("Server stopped.")
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve"]:
        server_args = _server_parser().parse_args(args_list[1:])
        try:
            _split_address(server_args.address)
        except ValueError as exc:
            sys.stderr.write(f"python -m femtows serve: {exc}\n")
            return EXIT_USAGE
        return asyncio.run(_run_server(server_args))
    args = _client_parser().parse_args(args_list)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history at the prompt)
        except ImportError:  # pragma: no cover - not on every platform
            pass
    return asyncio.run(_run_client(args, interactive))


def run() -> None:
    """Entry point of the ``femtows`` console script and ``python -m femtows``."""
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C before the loop's handler was in place
        code = EXIT_FAILED
    sys.exit(code)
