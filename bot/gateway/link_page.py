"""``/ssh/link``: the page on the bot's own host where a user ties an SSH key to their GitHub login.

The gateway prints ``<DEVENV_PUBLIC_URL>/ssh/link?code=…`` to a connection whose key is not on the
claimed login's GitHub account (:meth:`Gateway.link <bot.gateway.service.Gateway.link>`).

* ``GET``: an unknown, used or expired code gets a 410; a browser not signed in on the bot host is
  sent through the GitHub sign-in of :mod:`bot.access.signin` (``login_url``), which returns here;
  a user signed in as anyone but the login the connection claims is refused (403); the owner sees
  the key's fingerprint, the workspace and how long the link lasts, and a confirm button.
* ``POST`` (the confirm): refused when cross-site (``cross_site``: the same ``Origin`` /
  ``Sec-Fetch-Site`` rules :mod:`bot.access.origin` applies to previews, for the bot's origin),
  without the bot-host session (``SameSite=Lax``: a cross-site POST does not carry it), or
  without the form's token, which binds the page to its code and signed-in login
  (:meth:`KeyLinks.token <bot.gateway.links.KeyLinks.token>`).  Then the link is made and the
  waiting connection goes on.

The sign-in, its cookies and the cross-site check are :mod:`bot.access`'s, handed in by the app
(the two features do not import each other).  Codes travel in URLs and forms only: the bot keeps
no access log, and nothing here logs them.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from html import escape

from aiohttp import web

from bot.gateway.links import PendingLink
from bot.gateway.service import Gateway

__all__ = ["LINK_PATH", "add_routes"]

LINK_PATH = "/ssh/link"

Identify = Callable[[str], "str | None"]  # cookie header -> the signed-in GitHub login, or None


def _page(status: int, title: str, body: str) -> web.Response:
    html = (f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title></head>"
            f"<body><h1>{escape(title)}</h1>{body}</body></html>")
    return web.Response(status=status, text=html, content_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                 "X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"})


_GONE = ("<p>This link was already used, has expired, or never existed. Run <code>ssh</code> again for a "
         "new one.</p>")


def _stranger(pending: PendingLink, login: str) -> web.Response:
    return _page(403, "Not your key to link",
                 f"<p>This link ties a key to <b>{escape(pending.login)}</b>; you are signed in to GitHub as "
                 f"<b>{escape(login)}</b>. Only {escape(pending.login)} can link it.</p>")


def add_routes(app: web.Application, gateway: Gateway, *, public_url: str, identify: Identify,
               login_url: Callable[[str], str], cross_site: Callable[[Mapping[str, str], str], str | None]) -> None:
    """Serve ``/ssh/link`` and turn the gateway's linking on (it prints links to ``public_url``)."""
    gateway.enable_links(public_url)
    links = gateway.links

    async def show(request: web.Request) -> web.Response:
        code = request.query.get("code", "")
        pending = links.lookup(code)
        if pending is None:
            return _page(410, "Link used up", _GONE)
        login = identify(request.headers.get("Cookie", ""))
        if login is None:
            here = f"{public_url}{LINK_PATH}?code={code}"
            return web.Response(status=302, headers={"Location": login_url(here), "Cache-Control": "no-store"})
        if login.lower() != pending.login.lower():
            return _stranger(pending, login)
        days = f"{gateway.settings.link_ttl / 86400:g}"
        return _page(200, "Link this SSH key to your GitHub account?", (
            f"<p>Key <code>{escape(pending.fingerprint)}</code> will be treated as one of "
            f"<b>{escape(pending.login)}</b>'s keys by this devenv-bot's SSH gateway for {days} days, starting "
            f"with the connection to <code>{escape(pending.ws_id)}</code> waiting in your terminal.</p>"
            "<p>Confirm only if you just ran <code>ssh</code> yourself and your terminal shows this fingerprint"
            " (<code>ssh-keygen -lf</code> shows your key's).</p>"
            f"<form method=post action='{LINK_PATH}'><input type=hidden name=code value='{escape(code)}'>"
            f"<input type=hidden name=token value='{links.token(code, login)}'>"
            "<button type=submit>Link this key</button></form>"))

    async def confirm(request: web.Request) -> web.Response:
        why = cross_site(request.headers, request.method)
        if why is not None:
            return _page(403, "Refused", f"<p>{escape(why)}</p>")
        form = await request.post()
        code, token = str(form.get("code", "")), str(form.get("token", ""))
        pending = links.lookup(code)
        if pending is None:
            return _page(410, "Link used up", _GONE)
        login = identify(request.headers.get("Cookie", ""))
        if login is None or not hmac.compare_digest(links.token(code, login), token):
            return _page(403, "Refused", "<p>This confirmation did not come from the link page you were shown. "
                         "Open the link from your terminal again.</p>")
        if login.lower() != pending.login.lower() or links.confirm(code, login) is None:
            return _stranger(pending, login)
        return _page(200, "Key linked", f"<p>The key is linked to {escape(pending.login)}. Your <code>ssh</code> "
                     "connection goes on now; you can close this page.</p>")

    app.router.add_get(LINK_PATH, show)
    app.router.add_post(LINK_PATH, confirm)
