"""Argument checks shared by ``ws_connect`` and ``ws_create_server``.

They run once, when the call is made, so a bad value is reported to the caller instead of
failing every connection later.
"""

from __future__ import annotations

from typing import Optional, Union

from femtows._core.core import WSAutoPingStrategy
from femtows.handshake import WSDeflateConfig

__all__ = ["check_auto_ping", "check_compression"]


def check_compression(
    compression: Union[None, str, WSDeflateConfig], is_client: bool
) -> Optional[WSDeflateConfig]:
    """Validate ``compression=``: None (off), ``"deflate"`` (this side's defaults) or a
    ``WSDeflateConfig``. Returns the configuration to negotiate, or None.

    Raises:
        ValueError: anything else, or a configuration this side cannot use.
    """
    if compression is None:
        return None
    if compression == "deflate":
        return WSDeflateConfig.client() if is_client else WSDeflateConfig.server()
    if isinstance(compression, WSDeflateConfig):
        compression.check_role(is_client)
        return compression
    raise ValueError(
        f"compression must be None, 'deflate' or a WSDeflateConfig, got {compression!r}"
    )


def check_auto_ping(
    enable_auto_ping: bool,
    auto_ping_idle_timeout: float,
    auto_ping_reply_timeout: float,
    auto_ping_strategy: WSAutoPingStrategy,
) -> WSAutoPingStrategy:
    """Validate the auto-ping keywords and return the strategy as a ``WSAutoPingStrategy``.

    Raises:
        ValueError: a timeout is not a positive number, the reply timeout exceeds the idle
            timeout (the next ping would be due before the previous one timed out), or the
            strategy is unknown.
    """
    # Cython's cpdef enums accept any int (WSAutoPingStrategy(7) succeeds): check the members.
    known = (WSAutoPingStrategy.PING_WHEN_IDLE, WSAutoPingStrategy.PING_PERIODICALLY)
    if isinstance(auto_ping_strategy, bool) or auto_ping_strategy not in known:
        raise ValueError(
            f"auto_ping_strategy must be a WSAutoPingStrategy, got {auto_ping_strategy!r}"
        )
    strategy = WSAutoPingStrategy(auto_ping_strategy)
    if not enable_auto_ping:
        return strategy
    for name, value in (("auto_ping_idle_timeout", auto_ping_idle_timeout),
                        ("auto_ping_reply_timeout", auto_ping_reply_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if auto_ping_reply_timeout > auto_ping_idle_timeout:
        raise ValueError(
            f"auto_ping_reply_timeout ({auto_ping_reply_timeout}) must be <= "
            f"auto_ping_idle_timeout ({auto_ping_idle_timeout})"
        )
    return strategy
