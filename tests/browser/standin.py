"""The workspace's side of a preview: what nginx forwards to once the bot said yes.

``StandIn("OpenVSCode stand-in")`` serves a page whose script opens a WebSocket to ``/ws`` on the
same host and writes the echo into the page; the page also shows who the proxy says the user is
(``X-Devenv-User``) and the names of the cookies that reached the workspace.
"""

from __future__ import annotations

import html

from aiohttp import WSMsgType, web

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>Signed in as <span id="user">{user}</span>.</p>
<p>Cookies that reached the workspace: <span id="cookies">{cookies}</span></p>
<p>WebSocket: <span id="echo">connecting</span></p>
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
const echo = document.getElementById("echo");
ws.onopen = () => ws.send("hello from the browser");
ws.onmessage = (event) => {{ echo.textContent = event.data; }};
ws.onerror = () => {{ echo.textContent = "websocket failed"; }};
</script>
</body></html>
"""


class StandIn:
    def __init__(self, title: str) -> None:
        self.title = title
        self.requests: list[dict[str, str]] = []  # headers of every request that reached the workspace
        self.port = 0
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/{tail:.*}", self._page)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> StandIn:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _page(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        cookies = " ".join(sorted(request.cookies)) or "none"
        return web.Response(text=PAGE.format(title=html.escape(self.title),
                                             user=html.escape(request.headers.get("X-Devenv-User", "nobody")),
                                             cookies=html.escape(cookies)), content_type="text/html")

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        self.requests.append(dict(request.headers))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        user = request.headers.get("X-Devenv-User", "nobody")
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(f"echo: {msg.data} (as {user})")
        return ws
