"""The HTML pages the access routes show instead of a preview: an error, a refusal saying why, or
that the environment is stopped or starting (all words in ``templates/access_*.html``; never cached).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.access.directory import STARTING_STATES, Workspace, workspace_state
from bot.access.hosts import IDE_PORT
from bot.access.service import Access, AccessDecision
from bot.text.templating import render

__all__ = ["error", "page", "paused_page", "refusal_page"]


def page(status: int, template: str, **values: Any) -> web.Response:
    resp = web.Response(status=status, text=render(template, **values), content_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def error(status: int, title: str, message: str, retry_url: str | None = None) -> web.Response:
    return page(status, "access_error.html", title=title, message=message, retry_url=retry_url)


def refusal_page(access: Access, decision: AccessDecision, port: str, ws_id: str, host: str,
                 retry_url: str | None = None) -> web.Response:
    """The page saying why a signed-in user may not open a preview (403, or 503 if GitHub is down)."""
    ws = access.directory.lookup(ws_id)
    return page(decision.status, "access_denied.html", why=decision.why,
                login=decision.identity.login if decision.identity else "", need=decision.need or "",
                have=decision.permission or "", ws=Workspace(*ws) if ws else None, port=port,
                ide=port == IDE_PORT, host=host, retry_url=retry_url)


def paused_page(access: Access, ws_id: str, port: str) -> web.Response:
    """The page for an allowed user whose environment is stopped or (re)starting (503, no-store)."""
    ws = access.directory.lookup(ws_id)
    state = workspace_state(access.directory, ws_id) or ""
    bot_settings = getattr(access.bot, "settings", None)
    prefix = getattr(bot_settings, "command_prefix", "/devenv")
    pr_url = (f"{access.settings.github_url}/{ws[1]}/{ws[2]}/pull/{ws[3]}" if ws is not None else None)
    resp = page(503, "access_stopped.html", starting=state in STARTING_STATES, prefix=prefix, pr_url=pr_url,
                ws=Workspace(*ws) if ws is not None else None, port=port, ide=port == IDE_PORT)
    resp.headers["Retry-After"] = "30"
    return resp
