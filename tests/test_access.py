"""Previews are opened only by people GitHub says may: forward auth, sign-in, host-only cookies.

Everything goes over real sockets: the real bot app (with the access routes added) and the GitHub
emulator's OAuth pages.  A small ``Browser`` keeps cookies per host as a browser does (host-only
cookies go back to exactly the host that set them) and plays the proxy for ``/auth/check``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import time
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from bot import devpod
from bot.access.directory import DictDirectory, Workspace
from bot.access.hosts import parse_return_url
from bot.access.routes import add_routes
from bot.access.service import Access
from bot.access.sessions import Identity
from bot.settings import config
from bot.settings.access import AccessSettings, derive_secret
from tests.botserver import BotServer
from tests.payloads import INSTALLATION_ID, PR_NUMBER

OWNER, REPO = "Codertocat", "Hello-World"
WS = devpod.workspace_id(OWNER, REPO, PR_NUMBER)
DOMAIN = "preview.test"
PUBLIC = "https://bot.test"
IDE = f"code-{WS}.{DOMAIN}"
APP = f"web-{WS}.{DOMAIN}"
ADMIN_UI = f"admin-ui-{WS}.{DOMAIN}"
PERMISSION_CALLS = r"/collaborators/[^/]+/permission$"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Browser:
    """Follows redirects by hand, keeps cookies per host, and records every Set-Cookie and Location."""

    def __init__(self, server: BotServer, github) -> None:
        self.server = server
        self.github = github
        self.jar: dict[str, dict[str, str]] = {}
        self.set_cookies: list[tuple[str, Morsel]] = []
        self.locations: list[str] = []
        self.page = ""  # the last page signed_in() ended on, when refused

    def cookie_header(self, host: str) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.jar.get(host, {}).items())

    async def get(self, url: str, headers: dict[str, str] | None = None):
        parts = urlsplit(url)
        host = parts.hostname or ""
        h = dict(headers or {})
        if parts.netloc == self.github.host:
            real = url
        else:  # the bot answers for its own host and for /_devenv/ on every preview host
            real = self.server.url + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            h["Host"] = parts.netloc
        if self.jar.get(host):
            h.setdefault("Cookie", self.cookie_header(host))
        async with self.server.session.get(real, headers=h, allow_redirects=False) as resp:
            text = await resp.text()
            for raw in resp.headers.getall("Set-Cookie", []):
                jar = SimpleCookie()
                jar.load(raw)
                for name, morsel in jar.items():
                    self.set_cookies.append((host, morsel))
                    assert not morsel["domain"], f"cookie {name} set with Domain={morsel['domain']}"
                    if morsel["max-age"] == "0" or not morsel.value:
                        self.jar.get(host, {}).pop(name, None)
                    else:
                        self.jar.setdefault(host, {})[name] = morsel.value
            if "Location" in resp.headers:
                self.locations.append(resp.headers["Location"])
            return resp.status, resp.headers, text

    async def follow(self, url: str) -> tuple[int, str, str]:
        """Follow redirects until a page is shown or a preview page (served by the PR) is reached."""
        for _ in range(10):
            parts = urlsplit(url)
            if (parts.hostname or "").endswith("." + DOMAIN) and not parts.path.startswith("/_devenv/"):
                return 200, url, ""
            status, headers, text = await self.get(url)
            if status not in (301, 302, 303, 307, 308):
                return status, url, text
            url = headers["Location"]
        raise AssertionError("too many redirects")

    async def check(self, url: str, *, style: str = "nginx", cookie: str | None = None):
        """What the proxy asks before serving ``url``: the browser's cookies for that host, forwarded."""
        parts = urlsplit(url)
        headers = {"Cookie": self.cookie_header(parts.hostname or "") if cookie is None else cookie}
        if style == "nginx":
            headers.update({"X-Original-URL": url, "X-Original-Method": "GET",
                            "X-Sent-From": "nginx-ingress-controller"})
        else:
            headers.update({"X-Forwarded-Host": parts.netloc, "X-Forwarded-Proto": parts.scheme,
                            "X-Forwarded-Method": "GET",
                            "X-Forwarded-Uri": (parts.path or "/") + (f"?{parts.query}" if parts.query else "")})
        async with self.server.session.get(self.server.url + "/auth/check", headers=headers,
                                           allow_redirects=False) as resp:
            return resp.status, resp.headers, await resp.text()

    async def sign_in(self, page: str) -> tuple[int, str, str]:
        """What nginx does on a 401: send the browser to auth-signin with rd=<page>."""
        return await self.follow(f"{PUBLIC}/auth/login?{urlencode({'rd': page})}")


class Previews:
    def __init__(self, server, access, directory, clock, github) -> None:
        self.server, self.access, self.directory, self.clock, self.github = server, access, directory, clock, github

    def browser(self) -> Browser:
        return Browser(self.server, self.github)

    async def signed_in(self, login: str, role: str | None, page: str, *, refused: int | None = None) -> Browser:
        """A browser signed in through GitHub for ``page``: it lands there, or (``refused``) on the
        bot host's page saying why, with that status."""
        if role is not None:
            self.github.set_permission(OWNER, REPO, login, role)
        self.github.oauth_login = login
        b = self.browser()
        status, url, text = await b.sign_in(page)
        if refused is None:
            assert (status, url) == (200, page), text
        else:
            assert status == refused and url == f"{PUBLIC}/auth/login?{urlencode({'rd': page})}", (status, url)
            b.page = text
        return b


def access_environ(environ, **extra):
    # Links need Kubernetes credentials at start-up; these tests never reach Kubernetes.
    kubeconfig = Path(environ["DEVENV_STATE_DIR"]).with_name("kubeconfig")
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    return {**environ, "KUBECONFIG": str(kubeconfig), "DEVENV_PUBLIC_URL": PUBLIC, "DEVENV_PREVIEW_DOMAIN": DOMAIN,
            "DEVENV_AUTH_URL": "http://devenv-bot.devpod.svc:3000/auth/check", "DEVENV_BOT_SERVICE": "devenv-bot:3000",
            **extra}


@pytest.fixture
async def previews(environ, repo, github):
    env = access_environ(environ)
    # These tests add the routes themselves, with a dict directory and an injected clock.
    settings = dataclasses.replace(config.load(env), access=None, exposure=None)
    server = BotServer(settings)
    directory = DictDirectory({WS: Workspace(INSTALLATION_ID, OWNER, REPO, PR_NUMBER)},
                              ports={(WS, "admin-ui"): "admin"})
    clock = Clock()
    access = add_routes(server.app, server.bot, AccessSettings.from_env(env, settings), directory, clock=clock)
    await server.start()
    yield Previews(server, access, directory, clock, github)
    await server.stop()


# -- not signed in -------------------------------------------------------------------------------


async def test_a_browser_without_a_cookie_gets_401_so_nginx_redirects_to_sign_in(previews):
    status, _, _ = await previews.browser().check(f"https://{IDE}/")
    assert status == 401


async def test_a_traefik_style_check_without_a_cookie_redirects_to_the_login_page_itself(previews):
    status, headers, _ = await previews.browser().check(f"https://{IDE}/src/app.ts?x=1", style="traefik")
    assert status == 302
    location = urlsplit(headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{PUBLIC}/auth/login"
    assert parse_qs(location.query)["rd"] == [f"https://{IDE}/src/app.ts?x=1"]


async def test_a_check_for_a_host_outside_the_preview_domain_is_refused(previews):
    b = previews.browser()
    assert (await b.check(f"https://code-{WS}.evil.test/"))[0] == 403
    assert (await b.check(f"https://code-{WS}.{DOMAIN}.evil.test/", style="traefik"))[0] == 403


# -- signing in ------------------------------------------------------------------------------------


async def test_signing_in_through_github_sets_a_host_only_cookie_and_returns_to_the_first_page(previews, github):
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    b = previews.browser()
    page = f"https://{IDE}/src/app.ts?x=1"
    assert (await b.check(page))[0] == 401

    status, url, _ = await b.sign_in(page)

    assert (status, url) == (200, page)
    authorize = urlsplit(next(loc for loc in b.locations if "/login/oauth/authorize" in loc))
    query = parse_qs(authorize.query)
    assert query["client_id"] == [github.client_id]
    assert query["redirect_uri"] == [f"{PUBLIC}/auth/callback"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 32
    host_cookies = [(host, m) for host, m in b.set_cookies if host == IDE]
    assert len(host_cookies) == 1
    _, cookie = host_cookies[0]
    assert cookie.key.startswith("__Host-")  # browsers refuse a __Host- cookie with Domain
    assert not cookie["domain"] and cookie["path"] == "/"
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
    assert set(b.jar) == {"bot.test", IDE}  # nothing on the parent domain or another preview
    user_tokens = [t for t, tok in github.state.tokens.items() if tok.kind == "user"]
    assert user_tokens
    for token in user_tokens:  # the GitHub token never reaches a URL or a cookie
        assert not any(token in loc for loc in b.locations)
        assert not any(token in m.value for _, m in b.set_cookies)

    status, headers, _ = await b.check(page)
    assert status == 200
    assert headers["X-Devenv-User"] == "Codertocat"


async def test_a_second_preview_reuses_the_sign_in_on_the_bot_host_without_github(previews, github):
    b = await previews.signed_in("Codertocat", "write", f"https://{IDE}/")
    authorizations = len(github.calls_to("GET", "/login/oauth/authorize"))

    status, url, _ = await b.sign_in(f"https://{APP}/index.html")

    assert (status, url) == (200, f"https://{APP}/index.html")
    assert len(github.calls_to("GET", "/login/oauth/authorize")) == authorizations
    assert (await b.check(f"https://{APP}/index.html"))[0] == 200


async def test_github_refusing_the_code_with_http_200_shows_an_error_page(previews):
    b = previews.browser()
    status, headers, _ = await b.get(f"{PUBLIC}/auth/login?{urlencode({'rd': f'https://{IDE}/'})}")
    assert status == 302
    state = parse_qs(urlsplit(headers["Location"]).query)["state"][0]

    status, _, text = await b.get(f"{PUBLIC}/auth/callback?{urlencode({'code': 'made-up', 'state': state})}")

    assert status == 502
    assert "bad_verification_code" in text
    assert IDE not in b.jar


async def test_a_callback_not_started_in_this_browser_is_refused(previews):
    started = previews.browser()
    _, headers, _ = await started.get(f"{PUBLIC}/auth/login?{urlencode({'rd': f'https://{IDE}/'})}")
    state = parse_qs(urlsplit(headers["Location"]).query)["state"][0]

    status, _, _ = await previews.browser().get(f"{PUBLIC}/auth/callback?{urlencode({'code': 'x', 'state': state})}")

    assert status == 400


def server_side_entries(access: Access) -> int:
    """How many entries the sign-in keeps in the bot's memory, in any container of its sessions."""
    return sum(len(v) for v in vars(access.sessions).values() if isinstance(v, (dict, list, set)))


async def test_no_number_of_login_calls_evicts_a_sign_in_in_progress(previews, github):
    # Issue 11: 10,001 unauthenticated /auth/login calls pushed every sign-in in progress out of a
    # bounded server-side store.  The state now rides in a signed cookie: nothing is kept to evict.
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    github.oauth_login = "Codertocat"
    page = f"https://{IDE}/src"
    first = previews.browser()
    status, headers, _ = await first.get(f"{PUBLIC}/auth/login?{urlencode({'rd': page})}")
    assert status == 302
    [(_, login_cookie)] = [(h, m) for h, m in first.set_cookies if h == "bot.test"]
    assert login_cookie["httponly"] and login_cookie["secure"] and login_cookie["samesite"] == "Lax"
    assert login_cookie.key.startswith("__Host-") and int(login_cookie["max-age"]) <= 600
    before = server_side_entries(previews.access)

    async def flood(n: int) -> None:
        for i in range(n):
            async with previews.server.session.get(
                    previews.server.url + "/auth/login?" + urlencode({"rd": f"https://{APP}/{i}"}),
                    headers={"Host": "bot.test"}, allow_redirects=False) as resp:
                assert resp.status == 302

    await asyncio.gather(*(flood(250) for _ in range(8)))  # 2,000 sign-ins started by other clients

    assert server_side_entries(previews.access) == before  # nothing kept per sign-in, so nothing to evict
    status, url, text = await first.follow(headers["Location"])
    assert (status, url) == (200, page), text
    assert (await first.check(page))[0] == 200
    assert not any(name.startswith("__Host-devenv-login") for name in first.jar.get("bot.test", {}))


REFUSED_RETURN_URLS = [
    "https://evil.test/",
    f"https://{DOMAIN}/",
    f"https://a.{IDE}/",
    f"https://{IDE}.evil.test/",
    f"https://user@{IDE}/",
    f"https://user:pw@{IDE}/",
    "javascript:alert(document.cookie)",
    f"ftp://{IDE}/",
    f"//{IDE}/",
    f"/{IDE}/",
    f"https://{IDE}\\@evil.test/",
    f"https://{IDE}//evil.test/",
    f"https://{IDE}/page#frag",
    f"https://{IDE}/a b",
    f"https://-{IDE[1:]}/",
    "",
]


@pytest.mark.parametrize("rd", REFUSED_RETURN_URLS)
def test_a_return_url_that_is_not_a_preview_page_is_not_accepted(environ, rd):
    env = access_environ(environ)
    assert parse_return_url(rd, AccessSettings.from_env(env, config.load(env))) is None


async def test_login_refuses_a_return_url_outside_the_preview_domain_with_400(previews):
    b = previews.browser()
    for rd in REFUSED_RETURN_URLS:
        status, headers, _ = await b.get(f"{PUBLIC}/auth/login?{urlencode({'rd': rd})}")
        assert (rd, status, headers.get("Location")) == (rd, 400, None)
    status, _, _ = await b.get(f"{PUBLIC}/auth/login?{urlencode({'rd': f'https://{IDE}:8443/x?y=1'})}")
    assert status == 302


async def test_a_return_url_seen_as_http_behind_a_tls_proxy_comes_back_as_https(previews, github):
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    b = previews.browser()
    status, url, _ = await b.sign_in(f"http://{IDE}/src?x=1")
    assert (status, url) == (200, f"https://{IDE}/src?x=1")
    assert (await b.check(f"http://{IDE}/src?x=1"))[0] == 200  # nginx's X-Original-URL may say http


async def test_a_one_time_code_works_once_only_and_only_on_its_own_host(previews):
    b = previews.browser()
    b.github.set_permission(OWNER, REPO, "Codertocat", "write")
    await b.sign_in(f"https://{IDE}/")
    handoff = next(loc for loc in b.locations if "/_devenv/handoff" in loc)
    again = previews.browser()
    status, _, _ = await again.get(handoff)
    assert status == 400
    assert IDE not in again.jar

    _, headers, _ = await b.get(f"{PUBLIC}/auth/login?{urlencode({'rd': f'https://{IDE}/'})}")
    stolen = urlsplit(headers["Location"])
    status, _, _ = await again.get(f"https://{APP}{stolen.path}?{stolen.query}")
    assert status == 400
    assert APP not in again.jar


# -- permissions -----------------------------------------------------------------------------------


async def test_a_writer_passes_the_ide_check(previews):
    b = await previews.signed_in("octo-writer", "write", f"https://{IDE}/")
    status, headers, _ = await b.check(f"https://{IDE}/static/main.js")
    assert status == 200
    assert headers["X-Devenv-User"] == "octo-writer"
    assert headers["X-Devenv-Permission"] == "write"
    assert WS in previews.directory.activity


def why(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", page).split())


async def test_a_reader_is_refused_the_ide_with_a_page_saying_why_but_may_open_a_read_port(previews, github):
    # Signing in through GitHub ends on the page saying why, on the bot host, after one pass.
    b = await previews.signed_in("octo-reader", "read", f"https://{IDE}/", refused=403)
    assert "You need write access" in b.page
    assert (f"This is the development environment (VS Code) of pull request #{PR_NUMBER} in "
            f"{OWNER}/{REPO}. Opening it needs write permission on that repository; GitHub says "
            "octo-reader has read.") in why(b.page)
    assert f'href="https://{IDE}/"' in b.page  # "Open the link again"
    assert IDE not in b.jar  # no cookie for a host the user may not open
    assert len(github.calls_to("GET", "/login/oauth/authorize")) == 1

    await b.sign_in(f"https://{APP}/")
    assert (await b.check(f"https://{APP}/"))[0] == 200
    assert (await b.check(f"https://{APP}/", style="traefik"))[0] == 200


async def test_a_refused_user_with_a_host_cookie_gets_401_from_nginx_and_the_page_from_sign_in(previews, github):
    b = await previews.signed_in("octo-writer", "write", f"https://{IDE}/")
    previews.clock.now += 61
    github.set_permission(OWNER, REPO, "octo-writer", "read")  # demoted while holding the IDE's cookie
    authorizations = len(github.calls_to("GET", "/login/oauth/authorize"))

    # ingress-nginx shows its own bare page for a 403, so nginx-style checks get a 401 ...
    status, headers, _ = await b.check(f"https://{IDE}/src")
    assert status == 401 and headers["Cache-Control"] == "no-store"
    # ... nginx sends the browser to auth-signin, which knows it and says why, on the bot host.
    status, url, page = await b.sign_in(f"https://{IDE}/src")
    assert status == 403 and url.startswith(f"{PUBLIC}/auth/login?")
    assert "You need write access" in page and "octo-writer" in page
    # Every further try ends there too: never bounced to GitHub, never handed to the preview.
    for _ in range(3):
        assert (await b.check(f"https://{IDE}/src"))[0] == 401
        assert (await b.sign_in(f"https://{IDE}/src"))[0] == 403
    assert len(github.calls_to("GET", "/login/oauth/authorize")) == authorizations
    # Traefik shows the check's answer as is: the page comes straight from /auth/check.
    status, headers, page = await b.check(f"https://{IDE}/src", style="traefik")
    assert status == 403 and headers["Cache-Control"] == "no-store"
    assert "You need write access" in page

    # Granted again: the same sign-in address now opens the IDE.
    previews.clock.now += 61
    github.set_permission(OWNER, REPO, "octo-writer", "write")
    assert (await b.sign_in(f"https://{IDE}/src"))[:2] == (200, f"https://{IDE}/src")
    assert (await b.check(f"https://{IDE}/src"))[0] == 200


async def test_a_websocket_handshake_is_checked_once_like_any_request(previews, github):
    # The proxy asks once per handshake (a plain GET with the cookies); a refused user's handshake
    # gets the same 401 (ingress-nginx) or 403 (Traefik), so the socket never opens.
    b = await previews.signed_in("octo-writer", "write", f"https://{IDE}/")
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
    async with b.server.session.get(b.server.url + "/auth/check", allow_redirects=False, headers={
            "Cookie": b.cookie_header(IDE), "X-Original-URL": f"https://{IDE}/stable/socket", **upgrade}) as resp:
        assert resp.status == 200
    previews.clock.now += 61
    github.set_permission(OWNER, REPO, "octo-writer", "read")
    async with b.server.session.get(b.server.url + "/auth/check", allow_redirects=False, headers={
            "Cookie": b.cookie_header(IDE), "X-Original-URL": f"https://{IDE}/stable/socket", **upgrade}) as resp:
        assert resp.status == 401
    async with b.server.session.get(b.server.url + "/auth/check", allow_redirects=False, headers={
            "Cookie": b.cookie_header(IDE), "X-Forwarded-Host": IDE, "X-Forwarded-Proto": "https",
            "X-Forwarded-Uri": "/stable/socket", **upgrade}) as resp:
        assert resp.status == 403


async def _raw_check(b, headers: dict[str, str]) -> tuple[int, str]:
    async with b.server.session.get(b.server.url + "/auth/check", allow_redirects=False,
                                    headers={"Cookie": b.cookie_header(IDE), **headers}) as resp:
        return resp.status, await resp.text()


@pytest.mark.parametrize("style", ["nginx", "traefik"])
async def test_a_sibling_preview_cannot_open_the_ides_websocket_with_the_maintainers_cookie(previews, style):
    # Issue 11 item 1: every preview is one site, so the IDE's SameSite=Lax cookie rides along on a
    # socket that PR 99's page opens to PR 2's IDE.  nginx passes the handshake's headers (not
    # Upgrade, a hop-by-hop header: Sec-WebSocket-Key tells) to its auth call; Traefik passes all.
    b = await previews.signed_in("octo-writer", "write", f"https://{IDE}/")
    sibling = f"https://web-other-pr99-abcdef.{DOMAIN}"
    socket = {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
    if style == "nginx":
        where = {"X-Original-URL": f"https://{IDE}/stable/socket", "X-Original-Method": "GET"}
    else:
        where = {"X-Forwarded-Host": IDE, "X-Forwarded-Proto": "https", "X-Forwarded-Uri": "/stable/socket",
                 "X-Forwarded-Method": "GET", "Upgrade": "websocket", "Connection": "Upgrade"}
    assert (await _raw_check(b, {**where, **socket, "Origin": f"https://{IDE}"}))[0] == 200
    assert (await _raw_check(b, {**where, **socket}))[0] == 200  # no Origin: not a browser's cross-site call
    for foreign in ({"Origin": sibling}, {"Origin": "null"}, {"Origin": f"http://{IDE}"},
                    {"Origin": f"https://{IDE}:8443"}, {"Origin": f"https://{IDE}.evil.test"},
                    {"Origin": f"https://{IDE}", "Sec-Fetch-Site": "same-site"},
                    {"Sec-Fetch-Site": "cross-site"}):
        status, page = await _raw_check(b, {**where, **socket, **foreign})
        assert status == 403, foreign
        assert "may only come from its own pages" in page


async def test_an_unsafe_method_from_another_site_is_refused_but_a_cross_site_link_still_opens(previews):
    b = await previews.signed_in("octo-writer", "write", f"https://{IDE}/")
    where = {"X-Original-URL": f"https://{IDE}/api/run"}
    sibling = {"Origin": f"https://web-other-pr99-abcdef.{DOMAIN}", "Sec-Fetch-Site": "same-site"}
    assert (await _raw_check(b, {**where, "X-Original-Method": "POST", **sibling}))[0] == 403
    assert (await _raw_check(b, {**where, "X-Original-Method": "PUT", "Sec-Fetch-Site": "cross-site"}))[0] == 403
    assert (await _raw_check(b, {**where, "X-Original-Method": "POST", "Origin": f"https://{IDE}",
                                 "Sec-Fetch-Site": "same-origin"}))[0] == 200
    # A link followed from GitHub (a cross-site GET navigation) opens the preview as before.
    assert (await _raw_check(b, {**where, "X-Original-Method": "GET", "Sec-Fetch-Site": "cross-site"}))[0] == 200


async def test_any_github_user_may_open_a_read_port_of_a_public_repository(previews):
    # GitHub reports "read" for everyone on a public repository (documented in docs/access.md).
    b = await previews.signed_in("a-stranger", None, f"https://{APP}/")
    assert (await b.check(f"https://{APP}/"))[0] == 200
    status, _, page = await b.sign_in(f"https://{IDE}/")
    assert status == 403 and "You need write access" in page
    assert (await b.check(f"https://{IDE}/"))[0] == 401  # no cookie for the IDE


async def test_a_port_can_require_more_than_the_default_and_may_hold_dashes(previews):
    b = await previews.signed_in("octo-writer", "write", f"https://{ADMIN_UI}/", refused=403)
    assert "You need admin access" in b.page and "<code>admin-ui</code> preview" in b.page


async def test_a_preview_of_an_unknown_environment_is_refused_after_sign_in(previews):
    gone = f"code-gone-pr9-abcdef.{DOMAIN}"
    b = await previews.signed_in("octo-writer", "write", f"https://{gone}/", refused=403)
    assert "No such environment" in b.page
    # A cookie for a host whose environment went away: nginx-style 401 (then the page above),
    # Traefik-style the page itself.
    value = previews.access.host_cookie_value(Identity(7, "octo-writer"), gone)
    cookie = f"{previews.access.host_cookie(gone)}={value}"
    assert (await b.check(f"https://{gone}/", cookie=cookie))[0] == 401
    status, _, text = await b.check(f"https://{gone}/", cookie=cookie, style="traefik")
    assert status == 403 and "No such environment" in text


async def test_the_permission_lookup_is_cached(previews, github):
    b = await previews.signed_in("octo-writer", "write", f"https://{IDE}/")
    previews.clock.now += 61  # past the answer sign-in cached
    github.reset_calls()

    answers = await asyncio.gather(*(b.check(f"https://{IDE}/asset{i}.js") for i in range(20)))
    answers += [await b.check(f"https://{IDE}/")]

    assert {status for status, _, _ in answers} == {200}
    assert len(github.calls_to("GET", PERMISSION_CALLS)) == 1
    previews.clock.now += 61
    github.set_permission(OWNER, REPO, "octo-writer", "read")
    assert (await b.check(f"https://{IDE}/"))[0] == 401  # a revoked writer is out within the cache's life
    assert (await b.check(f"https://{IDE}/", style="traefik"))[0] == 403
    assert len(github.calls_to("GET", PERMISSION_CALLS)) == 2


async def test_github_failing_the_permission_lookup_lets_nobody_in(previews, github):
    b = await previews.signed_in("octo-writer", "write", f"https://{IDE}/")
    previews.clock.now += 61
    github.inject("GET", PERMISSION_CALLS, status=500, times=50)
    status, _, text = await b.check(f"https://{IDE}/", style="traefik")
    assert status == 503
    assert "try again" in text.lower()
    # ingress-nginx would turn a 503 into a 500: a 401 instead, and sign-in shows the page.
    assert (await b.check(f"https://{IDE}/"))[0] == 401
    status, _, text = await b.sign_in(f"https://{IDE}/")
    assert status == 503 and "Cannot check your access right now" in text


# -- cookies that must not work --------------------------------------------------------------------


async def test_a_tampered_cookie_is_refused(previews):
    b = await previews.signed_in("octo-reader", "read", f"https://{APP}/")
    name, value = next(iter(b.jar[APP].items()))
    body, mac = value.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=="))
    data["l"] = "octo-admin"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    assert (await b.check(f"https://{APP}/", cookie=f"{name}={forged}.{mac}"))[0] == 401
    assert (await b.check(f"https://{APP}/", cookie=f"{name}={value[:-2]}xx"))[0] == 401
    data.update(l="octo-reader", h=IDE)  # carried to the IDE's host (the reader may not open it)
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    ide = previews.access.host_cookie(IDE)
    assert (await b.check(f"https://{IDE}/", cookie=f"{ide}={forged}.{mac}"))[0] == 401
    assert (await b.check(f"https://{IDE}/", cookie=f"{ide}={forged}.{mac}", style="traefik"))[0] == 302


async def test_an_expired_cookie_is_refused(previews):
    b = await previews.signed_in("octo-writer", "write", f"https://{IDE}/")
    assert (await b.check(f"https://{IDE}/"))[0] == 200
    previews.clock.now += previews.access.settings.host_cookie_ttl + 1
    assert (await b.check(f"https://{IDE}/"))[0] == 401


async def test_a_cookie_issued_for_another_preview_host_is_refused(previews):
    b = await previews.signed_in("octo-writer", "write", f"https://{APP}/")
    value = next(iter(b.jar[APP].values()))
    ide_cookie = previews.access.host_cookie(IDE)
    assert (await b.check(f"https://{IDE}/", cookie=f"{ide_cookie}={value}"))[0] == 401


async def test_a_cookie_tossed_by_a_sibling_does_not_shadow_the_real_one(previews):
    b = await previews.signed_in("octo-writer", "write", f"https://{IDE}/")
    name, value = next(iter(b.jar[IDE].items()))
    assert (await b.check(f"https://{IDE}/", cookie=f"{name}=junk; {name}={value}"))[0] == 200


# -- speed -----------------------------------------------------------------------------------------


async def test_checks_answer_from_the_caches_without_asking_github_again(previews):
    # What makes /auth/check cheap: one permission lookup per user and repository, then the cache.
    b = await previews.signed_in("octo-writer", "write", f"https://{IDE}/")
    await b.check(f"https://{IDE}/")  # fills the permission cache
    lookups = len(previews.github.calls_to("GET", r"/collaborators/octo-writer/permission$"))
    for i in range(200):
        status, _, _ = await b.check(f"https://{IDE}/asset{i}.js")
        assert status == 200
    assert len(previews.github.calls_to("GET", r"/collaborators/octo-writer/permission$")) == lookups


def test_a_host_template_parser_can_replace_the_default_split(environ):
    env = access_environ(environ)
    settings = AccessSettings.from_env(env, config.load(env))
    directory = DictDirectory({WS: Workspace(INSTALLATION_ID, OWNER, REPO, PR_NUMBER)})
    default = Access(None, settings, directory)
    assert default.port_and_workspace(ADMIN_UI) == ("admin-ui", WS)
    assert default.port_and_workspace(f"code-other-pr3-abcdef.{DOMAIN}") == ("code", "other-pr3-abcdef")
    custom = Access(None, settings, directory, parse_host=lambda host: ("code", WS) if host.startswith("ide--") else None)
    assert custom.port_and_workspace(f"ide--{WS}.{DOMAIN}") == ("code", WS)
    assert custom.port_and_workspace(IDE) is None


# -- settings --------------------------------------------------------------------------------------


def test_access_is_off_without_a_preview_domain(environ):
    settings = config.load(environ)
    assert AccessSettings.from_env(environ, settings) is None


def test_the_session_key_is_derived_from_the_webhook_secret_unless_set(environ):
    env = access_environ(environ)
    settings = config.load(env)
    derived = AccessSettings.from_env(env, settings)
    assert derived.secret == derive_secret(settings.app.webhook_secret)
    assert settings.app.webhook_secret.encode() not in derived.secret
    assert derived.preview_scheme == "https"
    assert (derived.ide_permission, derived.preview_permission) == ("write", "read")
    own = AccessSettings.from_env({**env, "DEVENV_SESSION_SECRET": "s" * 40}, settings)
    assert own.secret == b"s" * 40
    assert "ssss" not in repr(own) and settings.app.client_secret not in repr(own)


def test_bad_access_settings_are_all_reported(environ):
    env = access_environ(environ, DEVENV_PUBLIC_URL=f"https://bot.{DOMAIN}", DEVENV_SESSION_SECRET="short",
                         DEVENV_IDE_PERMISSION="everyone", DEVENV_PERMISSION_TTL="soon")
    with pytest.raises(config.ConfigError) as caught:
        config.load(env)  # start-up reports every access problem at once
    text = str(caught.value)
    for name in ("DEVENV_PUBLIC_URL", "DEVENV_SESSION_SECRET", "DEVENV_IDE_PERMISSION", "DEVENV_PERMISSION_TTL"):
        assert name in text
