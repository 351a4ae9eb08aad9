"""The bot's authenticating reverse proxy for preview hosts (Cloudflare Tunnel API mode).

Without an ingress controller nothing calls the bot's forward auth, so the Cloudflare Tunnel
routes the IDE's host ``code-<id>.<domain>`` (and, with ``DEVENV_CLOUDFLARE_PROXY_PREVIEWS``,
every app port's host) to the bot itself (``DEVENV_CLOUDFLARE_AUTH_PROXY``). cloudflared keeps
the browser's ``Host`` header, which says which workspace and port is asked for.

A middleware on the bot's application picks out requests whose ``Host`` is one label under
``DEVENV_PREVIEW_DOMAIN``; every other request (the bot's own host: webhooks, login, metrics)
goes to the bot's routes as before. For a preview host:

* ``/_devenv/...`` is the bot's own (the sign-in handoff that sets the host-only cookie);
* everything else first gets **the same decision as** ``/auth/check`` -- the very handler is
  called, as Traefik's ForwardAuth would call it (``X-Forwarded-Host/Uri/Proto`` set by the
  bot, the client's own copies dropped): not signed in → 302 to the login with ``rd``; signed
  in without the permission → the page saying why (403); stopped or starting → the page saying
  so (503); a WebSocket or an unsafe method from another origin (a sibling preview's page) →
  403 (:mod:`bot.access.origin`). Only a 200 goes on;
* then the request is proxied to the workspace Service, ``http://devenv-<id>.<ns>.svc:<port>``
  (the resolver is injectable, for tests): any method, bodies streamed both ways and never
  decompressed, hop-by-hop headers dropped, ``X-Forwarded-*`` and the ``X-Devenv-User*``
  headers of the decision set (the browser's own copies dropped). **The bot's cookies for the
  host are removed** from the upstream request, so the PR's code never receives the proof of
  identity; an upstream ``Set-Cookie`` for that name is dropped too;
* a WebSocket handshake is checked the same way once, then bridged: ``ClientSession.ws_connect``
  upstream, :class:`aiohttp.web.WebSocketResponse` to the browser, text and binary messages
  both ways (each at most ``WS_MAX_MESSAGE``, 16 MiB: a bigger one closes both sides with 1009),
  and a close on either side closes the other with the same code.

While a bridged WebSocket's browser sends messages, it counts as use of the environment once a
minute (:data:`WS_ACTIVITY_EVERY`; the IDE's own keep-alives are such messages, so an open IDE tab
counts).  Revoking access does not close open WebSockets (as with ingress-nginx); stopping the
workspace does. The proxy's client session keeps no cookies (:class:`aiohttp.DummyCookieJar`), so one
user's upstream cookies are never sent on another's behalf.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict
from yarl import URL

from bot.access.forward_auth import check
from bot.access.hosts import preview_label
from bot.access.service import Access
from bot.cluster.workspace import CODE_PORT, CODE_PORT_NAME, HANDOFF_PATH
from bot.text.templating import render

log = logging.getLogger(__name__)

__all__ = ["PREVIEW_PROXY_KEY", "PreviewProxy", "Resolver", "install", "workspace_upstream"]

#: ``(ws id, port name) -> "http://host:port"`` (no path), or None when there is no such port.
Resolver = Callable[[str, str], "str | None | Awaitable[str | None]"]

#: RFC 9110 §7.6.1 connection-specific fields, never forwarded in either direction.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
#: Set by the proxy itself; a browser's own values are dropped.
OWN_REQUEST_HEADERS = frozenset({"host", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
                                 "x-forwarded-port", "x-forwarded-uri", "x-forwarded-method", "x-original-url",
                                 "x-original-method", "forwarded", "x-devenv-user", "x-devenv-user-id",
                                 "x-devenv-permission", "expect"})
WEBSOCKET_HANDSHAKE = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                                 "sec-websocket-protocol", "sec-websocket-accept"})
DECISION_HEADERS = ("X-Devenv-User", "X-Devenv-User-Id", "X-Devenv-Permission")
#: Close codes that may be sent in a close frame (RFC 6455 §7.4); others become 1000.
_SENDABLE = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))
_MAX_CHECKED_URI = 2048
#: The largest WebSocket message bridged either way; a bigger one closes both sides with 1009
#: (message too big). aiohttp reassembles a whole message before passing it on, so without a
#: cap one message from the PR's app (or a browser) could take as much of the bot's memory as it
#: liked. VS Code's own messages stay far below this. (aiohttp refuses a message of exactly its
#: ``max_msg_size``, hence the + 1 where it is passed.)
WS_MAX_MESSAGE = 16 * 1024 * 1024
#: A bridged WebSocket whose browser sends messages notes use of its environment at most this often
#: (seconds): an open IDE tab keeps its environment alive, a tab left without traffic does not.
WS_ACTIVITY_EVERY = 60.0

PREVIEW_PROXY_KEY: web.AppKey[PreviewProxy] = web.AppKey("preview_proxy")


def _connection_tokens(headers: Any) -> set[str]:
    return {t.strip().lower() for v in headers.getall("Connection", []) for t in v.split(",") if t.strip()}


def workspace_upstream(manager: Any, exposure: Any) -> Resolver:
    """The default resolver: the workspace Service of :mod:`bot.exposure` in ``DEVENV_NAMESPACE``,
    at the IDE's port 10800 or the port a PR's ``.github/devenv.yml`` declares under that name."""

    def resolve(ws_id: str, port: str) -> str | None:
        record = manager.records.get(ws_id) if manager is not None else None
        if record is None:
            return None
        number: Any = CODE_PORT
        if port != CODE_PORT_NAME:
            number = next((p.get("port") for p in record.ports or [] if p.get("name") == port), None)
        if not isinstance(number, int):
            return None
        return f"http://devenv-{ws_id}.{exposure.namespace}.svc:{number}"

    return resolve


class PreviewProxy:
    """Checks and proxies requests for preview hosts; ``resolve`` may be replaced (tests)."""

    def __init__(self, access: Access, resolve: Resolver, *, connect_timeout: float = 10.0,
                 ws_close_timeout: float = 10.0, ws_max_message: int = WS_MAX_MESSAGE,
                 ws_activity_every: float = WS_ACTIVITY_EVERY) -> None:
        self.access = access
        self.ws_activity_every = ws_activity_every
        self.ws_max_message = ws_max_message
        self.resolve = resolve
        self.connect_timeout = connect_timeout
        self.ws_close_timeout = ws_close_timeout
        self.session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ lifecycle

    def _client(self) -> aiohttp.ClientSession:
        """The proxy's own client session, made on first use (inside the running loop)."""
        if self.session is None:
            self.session = aiohttp.ClientSession(
                auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
                connector=aiohttp.TCPConnector(limit=1000),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout))
        return self.session

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    # ------------------------------------------------------------------ routing

    def preview_host(self, request: web.BaseRequest) -> str | None:
        """The lower-case preview host this request is for, or None for the bot's own host."""
        try:
            host = (urlsplit(f"//{request.host}").hostname or "").lower().rstrip(".")
        except ValueError:
            return None
        return host if preview_label(host, self.access.settings.preview_domain) is not None else None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        host = self.preview_host(request)
        if host is None or request.path.startswith(HANDOFF_PATH):
            return await handler(request)
        return await self.handle(request, host)

    async def handle(self, request: web.Request, host: str) -> web.StreamResponse:
        decision = await self._check(request)
        if decision.status != 200:
            return decision  # the login redirect, or the page saying why not / that it is stopped
        split = self.access.port_and_workspace(host)
        assert split is not None  # the check answered 200, so it parsed
        port, ws_id = split
        base = self.resolve(ws_id, port)
        if inspect.isawaitable(base):
            base = await base
        if not base:
            return _page(404, "No such preview", f"The environment has no port named {port!r}.")
        extra = {name: decision.headers[name] for name in DECISION_HEADERS if name in decision.headers}
        if request.headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in _connection_tokens(
                request.headers) and request.method == "GET":
            return await self._websocket(request, host, base, extra, self._toucher(ws_id, port))
        return await self._http(request, host, base, extra)

    async def _check(self, request: web.Request) -> web.StreamResponse:
        """``/auth/check``'s own answer, asked as Traefik's ForwardAuth asks it (it redirects itself
        and shows its pages), with the forwarded headers set here and never taken from the client."""
        headers = CIMultiDict((k, v) for k, v in request.headers.items()
                              if k.lower() not in OWN_REQUEST_HEADERS or k.lower() == "host")
        uri = request.raw_path if len(request.raw_path) <= _MAX_CHECKED_URI else request.rel_url.raw_path
        if len(uri) > _MAX_CHECKED_URI:
            uri = "/"
        headers["X-Forwarded-Host"] = request.host
        headers["X-Forwarded-Proto"] = self.access.settings.preview_scheme
        headers["X-Forwarded-Method"] = request.method
        headers["X-Forwarded-Uri"] = uri
        return await check(request.clone(headers=headers))

    # ------------------------------------------------------------------ headers

    def _own_cookies(self, host: str) -> set[str]:
        sessions = self.access.sessions
        return {sessions.host_cookie(host), sessions.session_cookie, sessions.login_cookie}

    def _cookie_header(self, request: web.BaseRequest, host: str) -> str | None:
        """The browser's cookies without the bot's (its proof of identity never reaches PR code)."""
        own = self._own_cookies(host)
        kept = []
        for header in request.headers.getall("Cookie", []):
            for part in header.split(";"):
                name = part.strip().partition("=")[0].strip()
                if part.strip() and name not in own and not self.access.sessions.is_bot_cookie(name):
                    kept.append(part.strip())
        return "; ".join(kept) or None

    def _upstream_headers(self, request: web.BaseRequest, host: str, extra: dict[str, str], *,
                          websocket: bool = False) -> CIMultiDict[str]:
        drop = HOP_BY_HOP | OWN_REQUEST_HEADERS | _connection_tokens(request.headers) | {"cookie"}
        if websocket:
            drop |= WEBSOCKET_HANDSHAKE
        out: CIMultiDict[str] = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in drop)
        cookies = self._cookie_header(request, host)
        if cookies:
            out["Cookie"] = cookies
        out["Host"] = request.host  # as ingress-nginx does: the app sees the public host
        forwarded_for = request.headers.get("X-Forwarded-For")  # cloudflared sets it to the visitor's address
        remote = request.remote or ""
        out["X-Forwarded-For"] = f"{forwarded_for}, {remote}" if forwarded_for and remote else (forwarded_for
                                                                                                 or remote)
        if not out["X-Forwarded-For"]:
            del out["X-Forwarded-For"]
        out["X-Forwarded-Host"] = request.host
        out["X-Forwarded-Proto"] = self.access.settings.preview_scheme
        out.update(extra)
        return out

    def _response_headers(self, upstream: aiohttp.ClientResponse, host: str) -> CIMultiDict[str]:
        drop = HOP_BY_HOP | _connection_tokens(upstream.headers)
        own = self._own_cookies(host)
        out: CIMultiDict[str] = CIMultiDict()
        for k, v in upstream.headers.items():
            if k.lower() in drop:
                continue
            name = v.partition("=")[0].strip()
            if k.lower() == "set-cookie" and (name in own or self.access.sessions.is_bot_cookie(name)):
                log.warning("the preview %s tried to set the bot's own cookie; dropped", host)
                continue
            out.add(k, v)
        return out

    # ------------------------------------------------------------------ HTTP

    async def _http(self, request: web.Request, host: str, base: str, extra: dict[str, str]) -> web.StreamResponse:
        session = self._client()
        headers = self._upstream_headers(request, host, extra)
        data = request.content if request.body_exists else None
        url = URL(base.rstrip("/") + request.raw_path, encoded=True)
        try:
            upstream_cm = session.request(
                request.method, url, headers=headers, data=data, allow_redirects=False,
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"))
            async with upstream_cm as upstream:
                resp = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                          headers=self._response_headers(upstream, host))
                await resp.prepare(request)
                try:
                    async for chunk in upstream.content.iter_any():
                        await resp.write(chunk)
                    await resp.write_eof()
                except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                    # Half-sent: the only honest thing left is to drop the connection.
                    log.info("preview %s: the response broke off (%s)", host, exc.__class__.__name__)
                    if request.transport is not None:
                        request.transport.close()
                return resp
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.info("preview %s: upstream %s did not answer: %s", host, base, exc.__class__.__name__)
            return _unreachable(host)

    # ------------------------------------------------------------------ WebSocket

    def _toucher(self, ws_id: str, port: str) -> Callable[[], None]:
        """What a message from the browser calls: notes use of ``ws_id`` at most every ``ws_activity_every`` s."""
        source = "ide" if port == CODE_PORT_NAME else "preview"
        last = [self.access.clock()]  # the handshake passed the check, which noted it

        def touch() -> None:
            now = self.access.clock()
            if now - last[0] >= self.ws_activity_every:
                last[0] = now
                self.access.directory.record_activity(ws_id, now, source)

        return touch

    async def _websocket(self, request: web.Request, host: str, base: str,
                         extra: dict[str, str], touch: Callable[[], None]) -> web.StreamResponse:
        session = self._client()
        headers = self._upstream_headers(request, host, extra, websocket=True)
        protocols = [p.strip() for v in request.headers.getall("Sec-WebSocket-Protocol", [])
                     for p in v.split(",") if p.strip()]
        url = URL(base.rstrip("/") + request.raw_path, encoded=True)
        try:
            upstream = await session.ws_connect(
                url, headers=headers, protocols=protocols, autoclose=False, autoping=True,
                max_msg_size=self.ws_max_message + 1,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.ws_close_timeout))
        except aiohttp.WSServerHandshakeError as exc:
            log.info("preview %s: the WebSocket was refused upstream (%s)", host, exc.status)
            return _page(exc.status if 400 <= exc.status < 600 else 502, "The preview refused the connection",
                         "The application in the environment did not accept this WebSocket.")
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.info("preview %s: upstream %s did not answer: %s", host, base, exc.__class__.__name__)
            return _unreachable(host)
        browser = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (),
                                        autoclose=False, autoping=True, max_msg_size=self.ws_max_message + 1,
                                        timeout=self.ws_close_timeout)
        try:
            await browser.prepare(request)
            await self._bridge(browser, upstream, touch)
        finally:
            await upstream.close()
        return browser

    async def _bridge(self, browser: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse,
                      touch: Callable[[], None]) -> None:
        to_upstream = asyncio.ensure_future(_pump(browser, upstream, touch))
        to_browser = asyncio.ensure_future(_pump(upstream, browser))
        try:
            done, _ = await asyncio.wait({to_upstream, to_browser}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (to_upstream, to_browser):
                if not task.done():
                    task.cancel()
            await asyncio.gather(to_upstream, to_browser, return_exceptions=True)
        first = to_upstream if to_upstream in done else to_browser
        code, reason = first.result() if not first.cancelled() and first.exception() is None else (1011, "")
        code = code if code in _SENDABLE else 1000
        other = upstream if first is to_upstream else browser
        source = browser if first is to_upstream else upstream
        await other.close(code=code, message=reason.encode()[:123])
        await source.close(code=code)


async def _pump(src: Any, dst: Any, touch: Callable[[], None] = lambda: None) -> tuple[int, str]:
    """Copy messages from ``src`` to ``dst`` until ``src`` closes; returns its close code and reason.
    ``touch`` is called for each text or binary message (the browser's: use of the environment)."""
    while True:
        msg = await src.receive()
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            touch()
        if msg.type is WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        elif msg.type is WSMsgType.CLOSE:
            return int(msg.data or 1000), str(msg.extra or "")
        elif msg.type in (WSMsgType.PING, WSMsgType.PONG):
            continue
        elif msg.type is WSMsgType.ERROR and isinstance(getattr(msg.data, "code", None), int):
            return msg.data.code, ""  # a protocol error, e.g. 1009 for a message over the cap
        else:  # CLOSING, CLOSED, ERROR: gone without a close frame
            return (src.close_code or 1006), ""


def _page(status: int, title: str, message: str) -> web.Response:
    resp = web.Response(status=status, text=render("access_error.html", title=title, message=message,
                                                   retry_url=None), content_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _unreachable(host: str) -> web.Response:
    return _page(502, "The preview is not answering",
                 f"Nothing in the environment answered for {host}: the application may still be starting, or "
                 "not listening on the port its link names. Try again in a moment.")


def install(app: web.Application, access: Access, resolve: Resolver) -> PreviewProxy:
    """Put the proxy in front of ``app``'s routes for preview hosts; the bot's own host is untouched."""
    proxy = PreviewProxy(access, resolve)
    app[PREVIEW_PROXY_KEY] = proxy
    app.middlewares.append(proxy.middleware)

    async def on_cleanup(_app: web.Application) -> None:
        await proxy.close()

    app.on_cleanup.append(on_cleanup)
    return proxy
