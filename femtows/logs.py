"""Loggers: ``femtows.client`` / ``femtows.server`` and one child per connection.

The per-connection children are built by hand and never registered in the logging manager:
``logging.getLogger(f"...{n}")`` would keep every connection's logger alive forever (a leak
picows once had with long-running servers).
"""

from __future__ import annotations

import itertools
import logging
from typing import Callable, Union

FEMTOWS_DEBUG_LL = 9
"""Log level of femtows's byte-level traces (below DEBUG): ``logging.getLogger("femtows")
.setLevel(femtows.FEMTOWS_DEBUG_LL)``."""

logging.addLevelName(FEMTOWS_DEBUG_LL, "FEMTOWS_DEBUG")

LoggerLike = Union[str, logging.Logger, logging.LoggerAdapter, None]  # type: ignore[type-arg]

_ids = itertools.count(1)


def connection_logger(
    logger_name: LoggerLike, default: str
) -> logging.Logger | logging.LoggerAdapter:  # type: ignore[type-arg]
    """The logger for one new connection.

    Args:
        logger_name: None (use ``default``), a str (``femtows.<str>``), a Logger (its child is
            used) or a LoggerAdapter (used as it is).
        default: ``"client"`` or ``"server"``.
    """
    return connection_logger_factory(logger_name, default)()


def connection_logger_factory(
    logger_name: LoggerLike, default: str
) -> Callable[[], Union[logging.Logger, logging.LoggerAdapter]]:  # type: ignore[type-arg]
    """:func:`connection_logger` for a server: the parent is looked up once, when the server
    starts, and each call returns the logger for one new connection."""
    if isinstance(logger_name, logging.LoggerAdapter):
        adapter = logger_name
        return lambda: adapter
    if isinstance(logger_name, logging.Logger):
        parent = logger_name
    else:
        parent = logging.getLogger(f"femtows.{logger_name or default}")
    prefix = parent.name + "."

    def new_child() -> logging.Logger:
        child = logging.Logger(f"{prefix}{next(_ids)}")
        child.parent = parent
        return child

    return new_child
