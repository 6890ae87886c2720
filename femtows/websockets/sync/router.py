"""Routing connections to handlers by URL for the threading API: websockets'
``websockets.sync.router`` (``route``, ``unix_route``, ``Router``), on a
:class:`werkzeug.routing.Map` (optional dependency; without it ``route`` raises ImportError).

Matching, redirects (302) and 404s are the asyncio router's; only the handler is a plain
function here, run in the connection's thread.
"""

from __future__ import annotations

import ssl as ssl_module
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from femtows.websockets.asyncio import router as _arouter
from femtows.websockets.http11 import Request, Response
from femtows.websockets.typing import PathLike

if TYPE_CHECKING:
    from typing import Literal

    from werkzeug.routing import Map

    from .server import Server, ServerConnection

__all__ = ["route", "unix_route", "Router"]


class Router(_arouter.Router):
    """Dispatches requests to the handlers of a werkzeug URL map (used by :func:`route`);
    subclass it and pass ``create_router=`` to customise matching, redirects or 404s."""

    def handler(self, connection: ServerConnection) -> None:  # type: ignore[override]
        """The connection handler given to ``serve``: calls the routed endpoint."""
        endpoint: Callable[..., None] = connection.handler  # type: ignore[attr-defined]
        kwargs: dict[str, Any] = connection.handler_kwargs  # type: ignore[attr-defined]
        endpoint(connection, **kwargs)


def route(
    url_map: Map,
    *args: Any,
    server_name: Optional[str] = None,
    ssl: Union[ssl_module.SSLContext, Literal[True], None] = None,
    create_router: Optional[type[Router]] = None,
    **kwargs: Any,
) -> Server:
    """Create a threading-API server dispatching connections to handlers by URL::

        def channel(websocket, channel_id):
            ...

        url_map = Map([Rule("/channel/<uuid:channel_id>", endpoint=channel)])
        with route(url_map, "localhost", 8765) as server:
            server.serve_forever()

    Takes :func:`~.server.serve`'s arguments except the handler.

    Args:
        url_map: The :class:`werkzeug.routing.Map` of URL rules to handlers.
        server_name: Host name for redirect URLs; None uses the ``Host`` header.
        ssl: An ``ssl.SSLContext`` to serve TLS, or True when a proxy terminates TLS.
        create_router: A :class:`Router` subclass.

    Raises:
        ImportError: werkzeug is not installed.
    """
    _arouter._require_werkzeug("route")
    from .server import serve

    if ssl is not None and ssl is not True:
        kwargs["ssl"] = ssl
    router = (create_router or Router)(url_map, server_name, "ws" if ssl is None else "wss")
    first: Optional[Callable[[Any, Request], Optional[Response]]] = kwargs.pop(
        "process_request", None
    )

    def process_request(connection: ServerConnection, request: Request) -> Optional[Response]:
        if first is not None:
            response = first(connection, request)
            if response is not None:
                return response
        return router.route_request(connection, request)  # type: ignore[arg-type]

    return serve(router.handler, *args, process_request=process_request, **kwargs)


def unix_route(url_map: Map, path: Optional[PathLike] = None, **kwargs: Any) -> Server:
    """Like :func:`route`, on a Unix socket at ``path``.

    Raises:
        ImportError: werkzeug is not installed.
    """
    _arouter._require_werkzeug("unix_route")
    return route(url_map, unix=True, path=path, **kwargs)
