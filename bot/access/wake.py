"""Wake on open: a stopped environment's link offers a Wake button to those who may wake it.

Design.  The page lives on the bot's own host (``DEVENV_PUBLIC_URL``), where the bot-host session
cookie says who the browser is: ``GET /auth/wake?rd=<link>``.  Behind ingress-nginx the stopped
page is already shown there (``/auth/login``, :mod:`bot.access.signin`) and carries the button
itself; behind Traefik or the bot's preview proxy it is shown on the preview host, whose page
links here (a cross-site form POST would not carry the bot's ``SameSite=Lax`` cookie).

* To a person who may open the link *and* may ``up`` the environment (the same decision as the
  check run's buttons: :class:`bot.policy.ask.Policy`, ``write`` by default or what
  ``.github/devenv.yml`` asks, untrusted PRs as usual) the page shows a **Wake** button; to
  anyone else the reason (who may wake it, and the ``/devenv up`` comment).
* The button POSTs to ``/auth/wake``: refused when it comes from another site (``Origin`` or
  ``Sec-Fetch-Site``, :mod:`bot.access.origin`) and without a token bound to the signed-in
  identity and the link's host (an HMAC with the session key, valid :data:`TOKEN_TTL`).  It asks
  the environment manager for a normal ``up``, requested by ``<login> (from the link)``, so the
  check run, the comment and the history follow.  A second wake of the same environment within
  :data:`WAKE_EVERY` seconds (or while an operation runs) asks for nothing more.
* Then the browser is sent (303) to ``GET /auth/wake``, which while the environment starts shows
  the starting page, reloading itself every :data:`REFRESH` seconds, and once it runs sends the
  browser on to the link.

Nothing about the environment is shown to anyone who may not open the link (the access decision
comes first, as on every page of :mod:`bot.access`).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from cachetools import TTLCache

from bot.access.directory import STARTING_STATES, workspace_state
from bot.access.hosts import PreviewTarget, parse_return_url
from bot.access.origin import cross_site_refusal
from bot.access.pages import WAKE_PATH, error, paused_page, refusal_page, wake_url
from bot.access.service import Access
from bot.access.sessions import Identity
from bot.environments.journal import PullInfo
from bot.environments.states import State
from bot.github.pulls import PullRequestAPI
from bot.policy.ask import Accepted, Closed, Policy, Source

log = logging.getLogger(__name__)

__all__ = ["REFRESH", "TOKEN_TTL", "WAKE_EVERY", "WAKE_KEY", "WAKE_PATH", "Waker", "add_routes"]

#: How long a Wake button's token is good for (seconds).
TOKEN_TTL = 3600
#: A wake of an environment within this many seconds of the last one asks for nothing more.
WAKE_EVERY = 60.0
#: The starting page reloads itself this often (seconds) until the environment runs.
REFRESH = 3


class Waker:
    """The wake pages and button of one app; remembers recent wakes (:data:`WAKE_EVERY`)."""

    def __init__(self, access: Access, *, wake_every: float = WAKE_EVERY) -> None:
        self.access = access
        self.asked: TTLCache[str, float] = TTLCache(maxsize=10_000, ttl=wake_every, timer=access.clock)
        parts = urlsplit(access.settings.public_url)
        self.bot_host = PreviewTarget(parts.scheme, (parts.hostname or "").lower(), parts.netloc, "/")

    # -- the token
    def token(self, identity: Identity, host: str) -> str:
        expires = int(self.access.clock() + TOKEN_TTL)
        return f"{expires}.{self._mac(identity, host, expires)}"

    def token_ok(self, token: str, identity: Identity, host: str) -> bool:
        expires, _, mac = token.partition(".")
        if not expires.isdigit() or int(expires) <= self.access.clock():
            return False
        return hmac.compare_digest(mac.encode(), self._mac(identity, host, int(expires)).encode())

    def _mac(self, identity: Identity, host: str, expires: int) -> str:
        return self.access.sessions.signer.derive("wake", f"{identity.user_id}\0{identity.login}\0{host}\0{expires}")

    # -- deciding
    def url(self, link: str) -> str:
        return wake_url(self.access, link)

    def waking(self, ws_id: str) -> bool:
        """Asked to wake lately, or an operation runs or waits: show the starting page."""
        manager = self.access.bot.environments
        return ws_id in self.asked or (manager is not None and manager.busy(ws_id))

    async def policy_decision(self, ws_id: str, login: str) -> tuple[PullInfo, Any] | None:
        """The PR as GitHub says it now and whether ``login`` may ``up`` it; None: no such environment."""
        bot = self.access.bot
        manager = bot.environments
        record = manager.records.get(ws_id) if manager is not None else None
        if record is None:
            return None
        gh = bot.github.installation(record.installation_id)
        pull = await PullRequestAPI(gh, record.ref).get()
        info = PullInfo.from_payload(record.installation_id, pull, pull["base"]["repo"])
        policy = Policy(gh, loader=bot.repo_settings, permissions=bot.permissions, ledger=manager)
        return info, await policy.ask(info, "up", login, Source.BUTTON, closed=pull.get("state") == "closed")

    def _reason(self, decision: Any) -> str:
        prefix = getattr(getattr(self.access.bot, "settings", None), "command_prefix", "/devenv")
        if isinstance(decision, Closed):
            return "The pull request is closed, so its environment is not woken."
        need = getattr(decision, "need", None) or "write"
        if getattr(decision, "why", "") == "untrusted":
            return (f"Its code is not trusted yet: someone with {need} access must approve it first "
                    f"({prefix} approve on the pull request).")
        return f"Only someone with {need} access to the repository can wake it."

    # -- the pages
    async def page(self, identity: Identity, target: PreviewTarget, port: str, ws_id: str) -> web.Response:
        """The page for ``identity``, allowed to open the link, whose environment is not running."""
        link = f"{target.scheme}://{target.netloc}{target.path}"
        state = workspace_state(self.access.directory, ws_id)
        if state in STARTING_STATES or self.waking(ws_id):
            return paused_page(self.access, ws_id, port, starting=True, refresh=REFRESH)
        try:
            decided = await self.policy_decision(ws_id, identity.login)
        except Exception as exc:  # GitHub down: say so, offer nothing
            log.warning("could not decide whether %s may wake %s: %s", identity.login, ws_id, exc.__class__.__name__)
            return paused_page(self.access, ws_id, port, wake_refusal="GitHub did not answer; reload in a moment.")
        if decided is None or not isinstance(decided[1], Accepted):
            why = self._reason(decided[1]) if decided is not None else "The environment is gone."
            return paused_page(self.access, ws_id, port, wake_refusal=why)
        form = {"action": f"{self.access.settings.public_url}{WAKE_PATH}", "rd": link,
                "token": self.token(identity, target.host)}
        return paused_page(self.access, ws_id, port, wake_form=form)

    async def show(self, request: web.Request) -> web.StreamResponse:
        """``GET /auth/wake?rd=<link>``: the page, or on to the link once the environment runs."""
        access = self.access
        target = parse_return_url(request.query.get("rd", ""), access.settings)
        if target is None:
            return error(400, "Not a preview", "This address is not a preview of this devenv-bot.")
        link = f"{target.scheme}://{target.netloc}{target.path}"
        identity = access.sessions.session_identity(request.headers.get("Cookie", ""))
        if identity is None:  # sign in on the bot host, then back here
            return _redirect(access.login_url(self.url(link)), 302)
        checked = await self._allowed(identity, target)
        if isinstance(checked, web.Response):
            return checked
        port, ws_id = checked
        manager = access.bot.environments
        if workspace_state(access.directory, ws_id) == State.RUNNING and not (manager and manager.busy(ws_id)):
            self.asked.pop(ws_id, None)  # woken: on to the link
            return _redirect(link, 302)
        return await self.page(identity, target, port, ws_id)

    async def _allowed(self, identity: Identity, target: PreviewTarget) -> tuple[str, str] | web.Response:
        split = self.access.port_and_workspace(target.host)
        if split is None:
            return error(403, "Not a preview", "This address is not a preview of this devenv-bot.")
        port, ws_id = split
        decision = await self.access.decide_for(identity, port, ws_id)
        if decision.status != 200:
            return refusal_page(self.access, decision, port, ws_id, target.host)
        return port, ws_id

    async def wake(self, request: web.Request) -> web.StreamResponse:
        """``POST /auth/wake`` (the button): ask for an ``up``, then show the page that waits for it."""
        access = self.access
        refusal = cross_site_refusal(request.headers, request.method, self.bot_host)
        if refusal is not None:
            return error(403, "Not from another site", refusal)
        identity = access.sessions.session_identity(request.headers.get("Cookie", ""))
        form = await request.post()
        target = parse_return_url(str(form.get("rd", "")), access.settings)
        if target is None:
            return error(400, "Not a preview", "This address is not a preview of this devenv-bot.")
        link = f"{target.scheme}://{target.netloc}{target.path}"
        if identity is None or not self.token_ok(str(form.get("token", "")), identity, target.host):
            return error(403, "Open the link again", "This Wake button is stale or was not made for you; "
                         "open the link again for a fresh one.", access.login_url(link))
        checked = await self._allowed(identity, target)
        if isinstance(checked, web.Response):
            return checked
        port, ws_id = checked
        if workspace_state(access.directory, ws_id) != State.RUNNING and not self.waking(ws_id):
            answer = await self._ask_up(identity, target, port, ws_id)
            if answer is not None:
                return answer
        return _redirect(self.url(link), 303)

    async def _ask_up(self, identity: Identity, target: PreviewTarget, port: str, ws_id: str) -> web.Response | None:
        """Ask the manager for an ``up`` if ``identity`` may; else the page saying why (None: asked)."""
        try:
            decided = await self.policy_decision(ws_id, identity.login)
        except Exception as exc:
            log.warning("could not decide whether %s may wake %s: %s", identity.login, ws_id, exc.__class__.__name__)
            return error(503, "GitHub did not answer", "Try again in a moment.")
        if decided is None or not isinstance(decided[1], Accepted):
            return await self.page(identity, target, port, ws_id)
        info, decision = decided
        self.asked[ws_id] = self.access.clock()
        log.info("%s wakes %s from its link", identity.login, ws_id)
        self.access.bot.environments.request(info, "up", requested_by=f"{identity.login} (from the link)",
                                             approve=decision.approve)
        return None


def _redirect(location: str, status: int) -> web.Response:
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


WAKE_KEY: web.AppKey[Waker] = web.AppKey("wake", Waker)


def add_routes(app: web.Application, access: Access) -> Waker:
    """``GET`` and ``POST /auth/wake`` on ``app``, for ``access``'s links."""
    waker = Waker(access)
    app[WAKE_KEY] = waker
    app.router.add_get(WAKE_PATH, waker.show)
    app.router.add_post(WAKE_PATH, waker.wake)
    return waker

