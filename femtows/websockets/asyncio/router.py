"""Routing connections to handlers by URL: :func:`route`, :func:`unix_route`, :class:`Router`.

Twin of ``websockets.asyncio.router`` (17.4), built on :func:`~.server.serve` and a
:class:`werkzeug.routing.Map` (werkzeug is an optional dependency: ``pip install
femtows[router]``; without it :func:`route` and :func:`unix_route` raise :exc:`ImportError`).

Each rule's endpoint is a connection handler; values captured in the URL become keyword
arguments of the handler. A rule with ``redirect_to`` answers 302 with a ``Location`` header,
a path that matches no rule answers 404, before any WebSocket handshake takes place. A
``process_request`` given by the user runs first; when it returns ``None`` the router routes.
"""

from __future__ import annotations

import http
import ssl as ssl_module
import urllib.parse
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Union

from ..http11 import Request, Response
from ..typing import PathLike

if TYPE_CHECKING:
    from typing import Literal

    from werkzeug.routing import Map

    from .server import Server, ServerConnection

__all__ = ["route", "unix_route", "Router"]

try:
    from werkzeug.exceptions import NotFound
    from werkzeug.routing import RequestRedirect
except ImportError:  # werkzeug is optional: route() and unix_route() say so when called
    _HAVE_WERKZEUG = False
else:
    _HAVE_WERKZEUG = True

ProcessRequest = Callable[
    ["ServerConnection", Request], Union[Awaitable[Optional[Response]], Response, None]
]


def _require_werkzeug(function: str) -> None:
    if not _HAVE_WERKZEUG:
        raise ImportError(
            f"{function}() requires werkzeug: pip install werkzeug (or femtows[router])"
        )


class Router:
    """Dispatches requests to the handlers of a werkzeug URL map (used by :func:`route`).

    Args:
        url_map: the :class:`werkzeug.routing.Map`; every rule is marked ``websocket=True``.
        server_name: host name used to build redirect URLs; ``None`` takes the request's
            ``Host`` header.
        url_scheme: ``"ws"`` or ``"wss"``, the scheme of redirect URLs.

    Subclass it (and pass ``create_router=``) to change how requests are matched, redirected
    or refused.
    """

    def __init__(
        self, url_map: Map, server_name: Optional[str] = None, url_scheme: str = "ws"
    ) -> None:
        self.url_map = url_map
        self.server_name = server_name
        self.url_scheme = url_scheme
        for rule in url_map.iter_rules():
            rule.websocket = True

    def get_server_name(self, connection: ServerConnection, request: Request) -> str:
        """Return the host name to bind the map to: ``server_name`` or the ``Host`` header."""
        if self.server_name is not None:
            return self.server_name
        return request.headers["Host"]

    def redirect(self, connection: ServerConnection, url: str) -> Response:
        """Return the 302 response sending the client to ``url``."""
        response = connection.respond(http.HTTPStatus.FOUND, f"Found at {url}")
        response.headers["Location"] = url
        return response

    def not_found(self, connection: ServerConnection) -> Response:
        """Return the 404 response for a path that matches no rule."""
        return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found")

    def route_request(self, connection: ServerConnection, request: Request) -> Optional[Response]:
        """Match ``request`` against the map.

        On a match, store the endpoint and the URL values on the connection (``handler`` and
        ``handler_kwargs``) and return ``None`` so the handshake goes on; otherwise return the
        redirect or the 404 response.
        """
        adapter = self.url_map.bind(
            server_name=self.get_server_name(connection, request),
            url_scheme=self.url_scheme,
        )
        target = urllib.parse.urlparse(request.path)
        try:
            handler, kwargs = adapter.match(path_info=target.path, query_args=target.query)
        except RequestRedirect as redirect:
            return self.redirect(connection, redirect.new_url)
        except NotFound:
            return self.not_found(connection)
        connection.handler = handler  # type: ignore[attr-defined]
        connection.handler_kwargs = kwargs  # type: ignore[attr-defined]
        return None

    async def handler(self, connection: ServerConnection) -> None:
        """The connection handler given to :func:`serve`: calls the routed endpoint."""
        endpoint: Callable[..., Awaitable[None]] = connection.handler  # type: ignore[attr-defined]
        kwargs: dict[str, Any] = connection.handler_kwargs  # type: ignore[attr-defined]
        await endpoint(connection, **kwargs)


def route(
    url_map: Map,
    *args: Any,
    server_name: Optional[str] = None,
    ssl: Union[ssl_module.SSLContext, Literal[True], None] = None,
    create_router: Optional[type[Router]] = None,
    **kwargs: Any,
) -> Server:
    """Create a WebSocket server dispatching connections to handlers by URL.

    Takes the arguments of :func:`~femtows.websockets.asyncio.server.serve` except the handler,
    which the URL map replaces; returns the same :class:`~.server.Server` (``async with``,
    ``await``, ``serve_forever()``)::

        async def channel(websocket, channel_id):
            ...

        url_map = Map([Rule("/channel/<uuid:channel_id>", endpoint=channel)])
        async with route(url_map, "localhost", 8765) as server:
            await server.serve_forever()

    Args:
        url_map: the :class:`werkzeug.routing.Map` of URL rules to handlers.
        server_name: the server's name as clients see it (for redirect URLs behind a proxy
            that rewrites ``Host``); ``None`` uses the ``Host`` header.
        ssl: an :class:`ssl.SSLContext` to serve TLS, or ``True`` when a reverse proxy
            terminates TLS: redirect URLs then use ``wss://`` without TLS here.
        create_router: a :class:`Router` subclass or factory, to customise routing.

    Raises:
        ImportError: werkzeug is not installed.
    """
    _require_werkzeug("route")
    from .server import serve

    if ssl is not None and ssl is not True:
        kwargs["ssl"] = ssl
    router = (create_router or Router)(url_map, server_name, "ws" if ssl is None else "wss")

    user_process_request: Optional[ProcessRequest] = kwargs.pop("process_request", None)
    process_request: ProcessRequest
    if user_process_request is None:
        process_request = router.route_request
    else:
        first = user_process_request

        async def process_request(
            connection: ServerConnection, request: Request
        ) -> Optional[Response]:
            response = first(connection, request)
            if isinstance(response, Awaitable):
                response = await response
            if response is not None:
                return response
            return router.route_request(connection, request)

    return serve(router.handler, *args, process_request=process_request, **kwargs)


def unix_route(url_map: Map, path: Optional[PathLike] = None, **kwargs: Any) -> Server:
    """Like :func:`route`, on a Unix socket (as :func:`~.server.unix_serve`).

    Args:
        url_map: the :class:`werkzeug.routing.Map` of URL rules to handlers.
        path: the socket's file system path.

    Raises:
        ImportError: werkzeug is not installed.
    """
    _require_werkzeug("unix_route")
    return route(url_map, unix=True, path=path, **kwargs)
