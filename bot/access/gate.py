"""Who may open a preview: browser links guarded by GitHub identity and repository permission.

Preview hosts (``code-<ws id>.<domain>`` for the IDE, ``<port>-<ws id>.<domain>`` for an app)
serve UNTRUSTED pull-request code, and a backend sees every cookie its host receives.  So:

* The proof of identity a preview host receives is a **host-only** cookie for exactly that host
  (no ``Domain`` attribute; ``__Host-`` prefixed under https, which browsers refuse to set with a
  ``Domain``), signed with ``DEVENV_SESSION_SECRET`` and naming the host it was issued for.  A PR
  that steals it can replay it only against its own preview, never a sibling or the bot.
* The GitHub sign-in happens on the bot's own host (``DEVENV_PUBLIC_URL``): ``/auth/login`` runs the
  GitHub App user-to-server OAuth flow (state + PKCE S256) and keeps a bot-host session cookie, then
  hands the browser to the preview host with a one-time code, redeemed at
  ``<preview host>/_devenv/handoff`` (routed to the bot, not to the PR), which sets the host cookie.
* ``/auth/check`` is the forward-auth endpoint (ingress-nginx ``auth-url``, Traefik ForwardAuth).
  It answers 401 without a valid cookie (nginx then redirects to ``auth-signin``; Traefik has no
  sign-in hook, so a Traefik-style call gets the 302 itself), 200 for an allowed user.  A signed-in
  user who may not open the preview gets a page saying why (403; 503 when GitHub does not answer):
  Traefik gets it from ``/auth/check`` itself; ingress-nginx, which shows its own bare page for a
  403, gets a 401 and so sends the browser to ``/auth/login``, which knows the browser by its
  bot-host session, checks again and shows the page there.  Permissions come from
  ``GET /repos/{o}/{r}/collaborators/{login}/permission`` asked with the *installation* token and
  cached for ``permission_ttl`` seconds; one lookup per (repo, user) is in flight at a time.
* An allowed user whose environment is stopped (or waking) gets a page saying so and how to wake it
  instead of the proxy's 502: Traefik gets it from ``/auth/check``; ingress-nginx, which drops the
  auth answer's body, gets a 401 and so sends the browser to ``/auth/login``, which shows it.

GitHub tokens never leave the callback: the user token is used once for ``GET /user`` and dropped;
cookies and URLs carry only signed identities and one-time codes.  Codes and pending logins live in
this process's memory (one bot replica).  See docs/access.md.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web
from cachetools import TTLCache

from bot.commands.grammar import permission_allows
from bot.github.client import USER_AGENT, is_not_found
from bot.settings.access import AccessSettings, derive_secret
from bot.text.templating import render

log = logging.getLogger(__name__)

IDE_PORT = "code"
HANDOFF_PATH = "/_devenv/handoff"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PORT = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f\\]")


# -- what a workspace id points at -----------------------------------------------------------------


class Workspace(NamedTuple):
    installation_id: int
    owner: str
    repo: str
    number: int


class WorkspaceDirectory(Protocol):
    """What the access checks need to know about environments (the lead backs it with the manager)."""

    def lookup(self, ws_id: str) -> Workspace | tuple[int, str, str, int] | None:
        """The PR a workspace belongs to, or None if there is no such (live) workspace."""

    def port_permission(self, ws_id: str, port: str) -> str | None:
        """The permission a port needs (read … admin), or None for the default."""

    def record_activity(self, ws_id: str, when: float) -> None:
        """Someone allowed just used the workspace (for idle stop).  Must be cheap."""

    # Optional: ``state(ws_id) -> str | None``, the environment's state (``running``, ``stopped`` …);
    # without it every known workspace counts as running.


#: States in which the workspace pod is not there to answer: the check shows a page instead of a 502.
STOPPED_STATES = frozenset({"stopping", "stopped"})
STARTING_STATES = frozenset({"queued", "creating"})


def workspace_state(directory: WorkspaceDirectory, ws_id: str) -> str | None:
    state = getattr(directory, "state", None)
    return state(ws_id) if callable(state) else None


class DictDirectory:
    """A directory held in dicts: for tests, and as the shape of the real one."""

    def __init__(self, workspaces: Mapping[str, Workspace] | None = None,
                 ports: Mapping[tuple[str, str], str] | None = None) -> None:
        self.workspaces: dict[str, Workspace] = dict(workspaces or {})
        self.ports: dict[tuple[str, str], str] = dict(ports or {})
        self.states: dict[str, str] = {}
        self.activity: dict[str, float] = {}

    def lookup(self, ws_id: str) -> Workspace | None:
        return self.workspaces.get(ws_id)

    def port_permission(self, ws_id: str, port: str) -> str | None:
        return self.ports.get((ws_id, port))

    def state(self, ws_id: str) -> str | None:
        return self.states.get(ws_id)

    def record_activity(self, ws_id: str, when: float) -> None:
        self.activity[ws_id] = when


class EnvironmentDirectory:
    """The directory backed by ``EnvironmentManager.records``; ``ports(ws_id, port)`` gives overrides."""

    def __init__(self, manager: Any, ports: Callable[[str, str], str | None] | None = None) -> None:
        self.manager = manager
        self.ports = ports
        self.activity: dict[str, float] = {}

    def lookup(self, ws_id: str) -> Workspace | None:
        record = self.manager.records.get(ws_id)
        if record is None or record.state == "deleted":
            return None
        return Workspace(record.installation_id, record.owner, record.repo, record.number)

    def port_permission(self, ws_id: str, port: str) -> str | None:
        return self.ports(ws_id, port) if self.ports is not None else None

    def state(self, ws_id: str) -> str | None:
        record = self.manager.records.get(ws_id)
        return record.state if record is not None else None

    def record_activity(self, ws_id: str, when: float) -> None:
        self.activity[ws_id] = when


# -- signed values ---------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """``<base64url JSON>.<base64url HMAC-SHA256>``; the purpose is inside the MAC, so values don't cross."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the session key is too short")
        self._key = key

    def _mac(self, purpose: str, body: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\0{body}".encode(), hashlib.sha256).digest())

    def dumps(self, purpose: str, data: dict[str, Any]) -> str:
        body = _b64(json.dumps(data, separators=(",", ":")).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def loads(self, purpose: str, value: str, now: float) -> dict[str, Any] | None:
        """The data if the value is authentic, of this purpose and not expired (``e``), else None."""
        body, dot, mac = value.partition(".")
        if not dot or len(value) > 2048 or not hmac.compare_digest(mac, self._mac(purpose, body)):
            return None
        try:
            data = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("e"), (int, float)) or data["e"] <= now:
            return None
        return data


def cookie_values(header: str, name: str) -> list[str]:
    """Every value of cookie ``name`` in a Cookie header (a sibling may toss a same-named one)."""
    values = []
    for part in header.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key == name:
            values.append(value.strip().strip('"'))
    return values


class Identity(NamedTuple):
    user_id: int
    login: str


# -- URLs ------------------------------------------------------------------------------------------


class PreviewTarget(NamedTuple):
    scheme: str
    host: str  # lower-case host name, no port
    netloc: str  # as given (may carry a port)
    path: str  # path and query, starting with one "/"


def preview_label(host: str, domain: str) -> str | None:
    """``label`` if ``host`` is exactly ``<label>.<domain>``, else None."""
    suffix = "." + domain
    if not host.endswith(suffix):
        return None
    label = host[: -len(suffix)]
    return label if _LABEL.match(label) else None


def safe_path(path: str) -> str | None:
    """``path`` if it is a plain absolute path (and query) on the same host, else None."""
    if not path:
        return "/"
    if (not path.startswith("/") or path.startswith("//") or _UNSAFE_IN_URL.search(path)
            or "#" in path or len(path) > 4096):
        return None
    return path


def parse_return_url(url: str, access: AccessSettings) -> PreviewTarget | None:
    """The preview page to return to, if ``url`` is one: refuses anything that is not
    ``http(s)://<label>.<domain>[:port]/<path>`` (no userinfo, no other scheme, one label deep).

    The result always uses the configured preview scheme (an ``http`` URL is upgraded).
    """
    if not url or len(url) > 4096 or _UNSAFE_IN_URL.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError:
        return None
    # The scheme the proxy saw may be http behind a TLS-terminating load balancer (nginx builds
    # rd= from its own $scheme); the host is what matters, and the way back uses the configured scheme.
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or parts.fragment:
        return None
    host = (parts.hostname or "").lower()
    if preview_label(host, access.preview_domain) is None:
        return None
    netloc = host if port is None else f"{host}:{port}"
    path = safe_path((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    if path is None:
        return None
    return PreviewTarget(access.preview_scheme, host, netloc, path)


# -- the service -----------------------------------------------------------------------------------


class Decision(NamedTuple):
    status: int  # 200, 401, 403, 503
    identity: Identity | None = None
    permission: str | None = None
    need: str | None = None
    why: str = ""


class Access:
    """The state behind the routes: codes, pending logins, the permission cache."""

    def __init__(self, bot: Any, settings: AccessSettings, directory: WorkspaceDirectory, *,
                 clock: Callable[[], float] = time.time,
                 parse_host: Callable[[str], tuple[str, str] | None] | None = None) -> None:
        self.bot = bot
        self.parse_host = parse_host
        self.settings = settings
        self.directory = directory
        self.clock = clock
        self.signer = Signer(settings.secret)
        self.codes: TTLCache[str, tuple[Identity, str]] = TTLCache(maxsize=10_000, ttl=settings.handoff_ttl,
                                                                    timer=clock)
        self.pending: TTLCache[str, tuple[str, str, str]] = TTLCache(maxsize=10_000, ttl=settings.login_ttl,
                                                                      timer=clock)
        self.permissions: TTLCache[tuple[int, str, str, str], str] = TTLCache(
            maxsize=20_000, ttl=settings.permission_ttl, timer=clock)
        self._inflight: dict[tuple[int, str, str, str], asyncio.Task[str]] = {}
        self.lookups = 0  # permission requests sent to GitHub
        prefix = "__Host-" if settings.secure else ""
        self._host_cookie_prefix = f"{prefix}devenv-"
        self.session_cookie = ("__Host-" if settings.bot_secure else "") + "devenv-session"
        self.login_cookie = ("__Host-" if settings.bot_secure else "") + "devenv-login"

    # -- names and parsing --
    def port_and_workspace(self, host: str) -> tuple[str, str] | None:
        """``(port, ws id)`` of a preview host (already known to be one label under the domain)."""
        if self.parse_host is not None:
            return self.parse_host(host)
        label = preview_label(host, self.settings.preview_domain)
        return self.split_label(label) if label else None

    def host_cookie(self, host: str) -> str:
        return self._host_cookie_prefix + hashlib.sha256(host.encode()).hexdigest()[:12]

    def split_label(self, label: str) -> tuple[str, str] | None:
        """``(port, ws id)`` from ``<port>-<ws id>``; port names may hold dashes, so ask the directory."""
        first = None
        for i, ch in enumerate(label):
            if ch != "-" or i == 0:
                continue
            port, ws_id = label[:i], label[i + 1:]
            if not ws_id or not _PORT.match(port):
                continue
            if first is None:
                first = (port, ws_id)
            if self.directory.lookup(ws_id) is not None:
                return port, ws_id
        return first

    def login_url(self, return_url: str) -> str:
        return f"{self.settings.public_url}/auth/login?{urlencode({'rd': return_url})}"

    def need_for(self, ws_id: str, port: str) -> str:
        need = self.directory.port_permission(ws_id, port)
        if need:
            return need
        return self.settings.ide_permission if port == IDE_PORT else self.settings.preview_permission

    # -- cookies --
    def host_identity(self, cookie_header: str, host: str) -> Identity | None:
        now = self.clock()
        for value in cookie_values(cookie_header, self.host_cookie(host)):
            data = self.signer.loads("host", value, now)
            if data is not None and data.get("h") == host:
                return Identity(int(data["u"]), str(data["l"]))
        return None

    def session_identity(self, cookie_header: str) -> Identity | None:
        now = self.clock()
        for value in cookie_values(cookie_header, self.session_cookie):
            data = self.signer.loads("session", value, now)
            if data is not None:
                return Identity(int(data["u"]), str(data["l"]))
        return None

    def host_cookie_value(self, identity: Identity, host: str) -> str:
        return self.signer.dumps("host", {"u": identity.user_id, "l": identity.login, "h": host,
                                          "e": int(self.clock() + self.settings.host_cookie_ttl)})

    # -- permissions --
    async def permission(self, ws: Workspace, login: str) -> str:
        """``admin``/``write``/``read``/``none`` of ``login`` on the PR's repository, cached briefly.

        The first checks of a page load arrive together (every asset); they share one request,
        run as its own task so a browser that goes away does not cancel it for the others.
        """
        key = (ws.installation_id, ws.owner.lower(), ws.repo.lower(), login.lower())
        cached = self.permissions.get(key)
        if cached is not None:
            return cached
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._lookup(key, ws, login),
                                                          name=f"permission-{ws.owner}/{ws.repo}")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # never "never retrieved"
            self._inflight[key] = task
        return await asyncio.shield(task)

    async def _lookup(self, key: tuple[int, str, str, str], ws: Workspace, login: str) -> str:
        try:
            value = await self._ask_github(ws, login)
            self.permissions[key] = value
            return value
        finally:
            self._inflight.pop(key, None)

    async def _ask_github(self, ws: Workspace, login: str) -> str:
        if self.bot.github is None:
            raise RuntimeError("the bot has not started")
        self.lookups += 1
        gh = self.bot.github.installation(ws.installation_id)
        try:
            answer = await gh.getitem("/repos/{owner}/{repo}/collaborators/{username}/permission",
                                      url_vars={"owner": ws.owner, "repo": ws.repo, "username": login})
        except Exception as exc:
            if is_not_found(exc):  # renamed or deleted user, or the repo left the installation
                return "none"
            raise
        return str(answer.get("permission") or "none")

    async def decide(self, cookie_header: str, host: str, port: str, ws_id: str) -> Decision:
        identity = self.host_identity(cookie_header, host)
        if identity is None:
            return Decision(401, why="not signed in")
        return await self.decide_for(identity, port, ws_id)

    async def decide_for(self, identity: Identity, port: str, ws_id: str) -> Decision:
        """200, or 403 (no such environment, permission too low) or 503 (GitHub did not answer)."""
        ws = self.directory.lookup(ws_id)
        if ws is None:
            return Decision(403, identity, why="no such environment")
        ws = Workspace(*ws)
        need = self.need_for(ws_id, port)
        try:
            have = await self.permission(ws, identity.login)
        except Exception as exc:  # GitHub down or rate limited: say so, do not let anyone in
            log.warning("could not ask GitHub for %s's permission on %s/%s: %s", identity.login, ws.owner,
                        ws.repo, exc.__class__.__name__)
            return Decision(503, identity, need=need, why="GitHub did not answer")
        if permission_allows(have, need):
            return Decision(200, identity, have, need)
        return Decision(403, identity, have, need, why="permission")


ACCESS_KEY: web.AppKey[Access] = web.AppKey("access", Access)


# -- handlers --------------------------------------------------------------------------------------


def _page(status: int, template: str, **values: Any) -> web.Response:
    resp = web.Response(status=status, text=render(template, **values), content_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _error(status: int, title: str, message: str, retry_url: str | None = None) -> web.Response:
    return _page(status, "access_error.html", title=title, message=message, retry_url=retry_url)


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


async def check(request: web.Request) -> web.Response:
    """When a proxy asks whether a preview request may pass, answer 200, 401 (or 302) or 403."""
    access = request.app[ACCESS_KEY]
    target, traefik = _original(request, access.settings)
    if target is None:
        return _error(403, "Not a preview", "This address is not a preview of this devenv-bot.")
    split = access.port_and_workspace(target.host)
    if split is None:
        return _error(403, "Not a preview", "This address is not a preview of this devenv-bot.")
    port, ws_id = split
    decision = await access.decide(request.headers.get("Cookie", ""), target.host, port, ws_id)
    if decision.status == 401:
        return_url = f"{target.scheme}://{target.netloc}{target.path}"
        if traefik:  # Traefik returns our answer as is and has no sign-in hook: redirect ourselves
            resp = web.Response(status=302, headers={"Location": access.login_url(return_url)})
        else:
            resp = web.Response(status=401, text="sign in at /auth/login\n")
        resp.headers["Cache-Control"] = "no-store"
        return resp
    if decision.status == 200 and workspace_state(access.directory, ws_id) in STOPPED_STATES | STARTING_STATES:
        # The pod is not there: without this the proxy would show a bare 502.  Traefik shows our
        # answer as is.  ingress-nginx shows only its own page for a 403 (the auth response's body
        # is dropped) and a 500 for anything but 401/403, so it gets a 401: it sends the browser to
        # /auth/login, which finds the bot-host sign-in and shows the same page there.
        if traefik:
            return _paused_page(access, ws_id, port)
        resp = web.Response(status=401, text="the environment is not running; see /auth/login\n")
        resp.headers["Cache-Control"] = "no-store"
        return resp
    if decision.status == 200:
        assert decision.identity is not None
        access.directory.record_activity(ws_id, access.clock())
        return web.Response(status=200, headers={
            "X-Devenv-User": decision.identity.login, "X-Devenv-User-Id": str(decision.identity.user_id),
            "X-Devenv-Permission": decision.permission or "", "Cache-Control": "no-store"})
    # Signed in but refused (403) or undecided (503).  Traefik shows our answer as is.  ingress-nginx
    # would show its own bare "403 Forbidden" (or a 500 for the 503): a 401 sends the browser to
    # /auth/login instead, which knows it by the bot-host session and shows this page there.
    if traefik:
        return _refusal_page(access, decision, port, ws_id, target.host)
    resp = web.Response(status=401, text="not allowed; see /auth/login\n")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _refusal_page(access: Access, decision: Decision, port: str, ws_id: str, host: str,
                  retry_url: str | None = None) -> web.Response:
    """The page saying why a signed-in user may not open a preview (403, or 503 if GitHub is down)."""
    ws = access.directory.lookup(ws_id)
    return _page(decision.status, "access_denied.html", why=decision.why,
                 login=decision.identity.login if decision.identity else "", need=decision.need or "",
                 have=decision.permission or "", ws=Workspace(*ws) if ws else None, port=port,
                 ide=port == IDE_PORT, host=host, retry_url=retry_url)


async def login(request: web.Request) -> web.Response:
    """When a browser needs to sign in for a preview, reuse the bot-host session or start GitHub OAuth."""
    access = request.app[ACCESS_KEY]
    s = access.settings
    target = parse_return_url(request.query.get("rd", ""), s)
    if target is None:
        return _error(400, "Cannot sign in to that address",
                      f"The return address is not a preview under {s.preview_domain}; devenv-bot only signs "
                      "people in to its own previews.")
    identity = access.session_identity(request.headers.get("Cookie", ""))
    if identity is not None:
        # Signed in on the bot host already: never back to GitHub.  Either the preview opens
        # (handoff), or this page says why not (refused, stopped) -- ingress-nginx sends every
        # refusal here as a 401, so this is where its users see the reason.
        answer = await _signed_in_answer(access, identity, target)
        if answer is not None:
            return answer
        return _handoff_redirect(access, identity, target)
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    browser = None
    for value in cookie_values(request.headers.get("Cookie", ""), access.login_cookie):
        data = access.signer.loads("login", value, access.clock())
        if data is not None:
            browser = str(data["b"])
    browser = browser or secrets.token_urlsafe(16)
    access.pending[state] = (browser, verifier, f"{target.scheme}://{target.netloc}{target.path}")
    query = urlencode({"client_id": s.client_id, "redirect_uri": f"{s.public_url}/auth/callback",
                       "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
                       "allow_signup": "false"})
    resp = web.Response(status=302, headers={"Location": f"{s.github_url}/login/oauth/authorize?{query}",
                                             "Cache-Control": "no-store"})
    resp.set_cookie(access.login_cookie,
                    access.signer.dumps("login", {"b": browser, "e": int(access.clock() + s.login_ttl)}),
                    max_age=int(s.login_ttl), path="/", httponly=True, secure=s.bot_secure, samesite="Lax")
    return resp


def _paused_page(access: Access, ws_id: str, port: str) -> web.Response:
    """The page for an allowed user whose environment is stopped or (re)starting (503, no-store)."""
    ws = access.directory.lookup(ws_id)
    state = workspace_state(access.directory, ws_id) or ""
    bot_settings = getattr(access.bot, "settings", None)
    prefix = getattr(bot_settings, "command_prefix", "/devenv")
    pr_url = (f"{access.settings.github_url}/{ws[1]}/{ws[2]}/pull/{ws[3]}" if ws is not None else None)
    resp = _page(503, "access_stopped.html", starting=state in STARTING_STATES, prefix=prefix, pr_url=pr_url,
                 ws=Workspace(*ws) if ws is not None else None, port=port, ide=port == IDE_PORT)
    resp.headers["Retry-After"] = "30"
    return resp


async def _signed_in_answer(access: Access, identity: Identity, target: PreviewTarget) -> web.Response | None:
    """On the bot host, for a browser signed in there: the page to show instead of the preview --
    why the user may not open it, or that its environment is not running -- or None to hand off."""
    split = access.port_and_workspace(target.host)
    if split is None:
        return _error(403, "Not a preview", "This address is not a preview of this devenv-bot.")
    port, ws_id = split
    decision = await access.decide_for(identity, port, ws_id)
    if decision.status != 200:
        return _refusal_page(access, decision, port, ws_id, target.host,
                             retry_url=f"{target.scheme}://{target.netloc}{target.path}")
    # Nothing about the environment is shown before the user is known and allowed.
    if workspace_state(access.directory, ws_id) in STOPPED_STATES | STARTING_STATES:
        return _paused_page(access, ws_id, port)
    return None


def _handoff_redirect(access: Access, identity: Identity, target: PreviewTarget) -> web.Response:
    code = secrets.token_urlsafe(32)
    access.codes[code] = (identity, target.host)
    query = urlencode({"code": code, "rd": target.path})
    location = f"{target.scheme}://{target.netloc}{HANDOFF_PATH}?{query}"
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store",
                                             "Referrer-Policy": "no-referrer"})


async def callback(request: web.Request) -> web.Response:
    """When GitHub sends the browser back, learn who it is, remember it on the bot host, hand off."""
    access = request.app[ACCESS_KEY]
    s = access.settings
    state = request.query.get("state", "")
    pending = access.pending.pop(state, None) if state else None
    browser = None
    for value in cookie_values(request.headers.get("Cookie", ""), access.login_cookie):
        data = access.signer.loads("login", value, access.clock())
        if data is not None:
            browser = data["b"]
    if pending is None or browser is None or not hmac.compare_digest(str(browser), pending[0]):
        return _error(400, "Sign-in expired", "This sign-in link is stale or was not started in this browser. "
                      "Open the preview link again.")
    _, verifier, return_url = pending
    retry = access.login_url(return_url)
    if request.query.get("error"):  # the user declined on GitHub
        return _error(403, "Sign-in cancelled", "GitHub did not sign you in, so the preview stays closed.", retry)
    target = parse_return_url(return_url, s)
    code = request.query.get("code", "")
    if target is None or not code:
        return _error(400, "Sign-in failed", "GitHub sent no code back.", retry)
    try:
        identity = await _identify(access, code, verifier)
    except _SignInFailed as exc:
        log.warning("preview sign-in failed: %s", exc)
        return _error(502, "Sign-in failed", str(exc), retry)
    log.info("%s (id %s) signed in for %s", identity.login, identity.user_id, target.host)
    resp = None
    split = access.port_and_workspace(target.host)
    if split is None or (await access.decide_for(identity, *split)).status != 200:
        # Refused: not to the preview (whose check would only send the browser back to sign in),
        # but to /auth/login, which now knows the browser and says why -- at an address that
        # checks again when reloaded.  No second trip through GitHub.
        resp = web.Response(status=302, headers={"Location": access.login_url(return_url),
                                                 "Cache-Control": "no-store"})
    if resp is None:
        resp = _handoff_redirect(access, identity, target)
    resp.set_cookie(access.session_cookie,
                    access.signer.dumps("session", {"u": identity.user_id, "l": identity.login,
                                                    "e": int(access.clock() + s.session_ttl)}),
                    max_age=int(s.session_ttl), path="/", httponly=True, secure=s.bot_secure, samesite="Lax")
    return resp


class _SignInFailed(Exception):
    pass


async def _identify(access: Access, code: str, verifier: str) -> Identity:
    """Exchange the code for a user token, ask ``GET /user`` with it, forget the token."""
    s = access.settings
    session: aiohttp.ClientSession | None = access.bot.session
    if session is None:
        raise _SignInFailed("devenv-bot is still starting; try again in a moment.")
    form = {"client_id": s.client_id, "client_secret": s.client_secret, "code": code,
            "redirect_uri": f"{s.public_url}/auth/callback", "code_verifier": verifier}
    timeout = aiohttp.ClientTimeout(total=20)
    try:
        async with session.post(f"{s.github_url}/login/oauth/access_token", data=form, timeout=timeout,
                                headers={"Accept": "application/json", "User-Agent": USER_AGENT}) as resp:
            answer = await resp.json(content_type=None) if resp.status < 500 else None
        # GitHub reports a bad or used code with HTTP 200 and an "error" field.
        if not isinstance(answer, dict) or answer.get("error") or not answer.get("access_token"):
            error = answer.get("error") if isinstance(answer, dict) else f"HTTP {resp.status}"
            raise _SignInFailed(f"GitHub refused the sign-in code ({error}); open the preview link again.")
        token = str(answer["access_token"])
        async with session.get(f"{s.api_url}/user", timeout=timeout, headers={
                "Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                "User-Agent": USER_AGENT, "X-GitHub-Api-Version": "2022-11-28"}) as resp:
            user = await resp.json(content_type=None) if resp.status == 200 else None
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        raise _SignInFailed(f"GitHub could not be reached ({exc.__class__.__name__}); try again.") from None
    if not isinstance(user, dict) or not isinstance(user.get("id"), int) or not user.get("login"):
        raise _SignInFailed("GitHub did not say who you are; try again.")
    return Identity(user["id"], str(user["login"]))


async def handoff(request: web.Request) -> web.Response:
    """When a browser arrives on a preview host with a one-time code, set that host's cookie."""
    access = request.app[ACCESS_KEY]
    s = access.settings
    try:
        host = (urlsplit(f"//{request.host}").hostname or "").lower()
    except ValueError:
        host = ""
    label = preview_label(host, s.preview_domain)
    rd = safe_path(request.query.get("rd", "/"))
    code = request.query.get("code", "")
    entry = access.codes.pop(code, None) if code else None
    if label is None:
        return _error(400, "Not a preview", "This address is not a preview of this devenv-bot.")
    retry = access.login_url(f"{s.preview_scheme}://{request.host}{rd or '/'}")
    if entry is None or entry[1] != host or rd is None:
        return _error(400, "Sign-in link used up", "This sign-in link was already used, expired, or is for "
                      "another preview.", retry)
    identity = entry[0]
    resp = web.Response(status=302, headers={"Location": f"{s.preview_scheme}://{request.host}{rd}",
                                             "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    # Host-only: no Domain attribute, so sibling previews (untrusted code) never receive it.
    resp.set_cookie(access.host_cookie(host), access.host_cookie_value(identity, host),
                    max_age=int(s.host_cookie_ttl), path="/", httponly=True, secure=s.secure, samesite="Lax")
    return resp


def add_routes(app: web.Application, bot: Any, settings: AccessSettings, directory: WorkspaceDirectory, *,
               clock: Callable[[], float] = time.time,
               parse_host: Callable[[str], tuple[str, str] | None] | None = None) -> Access:
    """Add ``/auth/check``, ``/auth/login``, ``/auth/callback`` and ``/_devenv/handoff`` to ``app``.

    ``parse_host`` maps a preview host name to ``(port, ws id)`` (e.g.
    ``ExposureSettings.parse_host`` for a custom host template); by default ``<port>-<ws id>``
    is split at the dash that names a workspace the directory knows.
    """
    access = Access(bot, settings, directory, clock=clock, parse_host=parse_host)
    app[ACCESS_KEY] = access
    app.router.add_get("/auth/check", check)
    app.router.add_get("/auth/login", login)
    app.router.add_get("/auth/callback", callback)
    app.router.add_get(HANDOFF_PATH, handoff)
    return access


__all__ = ["ACCESS_KEY", "Access", "AccessSettings", "DictDirectory", "EnvironmentDirectory", "Identity",
           "Signer", "Workspace", "WorkspaceDirectory", "add_routes", "derive_secret", "parse_return_url"]
