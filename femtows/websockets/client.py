"""Client helpers shared by the I/O layers: :func:`process_exception` and :func:`backoff`.

Twins of the functions of ``websockets.client`` (17.4) that ``connect()``'s reconnection loop
(``async for ws in connect(...)``) relies on. The Sans-I/O ``ClientProtocol`` is not provided
yet (a later issue).

The backoff delays come from the environment like websockets:
``WEBSOCKETS_BACKOFF_INITIAL_DELAY`` (5 s), ``WEBSOCKETS_BACKOFF_MIN_DELAY`` (3.1 s),
``WEBSOCKETS_BACKOFF_MAX_DELAY`` (90 s), ``WEBSOCKETS_BACKOFF_FACTOR`` (1.618).
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Generator, Optional

from .exceptions import InvalidMessage, InvalidStatus

__all__ = ["process_exception", "backoff"]

# Status codes after which trying again may succeed: server or proxy trouble.
_RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


def process_exception(exc: Exception) -> Optional[Exception]:
    """Decide whether a failed connection attempt is worth retrying.

    Used by the reconnection loop ``async for ws in connect(...)`` unless ``connect()`` is
    given its own ``process_exception``. Returns ``None`` to retry (the error is logged at INFO
    level) or an exception to raise, which ends the loop.

    Retried: :exc:`OSError` and :exc:`TimeoutError` (network trouble, including proxy
    connection errors), :exc:`~femtows.websockets.exceptions.InvalidMessage` caused by an
    :exc:`EOFError` (the connection dropped during the handshake), and
    :exc:`~femtows.websockets.exceptions.InvalidStatus` with status 500, 502, 503 or 504.
    Everything else is returned as is (fatal).
    """
    if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError)):
        return None
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
        return None
    if isinstance(exc, InvalidStatus) and exc.response.status_code in _RETRYABLE_STATUS:
        return None
    return exc


BACKOFF_INITIAL_DELAY = float(os.environ.get("WEBSOCKETS_BACKOFF_INITIAL_DELAY", "5"))
BACKOFF_MIN_DELAY = float(os.environ.get("WEBSOCKETS_BACKOFF_MIN_DELAY", "3.1"))
BACKOFF_MAX_DELAY = float(os.environ.get("WEBSOCKETS_BACKOFF_MAX_DELAY", "90.0"))
BACKOFF_FACTOR = float(os.environ.get("WEBSOCKETS_BACKOFF_FACTOR", "1.618"))


def backoff(
    initial_delay: float = BACKOFF_INITIAL_DELAY,
    min_delay: float = BACKOFF_MIN_DELAY,
    max_delay: float = BACKOFF_MAX_DELAY,
    factor: float = BACKOFF_FACTOR,
) -> Generator[float, None, None]:
    """Yield the delays (seconds) to wait between reconnection attempts, forever.

    First a random delay in ``[0, initial_delay)`` (RFC 6455 §7.2.3: spread reconnections
    after an outage), then ``min_delay`` multiplied by ``factor`` at each attempt while it is
    below ``max_delay``, then ``max_delay`` forever.
    """
    yield random.random() * initial_delay
    delay = min_delay
    while delay < max_delay:
        yield delay
        delay *= factor
    while True:
        yield max_delay
