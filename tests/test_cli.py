"""The command line (femtows/cli.py), driven as a user drives it: through pipes and through a
pseudo-terminal, against ``python -m femtows serve`` and against servers written in the test."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest

import femtows
from femtows import WSListener, WSMsgType, WSTransport, WSUpgradeRequest
from femtows.cli import escape, show_message

CERTS = Path(__file__).parent / "certs"
DEADLINE = 20.0  # seconds any one interaction may take before the test fails (never a wait)
ANSI = re.compile(r"\x1b(\[[0-9;]*[A-Za-z]|[78])")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "femtows", *args]


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """``python -m femtows serve --echo`` on a free port; yields its ws:// URL."""
    proc = subprocess.Popen(
        cli("serve", "--echo", "127.0.0.1:0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.fullmatch(r"Listening on (ws://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)\n", line)
    assert match, line
    try:
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 0, out
        assert out.endswith("Server stopped.\n"), out


def run_piped(url: str, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(url, *args), input=stdin, capture_output=True, text=True, timeout=DEADLINE
    )


# -- non-interactive (pipes) ---------------------------------------------------------------------


def test_pipe_echo(echo_url: str) -> None:
    """One message per line in, one per line out; status on stderr; exit 0 after a clean close."""
    result = run_piped(echo_url, "hello\nwörld\n\nlast line without newline")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello", "wörld", "", "last line without newline"]
    assert result.stderr.splitlines() == [
        f"Connected to {echo_url}.",
        "Connection closed: 1000 (OK).",
    ]


def test_pipe_control_characters_escaped(echo_url: str) -> None:
    """A message with control characters stays on one line, escaped."""
    result = run_piped(echo_url, "bell\x07 and tab\t\n")
    assert result.stdout == "bell\\x07 and tab\\t\n"


def test_pipe_empty_input_closes_cleanly(echo_url: str) -> None:
    result = run_piped(echo_url, "")
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.splitlines()[-1] == "Connection closed: 1000 (OK)."


class _Scripted(WSListener):
    """A server listener that sends what the test asks on connect, then closes."""

    def __init__(self, binary: bytes, close: tuple[int, str]) -> None:
        self.binary = binary
        self.close = close

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.BINARY, self.binary)
        transport.send(WSMsgType.TEXT, b"frag", fin=False)
        transport.send(WSMsgType.CONTINUATION, b"mented", fin=True)
        transport.send_close(*self.close)


async def _run_cli_against(
    listener: Optional[WSListener], *args: str, stdin: bytes = b"", **server_kwargs: object
) -> tuple[int, str, str]:
    """Start a femtows server answering with ``listener`` (None: 404), run the CLI against it
    with ``args`` (the URL is appended), return (exit status, stdout, stderr)."""

    def factory(request: WSUpgradeRequest) -> Optional[WSListener]:
        return listener

    server = await femtows.ws_create_server(factory, "127.0.0.1", 0, **server_kwargs)  # type: ignore[arg-type]
    async with server:
        port = server.sockets[0].getsockname()[1]
        scheme = "wss" if "ssl" in server_kwargs else "ws"
        proc = await asyncio.create_subprocess_exec(
            *cli(*args, f"{scheme}://localhost:{port}/"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin), DEADLINE)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


async def test_binary_hex_and_fragments_and_server_close_code() -> None:
    """Binary shown as hex, fragments joined, and a server closing with 1011 exits 1."""
    code, out, err = await _run_cli_against(_Scripted(b"\x00\xffA", (1011, "boom")))
    assert out.splitlines() == ["(binary) 00ff41", "fragmented"]
    assert err.splitlines()[-1] == "Connection closed: 1011 (internal error) boom."
    assert code == 1


async def test_binary_base64_and_going_away_is_clean() -> None:
    code, out, err = await _run_cli_against(
        _Scripted(b"\x00\xffA", (1001, "")), "--binary", "base64"
    )
    assert out.splitlines() == ["(binary) AP9B", "fragmented"]
    assert err.splitlines()[-1] == "Connection closed: 1001 (going away)."
    assert code == 0


async def test_failed_handshake_is_one_line() -> None:
    """A server answering 404: one line on stderr, exit 1, no traceback."""
    code, out, err = await _run_cli_against(None)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Failed to connect to ws://localhost:")
    assert "but received 404" in lines[0]


async def test_tls_failure_and_insecure() -> None:
    """A self-signed certificate fails verification (one line); --insecure connects."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERTS / "cert.pem", CERTS / "key.pem")
    code, _out, err = await _run_cli_against(_Scripted(b"x", (1000, "")), ssl=context)
    assert code == 1
    assert len(err.splitlines()) == 1 and "CERTIFICATE_VERIFY_FAILED" in err, err
    code, out, err = await _run_cli_against(
        _Scripted(b"x", (1000, "")), "--insecure", ssl=context
    )
    assert out.splitlines() == ["(binary) 78", "fragmented"], err
    assert code == 0


def test_refused_connection_is_one_line() -> None:
    result = run_piped("ws://127.0.0.1:1/", "")
    assert result.returncode == 1
    assert result.stdout == ""
    assert re.fullmatch(r"Failed to connect to ws://127\.0\.0\.1:1/: .*\.\n", result.stderr)


@pytest.mark.parametrize(
    ("url", "words"),
    [("http://example.com/", "scheme isn't ws or wss"), ("ws://", "hostname isn't provided")],
)
def test_bad_url_is_one_line(url: str, words: str) -> None:
    result = run_piped(url, "")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and words in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors() -> None:
    no_uri = subprocess.run(cli(), capture_output=True, text=True, timeout=DEADLINE)
    assert no_uri.returncode == 2 and "usage: python -m femtows" in no_uri.stderr
    bad_address = subprocess.run(
        cli("serve", "nowhere"), capture_output=True, text=True, timeout=DEADLINE
    )
    assert bad_address.returncode == 2
    assert bad_address.stderr == "python -m femtows serve: expected HOST:PORT, got 'nowhere'\n"


def test_version_and_help() -> None:
    version = subprocess.run(cli("--version"), capture_output=True, text=True, timeout=DEADLINE)
    assert version.stdout == f"femtows {femtows.__version__}\n"
    assert version.returncode == 0
    helped = subprocess.run(cli("--help"), capture_output=True, text=True, timeout=DEADLINE)
    for option in ("--header", "--subprotocol", "--proxy", "--insecure", "--binary",
                   "--ping-interval", "--version"):
        assert option in helped.stdout


def test_websockets_module_alias(echo_url: str) -> None:
    """``python -m femtows.websockets`` is the same command line."""
    result = subprocess.run(
        [sys.executable, "-m", "femtows.websockets", echo_url],
        input="via alias\n",
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert (result.returncode, result.stdout) == (0, "via alias\n")


class _HeaderEcho(WSListener):
    """Sends back the request headers the test asks about, then closes."""

    def __init__(self, request: WSUpgradeRequest) -> None:
        self.request = request

    def on_ws_connected(self, transport: WSTransport) -> None:
        headers = self.request.headers
        transport.send(WSMsgType.TEXT, f"X-Token={headers.get('X-Token')}")
        transport.send(WSMsgType.TEXT, f"protocols={headers.get('Sec-WebSocket-Protocol')}")
        transport.send_close(1000)


async def test_header_and_subprotocol_options() -> None:
    def factory(request: WSUpgradeRequest) -> WSListener:
        return _HeaderEcho(request)

    server = await femtows.ws_create_server(factory, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            *cli("--header", "X-Token: abc", "--subprotocol", "chat", "--subprotocol", "v2",
                 f"ws://127.0.0.1:{port}/"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _err = await asyncio.wait_for(proc.communicate(b""), DEADLINE)
    assert out.decode().splitlines() == ["X-Token=abc", "protocols=chat, v2"]


# -- interactive (pseudo-terminal) ---------------------------------------------------------------


class Terminal:
    """The CLI running on a pseudo-terminal, read screen-text-wise (escape sequences removed)."""

    def __init__(self, *args: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its controlling terminal
            os.execv(sys.executable, cli(*args))
        self.output = ""

    def read_until(self, text: str) -> str:
        deadline = time.monotonic() + DEADLINE
        while text not in self.screen():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"{text!r} did not appear; output so far: {self.output!r}")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    pytest.fail(f"{text!r} did not appear before EOF: {self.output!r}")
                self.output += chunk.decode("utf-8", "replace")
        return self.screen()

    def screen(self) -> str:
        # "\r ESC[K" erases the line being typed (the prompt, an echoed ^C) as a terminal would.
        erased = re.sub(r"[^\n]*\r\x1b\[K", "", self.output)
        return ANSI.sub("", erased).replace("\r", "")

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def wait(self) -> int:
        deadline = time.monotonic() + DEADLINE
        while True:
            # Keep draining so the child never blocks on a full terminal buffer.
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    self.output += os.read(self.fd, 4096).decode("utf-8", "replace")
                except OSError:
                    pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                pytest.fail(f"the CLI did not exit; output: {self.output!r}")


@pytest.mark.parametrize("key", ["\x04", "\x03"], ids=["ctrl-d", "ctrl-c"])
def test_interactive_session(echo_url: str, key: str) -> None:
    """Connected line, prompt, echoed message shown as '< ...', clean close on Ctrl-D/Ctrl-C."""
    term = Terminal(echo_url)
    term.read_until(f"Connected to {echo_url}.\n")
    term.read_until("> ")
    term.type("hello there\n")
    screen = term.read_until("< hello there\n")
    term.read_until("> ")
    term.type(key)
    screen = term.read_until("Connection closed: 1000 (OK).\n")
    assert term.wait() == 0
    lines = [line for line in screen.split("\n") if line.strip()]
    assert lines[0] == f"Connected to {echo_url}."
    assert "< hello there" in lines
    assert lines[-1] == "Connection closed: 1000 (OK)."
    assert "Traceback" not in term.output


def test_show_message_and_escape() -> None:
    assert escape("a\nb\x1b[2J\x7f\x85\xa0") == "a\\nb\\x1b[2J\\x7f\\x85\xa0"
    assert show_message("é".encode(), True, "hex") == "é"
    assert show_message(b"\x01\x02", False, "hex") == "(binary) 0102"
    assert show_message(b"\x01\x02", False, "base64") == "(binary) AQI="
