"""The HTML pages the access routes show instead of a preview: an error, a refusal saying why, or
that the environment is stopped or starting, with what wakes it (:mod:`bot.access.wake`; all words in
``templates/access_*.html``; never cached).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.access.directory import STARTING_STATES, Workspace, workspace_state
from bot.access.hosts import IDE_PORT
from bot.access.service import Access, AccessDecision
from bot.text.templating import render

__all__ = ["WAKE_PATH", "error", "page", "paused_page", "refusal_page", "wake_url"]

#: The bot-host page that wakes a stopped environment from its link.
WAKE_PATH = "/auth/wake"


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


def wake_url(access: Access, link: str) -> str:
    """The bot-host page that wakes the environment of ``link`` (:mod:`bot.access.wake`)."""
    return f"{access.settings.public_url}{WAKE_PATH}?{urlencode({'rd': link})}"


def paused_page(access: Access, ws_id: str, port: str, *, starting: bool | None = None, refresh: int = 15,
                wake_url: str | None = None, wake_form: dict[str, str] | None = None,
                wake_refusal: str | None = None) -> web.Response:
    """The page for an allowed user whose environment is stopped or (re)starting (503, no-store).

    Stopped, it offers one of: ``wake_form`` (the Wake button: ``action``, ``rd``, ``token``; on the
    bot's host only), ``wake_url`` (a link to that page, from a preview host), ``wake_refusal`` (why
    this user may not wake it).  ``starting`` (default: from the state) reloads every ``refresh`` s."""
    ws = access.directory.lookup(ws_id)
    state = workspace_state(access.directory, ws_id) or ""
    bot_settings = getattr(access.bot, "settings", None)
    prefix = getattr(bot_settings, "command_prefix", "/devenv")
    pr_url = (f"{access.settings.github_url}/{ws[1]}/{ws[2]}/pull/{ws[3]}" if ws is not None else None)
    starting = state in STARTING_STATES if starting is None else starting
    resp = page(503, "access_stopped.html", starting=starting, prefix=prefix, pr_url=pr_url, refresh=refresh,
                ws=Workspace(*ws) if ws is not None else None, port=port, ide=port == IDE_PORT,
                wake_url=wake_url, wake_form=wake_form, wake_refusal=wake_refusal)
    resp.headers["Retry-After"] = "30"
    return resp
