"""Type stubs for the compiled Sans-I/O frame engine (femtows/websockets/_sansio.pyx)."""

from typing import Any, Callable

from femtows._core.core import WSListener, WSProtocolCore

class FrameEngine(WSListener):
    core: WSProtocolCore
    on_frame: Callable[[int, bytes, bool, bool, bool, bool], None]
    def set_fail_hook(self, hook: Callable[[int, str, bytes | None], str]) -> None: ...
    def stop(self) -> None: ...
    def set_mask_pool(self, pool: bytes) -> None: ...
    def feed(self, data: Any) -> None: ...
    def send_frame(
        self,
        opcode: int,
        data: Any,
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> None: ...
