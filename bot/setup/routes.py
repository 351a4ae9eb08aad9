"""The setup pages: ``/`` offers to register the App; ``/setup/callback`` receives what GitHub sends back.

Probot parity: the button posts ``app.yml`` as a manifest to GitHub (for the operator's account or an
organisation); GitHub redirects back with a one-time code that the bot converts into the App's ID,
key, webhook secret and OAuth client, stores them (:mod:`bot.setup.credentials`) and restarts with
them. https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from bot.setup.credentials import CannotStore, CredentialStore
from bot.setup.manifest import Network, build_manifest, load_manifest_template, public_base, unreachable_reason
from bot.text.templating import render

log = logging.getLogger(__name__)

ORG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


class SetupStates:
    """The ``state`` values of setup pages handed out: each works once, for an hour, and only the newest
    ``limit`` are kept, so reloading the page (or a script doing it) cannot grow memory without bound."""

    def __init__(self, ttl: float = 3600.0, limit: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.limit, self.clock = ttl, limit, clock
        self._issued: dict[str, float] = {}  # oldest first

    def issue(self) -> str:
        now = self.clock()
        for state, at in list(self._issued.items()):
            if now - at <= self.ttl:
                break
            del self._issued[state]
        while len(self._issued) >= self.limit:
            del self._issued[next(iter(self._issued))]
        state = secrets.token_urlsafe(24)
        self._issued[state] = now
        return state

    def take(self, state: str) -> bool:
        """True once for a state handed out within the hour; it cannot be used again."""
        at = self._issued.pop(state, None)
        return at is not None and self.clock() - at <= self.ttl

    def __len__(self) -> int:
        return len(self._issued)


@dataclasses.dataclass
class Setup:
    """What the pages need: where GitHub is, how the bot is reached, where credentials go."""

    github_url: str
    webhook_path: str
    public_url: str | None
    trusted_proxies: Sequence[Network]
    store: CredentialStore
    github: Callable[[], Any]  # an anonymous gidgethub API (the conversion needs no credential)
    on_registered: Callable[[bool], None] | None = None  # called with store.restart_in_process
    states: SetupStates = dataclasses.field(default_factory=SetupStates)


SETUP_KEY: web.AppKey[Setup] = web.AppKey("setup", Setup)


def _base(request: web.Request, setup: Setup) -> str:
    return public_base(public_url=setup.public_url, scheme=request.scheme, host=request.host, remote=request.remote,
                       forwarded_proto=request.headers.get("X-Forwarded-Proto"),
                       forwarded_host=request.headers.get("X-Forwarded-Host"), trusted=setup.trusted_proxies)


async def setup_page(request: web.Request) -> web.Response:
    setup = request.app[SETUP_KEY]
    org = request.query.get("org", "").strip()
    error = None
    if org and not ORG_RE.match(org):
        error = "That is not a GitHub organisation name."
        org = ""
    state = setup.states.issue()
    base = _base(request, setup)
    manifest = build_manifest(load_manifest_template(), base, setup.webhook_path)
    target = (f"{setup.github_url}/organizations/{org}/settings/apps/new" if org
              else f"{setup.github_url}/settings/apps/new") + f"?state={state}"
    html = render("setup.html", manifest=json.dumps(manifest, indent=2), action=target, org=org, error=error,
                  store=setup.store.describe(), github_url=setup.github_url, webhook_url=base + setup.webhook_path,
                  unreachable=unreachable_reason(base, github_is_public=setup.github_url == "https://github.com"))
    return web.Response(text=html, content_type="text/html")


def _credentials(answer: dict[str, Any]) -> dict[str, str]:
    return {
        "APP_ID": str(answer["id"]),
        "PRIVATE_KEY": answer["pem"],
        "WEBHOOK_SECRET": answer["webhook_secret"] or "",
        "GITHUB_CLIENT_ID": answer.get("client_id") or "",
        "GITHUB_CLIENT_SECRET": answer.get("client_secret") or "",
    }


async def setup_callback(request: web.Request) -> web.Response:
    setup = request.app[SETUP_KEY]
    code = request.query.get("code", "")
    state = request.query.get("state", "")
    if not code or not re.fullmatch(r"[A-Za-z0-9_-]{1,200}", code):
        return _page(400, "The link GitHub sent back has no valid code. Start again from the setup page.")
    if not setup.states.take(state):
        return _page(400, "This setup link was not started here (or was already used, or is over an hour old). "
                          "Start again from the setup page.")
    try:
        answer = await setup.github().post("/app-manifests/{code}/conversions", url_vars={"code": code}, data=b"")
    except Exception as exc:  # the page must say what happened; the log keeps the details
        log.exception("manifest conversion failed")
        return _page(502, f"GitHub did not accept the registration code ({exc.__class__.__name__}). "
                          "Codes expire after an hour and work once: start again from the setup page.")
    values = _credentials(answer)
    slug = answer.get("slug") or answer.get("name")
    try:
        await setup.store.store(values)
    except CannotStore as exc:
        log.warning("registered GitHub App %s (id %s) but %s: the setup page shows the operator how to store "
                    "the credentials", slug, answer["id"], exc.reason)
        html = render("setup_done.html", slug=slug, html_url=answer.get("html_url") or "", stored=None,
                      reason=exc.reason, command=exc.command, private_key=values["PRIVATE_KEY"], restarting=False)
        return web.Response(text=html, content_type="text/html")
    log.info("registered GitHub App %s (id %s); credentials stored in %s", slug, answer["id"], setup.store.describe())
    html = render("setup_done.html", slug=slug, html_url=answer.get("html_url") or "", stored=setup.store.describe(),
                  restarting=setup.on_registered is not None, reason=None, command=None, private_key=None)
    if setup.on_registered is not None:
        setup.on_registered(setup.store.restart_in_process)
    return web.Response(text=html, content_type="text/html")


def _page(status: int, message: str) -> web.Response:
    return web.Response(text=render("setup_error.html", message=message), status=status, content_type="text/html")


def add_routes(app: web.Application, setup: Setup) -> None:
    app[SETUP_KEY] = setup
    app.router.add_get("/", setup_page)
    app.router.add_get("/setup/callback", setup_callback)
