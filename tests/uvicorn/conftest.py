"""tests/uvicorn: the ``connect`` fixture (one connect function per client kind) and the
trimming of the loop/transport matrix where it changes nothing.

tests/conftest.py runs every coroutine test on asyncio and uvloop, and with femtows's two
transport layers (afn/loopnet). The server under test is uvicorn, which always uses the loop's
own transports, so the transport layer only changes the femtows *client* (tested on both
elsewhere): these tests run once (afn). Node and Chromium, separate processes, run on the
asyncio loop only (the server's uvloop path is covered by the in-process clients).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from clients import CLIENTS, PEER_CLIENTS, Connect, peer_connector  # noqa: E402


@pytest.fixture
def connect(client: str, request: pytest.FixtureRequest) -> Connect:
    if client in PEER_CLIENTS:
        return peer_connector(request.getfixturevalue(f"{client}_peer"))
    return CLIENTS[client]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
        client = params.get("client")
        redundant = here in Path(str(item.fspath)).parents and (
            params.get("net_kind") == "loopnet"
            or (client in PEER_CLIENTS and params.get("loop_kind") == "uvloop"))
        (drop if redundant else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
