"""websockets asyncio API on femtows (mirrors ``websockets.asyncio``)."""
