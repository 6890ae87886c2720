"""The background event loop shared by every ``femtows.websockets.sync`` connection (internal).

One daemon thread per process runs an asyncio event loop; connections and servers of the
threading API live on it (the asyncio drop-in and the Cython engine do the protocol work).
User threads hand work to it with ``run`` (a coroutine, waiting for its result) and
``call`` (a plain function, waiting for its result). See docs/internals.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import Any, Callable, Coroutine, Optional, TypeVar

__all__ = ["get_loop", "run", "call", "in_loop_thread"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: Optional[asyncio.AbstractEventLoop] = None
_thread: Optional[threading.Thread] = None


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


def _new_loop() -> asyncio.AbstractEventLoop:
    # FEMTOWS_SYNC_LOOP=asyncio|uvloop (default: uvloop when installed).
    choice = os.environ.get("FEMTOWS_SYNC_LOOP", "uvloop")
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def get_loop() -> asyncio.AbstractEventLoop:
    """The shared loop, started on first use."""
    global _loop, _thread
    loop = _loop
    if loop is not None:
        return loop
    with _lock:
        if _loop is None:
            loop = _new_loop()
            thread = threading.Thread(
                target=_serve, args=(loop,), name="femtows.websockets.sync", daemon=True
            )
            thread.start()
            _loop, _thread = loop, thread
        return _loop


def _after_fork() -> None:
    # The loop thread does not exist in a forked child: start a new one on first use.
    global _loop, _thread, _lock
    _loop, _thread, _lock = None, None, threading.Lock()


if hasattr(os, "register_at_fork"):  # pragma: no branch
    os.register_at_fork(after_in_child=_after_fork)


def in_loop_thread() -> bool:
    """True when called from the shared loop's thread."""
    return _thread is not None and threading.current_thread() is _thread


def _check_thread() -> None:
    if in_loop_thread():
        raise RuntimeError(
            "blocking femtows.websockets.sync call made from its event loop thread "
            "(e.g. inside process_request); this would deadlock"
        )


def run(coro: Coroutine[Any, Any, T], timeout: Optional[float] = None) -> T:
    """Run ``coro`` on the shared loop; return its result or raise its exception."""
    _check_thread()
    future = asyncio.run_coroutine_threadsafe(coro, get_loop())
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError as exc:
        future.cancel()
        if isinstance(exc, TimeoutError):
            raise
        # Before 3.11 concurrent.futures.TimeoutError is not the builtin TimeoutError, which
        # is what callers (wait_closed(timeout)) catch and what websockets.sync raises.
        raise TimeoutError(*exc.args) from None


def call(function: Callable[..., T], *args: Any) -> T:
    """Call ``function(*args)`` on the shared loop; return its result or raise its exception."""
    _check_thread()
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def target() -> None:
        try:
            result = function(*args)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    get_loop().call_soon_threadsafe(target)
    return future.result()
