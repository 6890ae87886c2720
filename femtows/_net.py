"""Where connections come from: the event loop's own transports, or aiofastnet's.

aiofastnet (a dependency, as for picows) reimplements asyncio's socket and TLS transports in
Cython/C on top of the same event loop (asyncio or uvloop). With it a read costs fewer
Python-level steps and TLS talks to OpenSSL without the ssl module's extra layers;
bench/README.md has the numbers. ``use_aiofastnet=None`` (the default everywhere) means "use it
when it is importable", so femtows still works where it is missing, with one exception: a
plain-TCP *server* uses the loop's transports. There aiofastnet's accept path (Python code per
accepted socket) makes a handshake cost ~30% more server time and an idle connection 8.9 KiB
instead of 3.5, for no gain on the echo path (femtows sends with its own ``sendmsg()`` and
reads into its own buffer either way); with TLS aiofastnet's OpenSSL engine wins, so a TLS
server keeps it.
"""

from __future__ import annotations

import asyncio
import sys
from types import ModuleType
from typing import Any, Callable, Optional, Tuple

__all__ = [
    "aiofastnet_module", "create_connection", "create_server", "tls_server_takes_shutdown_timeout",
]

#: Whether ``use_aiofastnet=None`` puts plain-TCP servers on aiofastnet too (the tests' "afn"
#: transport kind sets it, so that both transport layers stay covered on the server side).
TCP_SERVERS_USE_AIOFASTNET = False

#: asyncio's own ``create_server`` / ``create_connection`` take ``ssl_shutdown_timeout``.
ASYNCIO_HAS_SSL_SHUTDOWN_TIMEOUT = sys.version_info >= (3, 11)

_aiofastnet: Optional[ModuleType]
try:
    import aiofastnet as _aiofastnet
except ImportError:  # optional accelerator
    _aiofastnet = None


def aiofastnet_module(use_aiofastnet: Optional[bool]) -> Optional[ModuleType]:
    """The aiofastnet module to use, or None for the loop's own transports.

    Raises:
        ImportError: ``use_aiofastnet=True`` but aiofastnet is not installed.
    """
    if use_aiofastnet is False:
        return None
    if _aiofastnet is None:
        if use_aiofastnet:
            raise ImportError("use_aiofastnet=True but aiofastnet is not installed "
                              "(pip install aiofastnet)")
        return None
    return _aiofastnet


async def create_connection(
    use_aiofastnet: Optional[bool],
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: Optional[str] = None,
    port: Optional[int] = None,
    **kwargs: Any,
) -> Tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """``loop.create_connection`` through aiofastnet when selected."""
    loop = asyncio.get_running_loop()
    module = aiofastnet_module(use_aiofastnet)
    if module is not None:
        result: Tuple[asyncio.Transport, asyncio.BaseProtocol] = await module.create_connection(
            loop, protocol_factory, host, port, **kwargs)
        return result
    transport, protocol = await loop.create_connection(
        protocol_factory, host, port, **kwargs)  # type: ignore[arg-type]
    return transport, protocol


async def create_server(
    use_aiofastnet: Optional[bool],
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    **kwargs: Any,
) -> asyncio.Server:
    """``loop.create_server`` through aiofastnet when selected (None: for TLS only)."""
    loop = asyncio.get_running_loop()
    if use_aiofastnet is None and kwargs.get("ssl") is None and not TCP_SERVERS_USE_AIOFASTNET:
        return await loop.create_server(protocol_factory, **kwargs)
    module = aiofastnet_module(use_aiofastnet)
    if module is not None:
        server: asyncio.Server = await module.create_server(loop, protocol_factory, **kwargs)
        return server
    return await loop.create_server(protocol_factory, **kwargs)


def tls_server_takes_shutdown_timeout(loop: asyncio.AbstractEventLoop, unix: bool) -> bool:
    """Whether the TLS server that ``create_server`` makes with ``use_aiofastnet=None`` (or the
    loop's ``create_unix_server``, ``unix``) accepts ``ssl_shutdown_timeout``: aiofastnet's and
    uvloop's do on every Python, asyncio's own loop from Python 3.11 on (before, passing it is
    a TypeError)."""
    if ASYNCIO_HAS_SSL_SHUTDOWN_TIMEOUT or not isinstance(loop, asyncio.BaseEventLoop):
        return True
    return not unix and aiofastnet_module(None) is not None
