"""femtows.websockets.client.process_exception and backoff against websockets.client (17.4)."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import subprocess
import sys

import pytest
import websockets.client as ref
import websockets.datastructures as ref_ds
import websockets.exceptions as ref_exc
import websockets.http11 as ref_http

# Older websockets have process_exception only there (17.4 has it in both places).
from websockets.asyncio.client import process_exception as ref_process_exception

from femtows.websockets import client
from femtows.websockets import exceptions as exc
from femtows.websockets.datastructures import Headers
from femtows.websockets.http11 import Response


def _invalid_message_from_eof(module: object) -> Exception:
    error = module.InvalidMessage("did not receive a valid HTTP response")  # type: ignore[attr-defined]
    error.__cause__ = EOFError("connection closed while reading HTTP status line")
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 501, 502, 503, 504, 505])
def test_process_exception_status(status: int) -> None:
    ours = exc.InvalidStatus(Response(status, "x", Headers()))
    theirs = ref_exc.InvalidStatus(ref_http.Response(status, "x", ref_ds.Headers()))
    retry_ours = client.process_exception(ours) is None
    retry_theirs = ref_process_exception(theirs) is None
    assert retry_ours == retry_theirs == (status in (500, 502, 503, 504))
    if not retry_ours:
        assert client.process_exception(ours) is ours


@pytest.mark.parametrize(
    "make",
    [
        lambda m: ConnectionRefusedError(111, "refused"),
        lambda m: OSError("network unreachable"),
        lambda m: TimeoutError(),
        lambda m: asyncio.TimeoutError(),
        lambda m: _invalid_message_from_eof(m),
        lambda m: m.InvalidMessage("did not receive a valid HTTP response"),
        lambda m: m.InvalidHandshake("x"),
        lambda m: m.InvalidURI("http://x", "scheme isn't ws or wss"),
        lambda m: m.SecurityError("body too large"),
        lambda m: ValueError("x"),
        lambda m: m.InvalidHeader("Upgrade"),
    ],
)
def test_process_exception_same_verdict(make: object) -> None:
    ours, theirs = make(exc), make(ref_exc)  # type: ignore[operator]
    assert (client.process_exception(ours) is None) == (ref_process_exception(theirs) is None)
    result = client.process_exception(ours)
    assert result is None or result is ours


def test_backoff_sequence_matches() -> None:
    random.seed(7)
    ours = list(itertools.islice(client.backoff(), 14))
    random.seed(7)
    theirs = list(itertools.islice(ref.backoff(), 14))
    assert ours == theirs
    assert 0 <= ours[0] < 5
    assert ours[1:4] == [3.1, 3.1 * 1.618, 3.1 * 1.618 * 1.618]
    assert ours[-1] == 90.0


def test_backoff_parameters() -> None:
    delays = list(itertools.islice(client.backoff(1.0, 1.0, 8.0, 2.0), 7))
    assert 0 <= delays[0] < 1.0
    assert delays[1:] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert list(itertools.islice(client.backoff(0.0, 5.0, 1.0, 2.0), 3)) == [0.0, 1.0, 1.0]


def test_backoff_environment() -> None:
    code = (
        "import itertools; from femtows.websockets import client; "
        "print(list(itertools.islice(client.backoff(), 5))[1:])"
    )
    env = dict(
        os.environ,
        WEBSOCKETS_BACKOFF_INITIAL_DELAY="0.5",
        WEBSOCKETS_BACKOFF_MIN_DELAY="0.25",
        WEBSOCKETS_BACKOFF_MAX_DELAY="1",
        WEBSOCKETS_BACKOFF_FACTOR="2",
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[0.25, 0.5, 1.0, 1.0]"
