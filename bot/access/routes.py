"""The access feature as the composition root sees it: :func:`add_routes`, and the
:class:`~bot.access.directory.EnvironmentDirectory` it is usually given."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.access.directory import EnvironmentDirectory, WorkspaceDirectory
from bot.access.forward_auth import check
from bot.access.hosts import HANDOFF_PATH
from bot.access.service import ACCESS_KEY, Access
from bot.access.sessions import UsedCodes
from bot.access.signin import callback, handoff, login
from bot.access.wake import add_routes as add_wake_routes
from bot.core.metrics import Metrics
from bot.settings.access import AccessSettings

__all__ = ["EnvironmentDirectory", "add_routes"]


def add_routes(app: web.Application, bot: Any, settings: AccessSettings, directory: WorkspaceDirectory, *,
               clock: Callable[[], float] = time.time,
               parse_host: Callable[[str], tuple[str, str] | None] | None = None,
               metrics: Metrics | None = None, used_codes: UsedCodes | None = None) -> Access:
    """Add ``/auth/check``, ``/auth/login``, ``/auth/callback``, ``/auth/wake`` and ``/_devenv/handoff`` to ``app``.

    ``parse_host`` maps a preview host name to ``(port, ws id)`` (e.g.
    ``ExposureSettings.parse_host`` for a custom host template); by default ``<port>-<ws id>``
    is split at the dash that names a workspace the directory knows.  ``metrics`` counts every
    check's decision (``devenv_link_checks_total``); None counts nothing.  ``used_codes`` makes the
    one-time sign-in codes single-use across replicas (default: this process's memory).
    """
    access = Access(bot, settings, directory, clock=clock, parse_host=parse_host, metrics=metrics,
                    used_codes=used_codes)
    app[ACCESS_KEY] = access
    app.router.add_get("/auth/check", check)
    app.router.add_get("/auth/login", login)
    app.router.add_get("/auth/callback", callback)
    app.router.add_get(HANDOFF_PATH, handoff)
    add_wake_routes(app, access)  # GET and POST /auth/wake: wake a stopped environment from its link
    return access
