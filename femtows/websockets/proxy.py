"""Proxy addresses (twin of ``websockets.proxy``): re-exports from :mod:`.uri`."""

from __future__ import annotations

from .uri import Proxy, get_proxy, parse_proxy

__all__ = ["get_proxy", "parse_proxy", "Proxy"]
