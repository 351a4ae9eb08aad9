"""Signing in to previews with GitHub: ``/auth/login``, ``/auth/callback`` and the handoff to a preview host.

The GitHub sign-in happens on the bot's own host (``DEVENV_PUBLIC_URL``): ``/auth/login`` runs the
GitHub App user-to-server OAuth flow (state + PKCE S256) and keeps a bot-host session cookie, then
hands the browser to the preview host with a one-time code, redeemed at ``<preview host>/_devenv/handoff``
(routed to the bot, not to the PR), which sets the host-only cookie (:mod:`bot.access.sessions`).
A browser already signed in on the bot host is never sent back to GitHub: ``/auth/login`` decides
at once and either hands off or shows why not (ingress-nginx sends every refusal here as a 401).

A few pages on the bot's own host need the signed-in user too (:data:`BOT_PAGES`: the SSH
gateway's key-link page): ``/auth/login?rd=<DEVENV_PUBLIC_URL>/ssh/link?…`` signs in the same way
and returns there with the bot-host session cookie only (no handoff, no host cookie).  Any other
return address is refused as before.

GitHub tokens never leave the callback: the user token is used once for ``GET /user`` and dropped;
cookies and URLs carry only signed identities and one-time codes.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web

from bot.access.directory import STARTING_STATES, STOPPED_STATES, workspace_state
from bot.access.hosts import HANDOFF_PATH, PreviewTarget, parse_return_url, preview_label, safe_path
from bot.access.pages import WAKE_PATH, error, paused_page, refusal_page
from bot.access.service import ACCESS_KEY, Access
from bot.access.sessions import Identity, b64
from bot.access.wake import WAKE_KEY
from bot.github.client import USER_AGENT

log = logging.getLogger(__name__)

__all__ = ["BOT_PAGES", "bot_page_url", "callback", "handoff", "login"]

#: Paths on the bot's own host that the sign-in may return to.
BOT_PAGES = ("/ssh/link", WAKE_PATH)

_NOT_A_PREVIEW = "This address is not a preview of this devenv-bot."
MAX_RETURN_IN_COOKIE = 1200  # characters of the return address the signed login cookie carries


async def login(request: web.Request) -> web.Response:
    """When a browser needs to sign in for a preview, reuse the bot-host session or start GitHub OAuth."""
    access = request.app[ACCESS_KEY]
    s = access.settings
    target = parse_return_url(request.query.get("rd", ""), s)
    page_url = bot_page_url(request.query.get("rd", ""), s.public_url) if target is None else None
    if page_url is not None:
        if access.sessions.session_identity(request.headers.get("Cookie", "")) is not None:
            return web.Response(status=302, headers={"Location": page_url, "Cache-Control": "no-store"})
        return _to_github(access, page_url)
    if target is None:
        return error(400, "Cannot sign in to that address",
                     f"The return address is not a preview under {s.preview_domain}; devenv-bot only signs "
                     "people in to its own previews.")
    sessions = access.sessions
    identity = sessions.session_identity(request.headers.get("Cookie", ""))
    if identity is not None:
        # Signed in on the bot host already: never back to GitHub.  Either the preview opens
        # (handoff), or this page says why not (refused, stopped) -- ingress-nginx sends every
        # refusal here as a 401, so this is where its users see the reason.
        answer = await _signed_in_answer(access, identity, target, request.app.get(WAKE_KEY))
        if answer is not None:
            return answer
        return _handoff_redirect(access, identity, target)
    return_url = f"{target.scheme}://{target.netloc}{target.path}"
    if len(return_url) > MAX_RETURN_IN_COOKIE:  # a cookie holds about 4 kB: back to the preview's front page
        return_url = f"{target.scheme}://{target.netloc}/"
    return _to_github(access, return_url)


def bot_page_url(url: str, public_url: str) -> str | None:
    """``url`` if it is one of :data:`BOT_PAGES` on the bot's own origin (plain path and query), else None."""
    if not url.startswith(public_url + "/") or len(url) > MAX_RETURN_IN_COOKIE:
        return None
    path = safe_path(url[len(public_url):])
    if path is None or path.split("?", 1)[0] not in BOT_PAGES:
        return None
    return public_url + path


def _to_github(access: Access, return_url: str) -> web.Response:
    """Start the GitHub OAuth flow that comes back to ``return_url`` (a preview page or a bot page)."""
    s, sessions = access.settings, access.sessions
    # Nothing is kept here: the state and the way back ride in the login cookie, the verifier is
    # derived from the state, so no number of /auth/login calls can evict a sign-in in progress.
    state = secrets.token_urlsafe(32)
    challenge = b64(hashlib.sha256(sessions.login_verifier(state).encode()).digest())
    query = urlencode({"client_id": s.client_id, "redirect_uri": f"{s.public_url}/auth/callback",
                       "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
                       "allow_signup": "false"})
    resp = web.Response(status=302, headers={"Location": f"{s.github_url}/login/oauth/authorize?{query}",
                                             "Cache-Control": "no-store"})
    resp.set_cookie(sessions.login_cookie_name(state), sessions.login_cookie_value(state, return_url),
                    max_age=int(s.login_ttl), path="/", httponly=True, secure=s.bot_secure, samesite="Lax")
    return resp


async def _signed_in_answer(access: Access, identity: Identity, target: PreviewTarget,
                            waker: Any = None) -> web.Response | None:
    """On the bot host, for a browser signed in there: the page to show instead of the preview --
    why the user may not open it, or that its environment is not running -- or None to hand off."""
    split = access.port_and_workspace(target.host)
    if split is None:
        return error(403, "Not a preview", _NOT_A_PREVIEW)
    port, ws_id = split
    decision = await access.decide_for(identity, port, ws_id)
    if decision.status != 200:
        return refusal_page(access, decision, port, ws_id, target.host,
                            retry_url=f"{target.scheme}://{target.netloc}{target.path}")
    # Nothing about the environment is shown before the user is known and allowed.
    if workspace_state(access.directory, ws_id) in STOPPED_STATES | STARTING_STATES:
        if waker is not None:  # with the Wake button for those who may (bot.access.wake)
            return await waker.page(identity, target, port, ws_id)
        return paused_page(access, ws_id, port)
    return None


def _handoff_redirect(access: Access, identity: Identity, target: PreviewTarget) -> web.Response:
    code = access.sessions.handoff_code(identity, target.host)
    query = urlencode({"code": code, "rd": target.path})
    location = f"{target.scheme}://{target.netloc}{HANDOFF_PATH}?{query}"
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store",
                                             "Referrer-Policy": "no-referrer"})


async def callback(request: web.Request) -> web.Response:
    """When GitHub sends the browser back, learn who it is, remember it on the bot host, hand off."""
    access = request.app[ACCESS_KEY]
    s, sessions = access.settings, access.sessions
    state = request.query.get("state", "")
    return_url = sessions.login_return_url(request.headers.get("Cookie", ""), state) if state else None
    if return_url is None:
        return error(400, "Sign-in expired", "This sign-in link is stale or was not started in this browser. "
                     "Open the preview link again.")
    resp = await _finish(access, request, return_url, sessions.login_verifier(state))
    # The sign-in is over, however it ended: its login cookie goes.
    resp.set_cookie(sessions.login_cookie_name(state), "", max_age=0, path="/", httponly=True,
                    secure=s.bot_secure, samesite="Lax")
    return resp


async def _finish(access: Access, request: web.Request, return_url: str, verifier: str) -> web.Response:
    s, sessions = access.settings, access.sessions
    retry = access.login_url(return_url)
    if request.query.get("error"):  # the user declined on GitHub
        return error(403, "Sign-in cancelled", "GitHub did not sign you in, so the preview stays closed.", retry)
    target = parse_return_url(return_url, s)
    page_url = bot_page_url(return_url, s.public_url)
    code = request.query.get("code", "")
    if (target is None and page_url is None) or not code:
        return error(400, "Sign-in failed", "GitHub sent no code back.", retry)
    try:
        identity = await _identify(access, code, verifier)
    except _SignInFailed as exc:
        log.warning("preview sign-in failed: %s", exc)
        return error(502, "Sign-in failed", str(exc), retry)
    if target is None:  # a bot page: back to it, signed in on the bot host
        log.info("%s (id %s) signed in on the bot's host", identity.login, identity.user_id)
        resp = web.Response(status=302, headers={"Location": str(page_url), "Cache-Control": "no-store"})
    else:
        log.info("%s (id %s) signed in for %s", identity.login, identity.user_id, target.host)
        resp = await _after_preview_sign_in(access, identity, target, return_url)
    resp.set_cookie(sessions.session_cookie, sessions.session_cookie_value(identity),
                    max_age=int(s.session_ttl), path="/", httponly=True, secure=s.bot_secure, samesite="Lax")
    return resp


async def _after_preview_sign_in(access: Access, identity: Identity, target: PreviewTarget,
                                 return_url: str) -> web.Response:
    split = access.port_and_workspace(target.host)
    if split is None or (await access.decide_for(identity, *split)).status != 200:
        # Refused: not to the preview (whose check would only send the browser back to sign in),
        # but to /auth/login, which now knows the browser and says why -- at an address that
        # checks again when reloaded.  No second trip through GitHub.
        resp = web.Response(status=302, headers={"Location": access.login_url(return_url),
                                                 "Cache-Control": "no-store"})
    else:
        resp = _handoff_redirect(access, identity, target)
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
            problem = answer.get("error") if isinstance(answer, dict) else f"HTTP {resp.status}"
            raise _SignInFailed(f"GitHub refused the sign-in code ({problem}); open the preview link again.")
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
    try:
        entry = await access.sessions.redeem(code) if code else None
    except Exception:  # the cluster's used codes cannot be asked: refuse, never let a code be used twice
        log.exception("could not check a sign-in code")
        return error(503, "Sign-in unavailable", "The sign-in could not be checked just now; try again.")
    if label is None:
        return error(400, "Not a preview", _NOT_A_PREVIEW)
    retry = access.login_url(f"{s.preview_scheme}://{request.host}{rd or '/'}")
    if entry is None or entry[1] != host or rd is None:
        return error(400, "Sign-in link used up", "This sign-in link was already used, expired, or is for "
                     "another preview.", retry)
    identity = entry[0]
    resp = web.Response(status=302, headers={"Location": f"{s.preview_scheme}://{request.host}{rd}",
                                             "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    # Host-only: no Domain attribute, so sibling previews (untrusted code) never receive it.
    resp.set_cookie(access.host_cookie(host), access.host_cookie_value(identity, host),
                    max_age=int(s.host_cookie_ttl), path="/", httponly=True, secure=s.secure, samesite="Lax")
    return resp
