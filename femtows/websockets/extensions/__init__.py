"""websockets-compatible extension API (``websockets.extensions``): the base classes and
permessage-deflate. Negotiation itself lives in :mod:`femtows.handshake`, shared with the core."""

from .base import ClientExtensionFactory, Extension, ServerExtensionFactory

__all__ = ["Extension", "ClientExtensionFactory", "ServerExtensionFactory"]
