"""The setup pages: ``/`` offers to register the App; ``/setup/callback`` receives what GitHub sends back.

Probot parity: the button posts ``app.yml`` as a manifest to GitHub (for the operator's account or an
organisation); GitHub redirects back with a one-time code that the bot converts into the App's ID,
key, webhook secret and OAuth client, stores them (:mod:`bot.setup.credentials`) and restarts with
them. https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
"""

from __future__ import annotations

import dataclasses
import hmac
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


BROWSER_COOKIE = "devenv-setup"
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,100}")


class SetupStates:
    """The ``state`` values of setup pages handed out, each bound to the browser it was handed to (a
    random id in that browser's cookie): each works once, for an hour, and only the newest ``limit``
    are kept, so reloading the page (or a script doing it) cannot grow memory without bound."""

    def __init__(self, ttl: float = 3600.0, limit: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.limit, self.clock = ttl, limit, clock
        self._issued: dict[str, tuple[float, str]] = {}  # state -> (when, browser id); oldest first

    def issue(self, browser: str = "") -> str:
        now = self.clock()
        for state, (at, _) in list(self._issued.items()):
            if now - at <= self.ttl:
                break
            del self._issued[state]
        while len(self._issued) >= self.limit:
            del self._issued[next(iter(self._issued))]
        state = secrets.token_urlsafe(24)
        self._issued[state] = (now, browser)
        return state

    def known(self, state: str) -> bool:
        """Whether ``state`` was handed out within the hour (and not used yet)."""
        entry = self._issued.get(state)
        return entry is not None and self.clock() - entry[0] <= self.ttl

    def take(self, state: str, browser: str = "") -> bool:
        """True once for a state handed out within the hour to this browser; it cannot be used again.
        A state presented by another browser stays usable by its own."""
        entry = self._issued.get(state)
        if entry is None or not hmac.compare_digest(entry[1], browser):
            return False
        del self._issued[state]
        return self.clock() - entry[0] <= self.ttl

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
    # The one-time setup token: only the log line telling the operator where to open the page has it,
    # so whoever reaches the port first cannot register their own App in the bot's place.
    token: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(24))

    def page_url(self, base: str) -> str:
        """The setup page's address with the token (for the operator's log line, and nowhere else)."""
        return f"{base.rstrip('/')}/?token={self.token}"


SETUP_KEY: web.AppKey[Setup] = web.AppKey("setup", Setup)


def _base(request: web.Request, setup: Setup) -> str:
    return public_base(public_url=setup.public_url, scheme=request.scheme, host=request.host, remote=request.remote,
                       forwarded_proto=request.headers.get("X-Forwarded-Proto"),
                       forwarded_host=request.headers.get("X-Forwarded-Host"), trusted=setup.trusted_proxies)


def _has_token(request: web.Request, setup: Setup) -> bool:
    return hmac.compare_digest(request.query.get("token", "").encode(), setup.token.encode())


def _browser(request: web.Request) -> str | None:
    value = request.cookies.get(BROWSER_COOKIE, "")
    return value if TOKEN_RE.fullmatch(value) else None


_WHERE_THE_LINK_IS = ("Open the setup page with the link devenv-bot printed in its log when it started (the line "
                      "\"no GitHub App configured: open …/?token=… to register one\"; with Kubernetes: "
                      "kubectl logs deployment/devenv-bot). Only that link can register the App.")


async def setup_page(request: web.Request) -> web.Response:
    setup = request.app[SETUP_KEY]
    if not _has_token(request, setup):
        return _page(403, "This setup page needs its one-time token. " + _WHERE_THE_LINK_IS)
    browser = _browser(request) or secrets.token_urlsafe(24)
    org = request.query.get("org", "").strip()
    error = None
    if org and not ORG_RE.match(org):
        error = "That is not a GitHub organisation name."
        org = ""
    state = setup.states.issue(browser)
    base = _base(request, setup)
    manifest = build_manifest(load_manifest_template(), base, setup.webhook_path)
    target = (f"{setup.github_url}/organizations/{org}/settings/apps/new" if org
              else f"{setup.github_url}/settings/apps/new") + f"?state={state}"
    html = render("setup.html", manifest=json.dumps(manifest, indent=2), action=target, org=org, error=error,
                  store=setup.store.describe(), github_url=setup.github_url, webhook_url=base + setup.webhook_path,
                  token=setup.token,
                  unreachable=unreachable_reason(base, github_is_public=setup.github_url == "https://github.com"))
    resp = web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store",
                                                                      "Referrer-Policy": "no-referrer"})
    # GitHub's redirect back is a top-level GET, which carries a SameSite=Lax cookie.
    resp.set_cookie(BROWSER_COOKIE, browser, max_age=int(setup.states.ttl), path="/", httponly=True,
                    samesite="Lax", secure=base.startswith("https://"))
    return resp


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
    if not setup.states.known(state):
        return _page(400, "This setup link was not started here (or was already used, or is over an hour old). "
                          "Start again from the setup page.")
    if not setup.states.take(state, _browser(request) or ""):
        return _page(403, "This registration was started in another browser, so this one cannot finish it. "
                          + _WHERE_THE_LINK_IS)
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
