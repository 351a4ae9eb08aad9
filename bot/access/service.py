"""The access service: who may open which preview, decided from a signed identity and GitHub's permission.

:class:`Access` holds what the routes share (the settings, the workspace directory, the
sessions, the permission lookup) and makes the one decision they all need: may this signed-in
user open this port of this workspace?  200 when GitHub's permission of the user on the PR's
repository reaches what the port needs (the IDE ``DEVENV_IDE_PERMISSION``, other ports
``DEVENV_PREVIEW_PERMISSION`` unless ``.github/devenv.yml`` says otherwise); 401 without a valid
cookie; 403 for no such environment or too little permission; 503 when GitHub does not answer
(nobody gets in then).  Permissions are asked with the *installation* token through
:class:`bot.github.permissions.Permissions` and cached for ``permission_ttl`` seconds on the
access clock; one lookup per (repo, user) is in flight at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlencode

from aiohttp import web

from bot.access.directory import Workspace, WorkspaceDirectory
from bot.access.hosts import IDE_PORT, preview_label, split_label
from bot.access.sessions import Identity, Sessions, UsedCodes
from bot.core.metrics import Metrics
from bot.github.permissions import Permissions, allows
from bot.settings.access import AccessSettings

log = logging.getLogger(__name__)

__all__ = ["ACCESS_KEY", "DECISIONS", "Access", "AccessDecision"]

#: What a link check decides, as ``devenv_link_checks_total`` counts it: let through; not signed in
#: (sent to sign in); signed in without the permission; GitHub did not answer; the environment is
#: stopped or starting (a page says so); not a preview, or no such environment; a socket or unsafe
#: request sent from another site (another preview's page), refused before any cookie counts.
DECISIONS = ("allowed", "sign_in", "forbidden", "unavailable", "stopped", "starting", "unknown", "cross_site")


class AccessDecision(NamedTuple):
    status: int  # 200, 401, 403, 503
    identity: Identity | None = None
    permission: str | None = None
    need: str | None = None
    why: str = ""


class Access:
    """The state behind the routes: sessions (one-time codes, cookies) and the permission cache."""

    def __init__(self, bot: Any, settings: AccessSettings, directory: WorkspaceDirectory, *,
                 clock: Callable[[], float] = time.time,
                 parse_host: Callable[[str], tuple[str, str] | None] | None = None,
                 metrics: Metrics | None = None, used_codes: UsedCodes | None = None) -> None:
        self.bot = bot
        self.metrics = metrics  # None: checks are counted nowhere (tests that add the routes alone)
        if metrics is not None:
            for decision in DECISIONS:
                metrics.link_checks.labels(decision)  # every decision present from the start
        self.parse_host = parse_host
        self.settings = settings
        self.directory = directory
        self.clock = clock
        self.sessions = Sessions(settings, clock, used_codes)
        self.permissions = Permissions(ttl=settings.permission_ttl, maxsize=20_000, clock=clock)

    def count(self, decision: str) -> None:
        """One link check decided (one of :data:`DECISIONS`)."""
        if self.metrics is not None:
            self.metrics.link_checks.labels(decision).inc()

    # -- names and parsing --
    def port_and_workspace(self, host: str) -> tuple[str, str] | None:
        """``(port, ws id)`` of a preview host (already known to be one label under the domain)."""
        if self.parse_host is not None:
            return self.parse_host(host)
        label = preview_label(host, self.settings.preview_domain)
        return split_label(label, lambda ws_id: self.directory.lookup(ws_id) is not None) if label else None

    def login_url(self, return_url: str) -> str:
        return f"{self.settings.public_url}/auth/login?{urlencode({'rd': return_url})}"

    def need_for(self, ws_id: str, port: str) -> str:
        need = self.directory.port_permission(ws_id, port)
        if need:
            return need
        return self.settings.ide_permission if port == IDE_PORT else self.settings.preview_permission

    # -- cookies --
    def host_cookie(self, host: str) -> str:
        """The name of ``host``'s own cookie."""
        return self.sessions.host_cookie(host)

    def host_cookie_value(self, identity: Identity, host: str) -> str:
        """A signed proof that ``identity`` signed in, valid on ``host`` only."""
        return self.sessions.host_cookie_value(identity, host)

    # -- permissions --
    async def permission(self, ws: Workspace, login: str) -> str:
        """``admin``/``write``/``read``/``none`` of ``login`` on the PR's repository, cached briefly.

        The first checks of a page load arrive together (every asset); they share one request.
        """
        if self.bot.github is None:
            raise RuntimeError("the bot has not started")
        gh = self.bot.github.installation(ws.installation_id)
        return await self.permissions.of(gh, ws.owner, ws.repo, login)

    async def decide(self, cookie_header: str, host: str, port: str, ws_id: str) -> AccessDecision:
        identity = self.sessions.host_identity(cookie_header, host)
        if identity is None:
            return AccessDecision(401, why="not signed in")
        return await self.decide_for(identity, port, ws_id)

    async def decide_for(self, identity: Identity, port: str, ws_id: str) -> AccessDecision:
        """200, or 403 (no such environment, permission too low) or 503 (GitHub did not answer)."""
        found = self.directory.lookup(ws_id)
        if found is None:
            return AccessDecision(403, identity, why="no such environment")
        ws = Workspace(*found)
        need = self.need_for(ws_id, port)
        try:
            have = await self.permission(ws, identity.login)
        except Exception as exc:  # GitHub down or rate limited: say so, do not let anyone in
            log.warning("could not ask GitHub for %s's permission on %s/%s: %s", identity.login, ws.owner,
                        ws.repo, exc.__class__.__name__)
            return AccessDecision(503, identity, need=need, why="GitHub did not answer")
        if allows(have, need):
            return AccessDecision(200, identity, have, need)
        return AccessDecision(403, identity, have, need, why="permission")


ACCESS_KEY: web.AppKey[Access] = web.AppKey("access", Access)
