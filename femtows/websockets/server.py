"""Server side of the Sans-I/O layer (twin of ``websockets.server``).

The Sans-I/O ``ServerProtocol`` is not provided yet (a later issue). The asyncio server is
:mod:`femtows.websockets.asyncio.server`.
"""

from __future__ import annotations

__all__: list[str] = []
