"""``/auth/check``: the forward-auth endpoint a proxy asks before serving a preview request.

Called by ingress-nginx (``auth-url``; the page asked for comes in ``X-Original-URL``) and by
Traefik's ForwardAuth (``X-Forwarded-Host/Uri/Proto``).  It answers 401 without a valid host
cookie (nginx then redirects to ``auth-signin``; Traefik has no sign-in hook, so a Traefik-style
call gets the 302 itself), 200 for an allowed user, with ``X-Devenv-User``, ``X-Devenv-User-Id``
and ``X-Devenv-Permission`` for the upstream.

A signed-in user who may not open the preview gets a page saying why (403; 503 when GitHub does
not answer), and an allowed user whose environment is stopped (or waking) a page saying so and
how to wake it, instead of the proxy's 502.  Traefik gets these pages from ``/auth/check``
itself.  ingress-nginx shows its own bare page for a 403 and drops the auth answer's body, so it
gets a 401 instead: it sends the browser to ``/auth/login``, which knows the browser by its
bot-host session, decides again and shows the page there (:mod:`bot.access.signin`).

A WebSocket handshake or an unsafe method from another origin (a sibling preview's page) is refused
with 403 before any cookie is read, for every proxy (:mod:`bot.access.origin`).
"""

from __future__ import annotations

from aiohttp import web

from bot.access.directory import STARTING_STATES, STOPPED_STATES, workspace_state
from bot.access.hosts import IDE_PORT, PreviewTarget, parse_return_url
from bot.access.origin import cross_site_refusal
from bot.access.pages import error, paused_page, refusal_page, wake_url
from bot.access.service import ACCESS_KEY, Access, AccessDecision
from bot.settings.access import AccessSettings

__all__ = ["check"]


def _original(request: web.Request, access: AccessSettings) -> tuple[PreviewTarget | None, bool]:
    """The preview URL being asked for, and whether the caller looks like Traefik."""
    headers = request.headers
    original = headers.get("X-Original-URL")
    if original:  # ingress-nginx / nginx auth_request: the one header nginx itself sets
        return parse_return_url(original, access), False
    forwarded_host = headers.get("X-Forwarded-Host")
    if forwarded_host:  # Traefik ForwardAuth
        proto = (headers.get("X-Forwarded-Proto") or access.preview_scheme).lower()
        uri = headers.get("X-Forwarded-Uri") or "/"
        return parse_return_url(f"{proto}://{forwarded_host}{uri}", access), "X-Forwarded-Uri" in headers
    return None, False


def _unauthorized(text: str) -> web.Response:
    """A 401 that sends ingress-nginx's browser to ``/auth/login`` (its text is never shown)."""
    return web.Response(status=401, text=text, headers={"Cache-Control": "no-store"})


def _allowed(decision: AccessDecision) -> web.Response:
    assert decision.identity is not None
    return web.Response(status=200, headers={
        "X-Devenv-User": decision.identity.login, "X-Devenv-User-Id": str(decision.identity.user_id),
        "X-Devenv-Permission": decision.permission or "", "Cache-Control": "no-store"})


async def check(request: web.Request) -> web.Response:
    """When a proxy asks whether a preview request may pass, answer 200, 401 (or 302) or 403.

    Every answer is counted by its decision (:data:`~bot.access.service.DECISIONS`): the preview
    proxy of tunnel mode asks through here too, so each request it checks is counted once.
    """
    access = request.app[ACCESS_KEY]
    decision, response = await _answer(request, access)
    access.count(decision)
    return response


async def _answer(request: web.Request, access: Access) -> tuple[str, web.Response]:
    """The decision's name and the answer to the proxy."""
    target, traefik = _original(request, access.settings)
    split = access.port_and_workspace(target.host) if target is not None else None
    if target is None or split is None:
        return "unknown", error(403, "Not a preview", "This address is not a preview of this devenv-bot.")
    port, ws_id = split
    refusal = cross_site_refusal(request.headers, request.method, target)
    if refusal is not None:  # a sibling preview's page opening this one's socket: no cookie may count
        return "cross_site", error(403, "Not from another site", refusal)
    decision = await access.decide(request.headers.get("Cookie", ""), target.host, port, ws_id)
    if decision.status == 401:
        return_url = f"{target.scheme}://{target.netloc}{target.path}"
        if traefik:  # Traefik returns our answer as is and has no sign-in hook: redirect ourselves
            return "sign_in", web.Response(status=302, headers={"Location": access.login_url(return_url),
                                                                "Cache-Control": "no-store"})
        return "sign_in", _unauthorized("sign in at /auth/login\n")
    state = workspace_state(access.directory, ws_id)
    if decision.status == 200 and state in STOPPED_STATES | STARTING_STATES:
        # The pod is not there: without this the proxy would show a bare 502.  Traefik shows our
        # answer as is.  ingress-nginx shows only its own page for a 403 (the auth response's body
        # is dropped) and a 500 for anything but 401/403, so it gets a 401: it sends the browser to
        # /auth/login, which finds the bot-host sign-in and shows the same page there.
        name = "stopped" if state in STOPPED_STATES else "starting"
        if traefik:  # stopped: a link to the bot-host page with the Wake button (bot.access.wake)
            link = f"{target.scheme}://{target.netloc}{target.path}"
            return name, paused_page(access, ws_id, port, wake_url=wake_url(access, link) if name == "stopped" else None)
        return name, _unauthorized("the environment is not running; see /auth/login\n")
    if decision.status == 200:
        access.directory.record_activity(ws_id, access.clock(), "ide" if port == IDE_PORT else "preview")
        return "allowed", _allowed(decision)
    # Signed in but refused (403) or undecided (503).  Traefik shows our answer as is.  ingress-nginx
    # would show its own bare "403 Forbidden" (or a 500 for the 503): a 401 sends the browser to
    # /auth/login instead, which knows it by the bot-host session and shows this page there.
    name = _refusal(decision)
    if traefik:
        return name, refusal_page(access, decision, port, ws_id, target.host)
    return name, _unauthorized("not allowed; see /auth/login\n")


def _refusal(decision: AccessDecision) -> str:
    if decision.status == 503:
        return "unavailable"
    return "unknown" if decision.permission is None else "forbidden"  # no such environment: no permission asked
