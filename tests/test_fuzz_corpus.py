"""The fuzz targets (tests/fuzz/) in CI: every corpus input replayed, then a brief atheris run.

The replay needs no atheris: each file of tests/fuzz/corpus/TARGET is passed to the target
function, which checks its invariants (see tests/fuzz/targets.py). Files named ``regress-*``
are inputs that found a bug. Where atheris is installed, each target also runs for a bounded
number of mutations (fixed seed) from its corpus, so a regression surfaces in CI.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from femtows.errors import WSProxyError
from tests.fuzz.targets import TARGETS, socks

FUZZ = Path(__file__).parent / "fuzz"
CORPUS = FUZZ / "corpus"
# Mutations per target in the brief atheris run: a few seconds for all targets together.
BRIEF_RUNS = 1000


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_corpus_replay(name):
    """Every corpus input of the target satisfies its invariants."""
    files = sorted((CORPUS / name).iterdir())
    assert len(files) >= 5, f"{name}: the seed corpus is missing"
    for f in files:
        try:
            TARGETS[name](f.read_bytes())
        except Exception as e:  # name the input that failed
            raise AssertionError(f"{name}: {f.name} fails: {e!r}") from e


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris has no wheel for this platform/Python (the replay above runs)")
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_brief_fuzz_run(name, tmp_path):
    """A short, seeded atheris run from the corpus finds nothing (bounded by -runs)."""
    proc = subprocess.run(
        [sys.executable, str(FUZZ / "run.py"), name, f"-runs={BRIEF_RUNS}", "-seed=1",
         f"-artifact_prefix={tmp_path}/", str(tmp_path), str(CORPUS / name)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DONE" in proc.stderr


def test_socks5_reply_with_non_utf8_bound_host_is_a_proxy_error():
    """Found by the socks fuzz target: a SOCKS5 success reply whose bound address is a host
    name that is not UTF-8 made python-socks raise UnicodeDecodeError, which escaped
    ws_connect instead of a WSProxyError (the socket is closed either way)."""
    reply = b"\x05\x00" + b"\x05\x00\x00\x03\x03ab\xe5\x00\x50"
    socks(b"\x04" + reply)  # the target asserts WSProxyError and a closed socket

    import asyncio
    import socket

    from femtows.proxy import _connect_via_socks_proxy, parse_proxy_url
    from femtows.url import parse_url

    a, b = socket.socketpair()
    b.sendall(reply)
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(WSProxyError, match="invalid SOCKS reply") as info:
            loop.run_until_complete(_connect_via_socks_proxy(
                loop, parse_url("ws://example.com/"), parse_proxy_url("socks5://p:1080"),
                lambda url: a, {}, __import__("logging").getLogger("test")))
        assert isinstance(info.value.__cause__, UnicodeDecodeError)
        assert a.fileno() == -1
    finally:
        loop.close()
        a.close()
        b.close()
