"""websockets' threading API (``websockets.sync``) on the femtows engine.

``femtows.websockets.sync.client`` (``connect``, ``reconnect``, ...), ``.server`` (``serve``,
``basic_auth``, ...), ``.router`` (``route``) and ``.connection`` (``Connection``,
``broadcast``) mirror websockets 17.4's modules of the same names.
"""
