"""Naive echo client for the Autobahn TestSuite (fuzzingserver mode).

Asks the fuzzing server for its case count (``/getCaseCount``), then runs every case
(``/runCase?case=N&agent=A``) with a listener that echoes each data frame back as it
arrived (same opcode, CONTINUATION frames included, same fin bit), with no reassembly
and no validation of its own: strictness is the library's job. PINGs are answered by
the library's auto-pong. Finally asks the server to write its reports
(``/updateReports?agent=A``).

    kosoku -m fuzzingserver 127.0.0.1:9002
    python examples/autobahn_echo_client.py --url ws://127.0.0.1:9002 --agent femtows

With ``--compression`` every case connection offers permessage-deflate
(``compression="deflate"``): frames arrive decompressed and the echo is compressed again by the
library (Autobahn 12.* and 13.*).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Awaitable, List, Optional, Union
from urllib.parse import quote

from femtows import WSDeflateConfig, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

# Autobahn 9.1.6 / 9.2.6 send a single 16 MiB frame; leave room above that.
MAX_FRAME_SIZE = 32 * 1024 * 1024

DATA_FRAMES = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION)


class EchoListener(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in DATA_FRAMES:
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)
        # PING is answered by the library (auto-pong); an unsolicited PONG is not echoed.


def echo_listener() -> WSListener:
    return EchoListener()


class TextListener(WSListener):
    """Collects the first TEXT message (the /getCaseCount answer), then closes on CLOSE."""

    def __init__(self) -> None:
        super().__init__()
        self.text: Optional[str] = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and self.text is None:
            self.text = frame.get_payload_as_utf8_text()
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


async def wait_closed(transport: WSTransport, timeout: float) -> Optional[str]:
    """Wait for the connection to end; returns a problem description or None."""
    try:
        await asyncio.wait_for(transport.wait_disconnected(), timeout)
    except asyncio.TimeoutError:
        transport.disconnect(False)
        return f"no disconnect within {timeout:g}s, dropped"
    except Exception as exc:  # the library failed the connection (e.g. WSProtocolError)
        return f"{type(exc).__name__}: {exc}"
    return None


async def get_case_count(url: str, timeout: float) -> int:
    listener = TextListener()
    transport, _ = await ws_connect(lambda: listener, f"{url}/getCaseCount")
    await wait_closed(transport, timeout)
    if listener.text is None:
        raise RuntimeError("no case count received from /getCaseCount")
    return int(listener.text)


def parse_cases(spec: Optional[str], count: int) -> List[int]:
    """``None`` -> 1..count; otherwise a comma list of numbers and ranges: ``1-5,9``."""
    if not spec:
        return list(range(1, count + 1))
    selected: List[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            selected.extend(range(int(lo), int(hi) + 1))
        else:
            selected.append(int(part))
    return [n for n in selected if 1 <= n <= count]


async def run_case(
    url: str,
    case: int,
    agent: str,
    timeout: float,
    compression: Union[str, WSDeflateConfig, None] = None,
) -> Optional[str]:
    case_url = f"{url}/runCase?case={case}&agent={quote(agent)}"
    try:
        transport, _ = await asyncio.wait_for(
            ws_connect(
                echo_listener, case_url, max_frame_size=MAX_FRAME_SIZE, compression=compression
            ),
            timeout,
        )
    except Exception as exc:
        return f"connect failed: {type(exc).__name__}: {exc}"
    return await wait_closed(transport, timeout)


async def update_reports(url: str, agent: str, timeout: float) -> None:
    transport, _ = await ws_connect(echo_listener, f"{url}/updateReports?agent={quote(agent)}")
    await wait_closed(transport, timeout)


async def amain(
    url: str,
    agent: str,
    cases_spec: Optional[str],
    timeout: float,
    compression: Union[str, WSDeflateConfig, None],
) -> int:
    url = url.rstrip("/")
    count = await get_case_count(url, timeout)
    cases = parse_cases(cases_spec, count)
    print(f"server has {count} cases, running {len(cases)} as agent {agent!r}", flush=True)
    started = time.monotonic()
    problems = 0
    for case in cases:
        problem = await run_case(url, case, agent, timeout, compression)
        if problem is not None:
            problems += 1
            print(f"case {case}: {problem}", flush=True)
    elapsed = time.monotonic() - started
    await update_reports(url, agent, timeout)
    print(
        f"ran {len(cases)} cases in {elapsed:.1f}s ({problems} ended with a library error, "
        "which can be the expected outcome); reports updated",
        flush=True,
    )
    return 0


def run(main: Awaitable[int], loop_name: str) -> int:
    loop: asyncio.AbstractEventLoop
    if loop_name == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:9002", help="fuzzing server URL")
    parser.add_argument("--agent", default="femtows", help="agent name in the reports")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--cases", help="case numbers to run, e.g. '1-10,42' (default: all the server has)"
    )
    parser.add_argument(
        "--case-timeout", type=float, default=120.0, help="seconds allowed per case"
    )
    parser.add_argument(
        "--compression", action="store_true", help="offer permessage-deflate on every case"
    )
    parser.add_argument(
        "--no-context-takeover", action="store_true",
        help="with --compression, also offer client_no_context_takeover",
    )
    args = parser.parse_args()
    compression: Union[str, WSDeflateConfig, None] = None
    if args.compression:
        compression = "deflate"
        if args.no_context_takeover:
            compression = WSDeflateConfig(
                client_no_context_takeover=True, client_max_window_bits=True
            )
    try:
        return run(
            amain(args.url, args.agent, args.cases, args.case_timeout, compression), args.loop
        )
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
