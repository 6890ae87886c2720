"""Loggers: ``femtows.client`` / ``femtows.server`` and one child per connection.

The per-connection children are built by hand and never registered in the logging manager:
``logging.getLogger(f"...{n}")`` would keep every connection's logger alive forever (a leak
picows once had with long-running servers). A server's children are built lazily, when a
record is first logged through them (:class:`_LazyChildLogger`).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, Optional, Union

FEMTOWS_DEBUG_LL = 9
"""Log level of femtows's byte-level traces (below DEBUG): ``logging.getLogger("femtows")
.setLevel(femtows.FEMTOWS_DEBUG_LL)``."""

logging.addLevelName(FEMTOWS_DEBUG_LL, "FEMTOWS_DEBUG")

LoggerLike = Union[str, logging.Logger, logging.LoggerAdapter, None]  # type: ignore[type-arg]

_ids = itertools.count(1)


def connection_logger(
    logger_name: LoggerLike, default: str
) -> logging.Logger | logging.LoggerAdapter:  # type: ignore[type-arg]
    """The logger for one new (client) connection.

    Args:
        logger_name: None (use ``default``), a str (``femtows.<str>``), a Logger (its child is
            used) or a LoggerAdapter (used as it is).
        default: ``"client"`` or ``"server"``.
    """
    logger = connection_logger_factory(logger_name, default)()
    return logger.logger if isinstance(logger, _LazyChildLogger) else logger


class _LazyChildLogger:
    """A connection's child logger ``<parent>.<n>``, built only when a record is logged
    through it (most connections of a server never log anything: a Logger is ~600 bytes).

    ``n`` is taken when the connection starts, so names follow connection order as before.
    Enabled-ness is the parent's effective level, which is what an unconfigured child has.
    """

    __slots__ = ("_parent", "_n", "_child")

    def __init__(self, parent: logging.Logger, n: int) -> None:
        self._parent = parent
        self._n = n
        self._child: Optional[logging.Logger] = None

    @property
    def name(self) -> str:
        return f"{self._parent.name}.{self._n}"

    @property
    def logger(self) -> logging.Logger:
        """The real child logger (built now if it was not)."""
        child = self._child
        if child is None:
            child = self._child = logging.Logger(self.name)
            child.parent = self._parent
        return child

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging's name)
        if self._child is not None:
            return self._child.isEnabledFor(level)
        parent = self._parent
        if not parent.disabled:
            return parent.isEnabledFor(level)
        # A disabled parent still passes on its children's records.
        return parent.manager.disable < level and level >= parent.getEffectiveLevel()

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.logger.log(level, msg, *args, **kwargs)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(logging.DEBUG):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.logger.debug(msg, *args, **kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(logging.INFO):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.logger.info(msg, *args, **kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(logging.WARNING):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.logger.warning(msg, *args, **kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(logging.ERROR):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.logger.error(msg, *args, **kwargs)

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if self.isEnabledFor(logging.ERROR):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.logger.error(msg, *args, exc_info=exc_info, **kwargs)

    def critical(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(logging.CRITICAL):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.logger.critical(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Anything else (handlers, getEffectiveLevel, ...) is the real child's.
        return getattr(self.logger, name)

    def __repr__(self) -> str:
        return f"<connection logger {self.name}>"


ConnectionLogger = Union[logging.Logger, logging.LoggerAdapter, _LazyChildLogger]  # type: ignore[type-arg]


def connection_logger_factory(
    logger_name: LoggerLike, default: str
) -> Callable[[], ConnectionLogger]:
    """:func:`connection_logger` for a server: the parent is looked up once, when the server
    starts, and each call returns the logger for one new connection."""
    if isinstance(logger_name, logging.LoggerAdapter):
        adapter = logger_name
        return lambda: adapter
    if isinstance(logger_name, logging.Logger):
        parent = logger_name
    else:
        parent = logging.getLogger(f"femtows.{logger_name or default}")

    def new_child() -> _LazyChildLogger:
        return _LazyChildLogger(parent, next(_ids))

    return new_child
