"""The HTTP server's own limits: how long a request may take to arrive, how many connections stay open.

aiohttp waits for a request's headers as long as its keep-alive timeout (an hour by default) and
keeps any number of connections, so a few thousand half-sent requests would hold the bot's file
descriptors until /healthz stops answering. Here the keep-alive timeout becomes the header timeout
(``DEVENV_READ_TIMEOUT``: a connection that has not sent a whole request's headers by then is closed)
and at most ``DEVENV_MAX_CONNECTIONS`` connections stay open: a new one beyond that closes the oldest
connection that has no request being handled. A delivery's body has the same timeout
(:mod:`bot.core.web`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from bot.settings.config import Settings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConnectionCap:
    """Keeps a server's connections at most ``limit``, closing the oldest idle one to let a new one in."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy: set[RequestHandler] = set()  # connections with a request being handled (held only meanwhile)
        self.closed = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol
        self.busy.add(protocol)
        try:
            return await handler(request)
        finally:
            self.busy.discard(protocol)

    def watch(self, server: web.Server) -> None:
        made = server.connection_made

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._make_room(server, handler)

        server.connection_made = connection_made  # type: ignore[method-assign]

    def _make_room(self, server: web.Server, newcomer: RequestHandler) -> None:
        connections = server.connections
        if len(connections) <= self.limit:
            return
        idle = [c for c in connections if c is not newcomer and c not in self.busy]
        victim = idle[0] if idle else newcomer  # oldest first: dicts keep the order connections came in
        if self.closed % 100 == 0:
            log.warning("more than %d connections (DEVENV_MAX_CONNECTIONS): closing the oldest idle one "
                        "(%d closed so far)", self.limit, self.closed)
        self.closed += 1
        victim.force_close()


class GuardedRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose server keeps to a :class:`ConnectionCap`."""

    def __init__(self, app: web.Application, cap: ConnectionCap, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.cap = cap

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        self.cap.watch(server)
        return server


def make_runner(app: web.Application, settings: Settings, **kwargs: Any) -> GuardedRunner:
    """The runner every listener uses (``devenv-bot serve`` and the tests), with the limits above."""
    cap = ConnectionCap(settings.max_connections)
    app.middlewares.append(cap.middleware)
    return GuardedRunner(app, cap, keepalive_timeout=settings.read_timeout, **kwargs)
