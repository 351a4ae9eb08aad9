"""The ``preview_stack`` fixture: browser → nginx → (bot | workspace stand-ins), GitHub emulated.

    Chromium ──▶ nginx :P ─┬─ devenv.preview-bot.test ─────────────▶ bot (/auth/login, /auth/callback)
      (MAP *.test          ├─ code-<ws>.preview.test/_devenv/ ─────▶ bot (handoff, no auth)
       127.0.0.1)          ├─ code-<ws>.preview.test/ ─ auth_request ▶ bot /auth/check ─▶ "OpenVSCode stand-in"
                           └─ web-<ws>.preview.test/  ─ auth_request ▶ bot /auth/check ─▶ "App preview stand-in"
    GitHub sign-in: the emulator's /login/oauth/authorize on 127.0.0.1 (approves at once as
    ``github.oauth_login``).

Plain http throughout (``DEVENV_PREVIEW_SCHEME=http``: no certificates in a test; cookies lose
``Secure`` and the ``__Host-`` prefix, nothing else changes). Chromium resolves every ``*.test``
host to 127.0.0.1 by ``--host-resolver-rules``, so URLs keep nginx's port and /etc/hosts is untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot import devpod
from bot.access.directory import DictDirectory, Workspace
from bot.access.routes import add_routes
from bot.cluster.links import links_of
from bot.cluster.workspace import exposed_workspace
from bot.settings import config
from tests.botserver import BotServer
from tests.browser.nginx import Nginx, find_nginx, free_port, render_config
from tests.browser.standin import StandIn
from tests.payloads import INSTALLATION_ID, PR_NUMBER

try:
    from playwright.async_api import Browser, BrowserContext, Page, async_playwright
except ImportError:  # only outside CI (pyproject.toml's test extra pins it)
    async_playwright = None  # type: ignore[assignment]

OWNER, REPO = "Codertocat", "Hello-World"
WS = devpod.workspace_id(OWNER, REPO, PR_NUMBER)
DOMAIN = "preview.test"
BOT_HOST = "devenv.preview-bot.test"
APP_PORT_NAME = "web"  # an application port needing the default (read) permission
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP *.test 127.0.0.1",
]


def find_chromium() -> str | None:
    return os.environ.get("DEVENV_TEST_CHROMIUM") or shutil.which("chromium")


def missing_tools() -> list[str]:
    missing = []
    if find_nginx() is None:
        missing.append("nginx (apt-get install nginx)")
    if find_chromium() is None:
        missing.append("chromium (apt-get install chromium chromium-driver)")
    if async_playwright is None:
        missing.append("playwright (pip install -e '.[test]')")
    return missing


class Clock:
    """The bot's access clock: move ``now`` to expire cookies without waiting."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Tab:
    """One browser context (its own cookie jar) with one page, and the URLs its page navigated to."""

    context: BrowserContext
    page: Page
    navigations: list[str]

    def chain(self, since: int = 0) -> list[str]:
        """Top-level navigations (each redirect hop included) since index ``since``."""
        return self.navigations[since:]

    async def host_cookies(self, host: str) -> list[dict]:
        return [c for c in await self.context.cookies() if c["domain"] == host]


class PreviewStack:
    def __init__(self, *, github, server: BotServer, access, directory: DictDirectory, clock: Clock,
                 nginx: Nginx, ide: StandIn, app: StandIn, browser: Browser, exposure) -> None:
        self.github, self.server, self.access, self.directory = github, server, access, directory
        self.clock, self.nginx, self.ide, self.app, self.browser = clock, nginx, ide, app, browser
        self.port = nginx.port
        self.public_url = access.settings.public_url
        self.tabs: list[Tab] = []
        # The links as the bot renders them in the PR comment (bot.exposure.links_of), with nginx's port added.
        ws = exposed_workspace(exposure, WS, ports={APP_PORT_NAME: 3000})
        self.links = {link.name: self._with_port(link.url) for link in links_of(exposure, ws)}

    def _with_port(self, url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{self.port}"))

    @property
    def ide_host(self) -> str:
        return urlsplit(self.links["code"]).hostname or ""

    @property
    def web_host(self) -> str:
        return urlsplit(self.links[APP_PORT_NAME]).hostname or ""

    def url(self, host: str, path: str = "/") -> str:
        return f"http://{host}:{self.port}{path}"

    def login_as(self, login: str, role: str | None) -> None:
        """The next GitHub sign-in approves as ``login``, who has ``role`` on the PR's repository."""
        if role is not None:
            self.github.set_permission(OWNER, REPO, login, role)
        self.github.oauth_login = login

    async def tab(self) -> Tab:
        context = await self.browser.new_context()
        context.set_default_timeout(10_000)
        page = await context.new_page()
        navigations: list[str] = []
        page.on("request", lambda r: navigations.append(r.url)
                if r.is_navigation_request() and r.frame == page.main_frame else None)
        tab = Tab(context, page, navigations)
        self.tabs.append(tab)
        return tab

    @contextlib.asynccontextmanager
    async def artifacts(self, name: str) -> AsyncIterator[None]:
        """On failure: a screenshot of every open page, its navigations and nginx's log in test-artifacts/."""
        try:
            yield
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
            notes = [f"nginx error log:\n{self.nginx.logs()}"]
            for i, tab in enumerate(self.tabs):
                with contextlib.suppress(Exception):
                    await tab.page.screenshot(path=str(ARTIFACTS / f"{safe}-{i}.png"), full_page=True)
                notes.append(f"tab {i} at {tab.page.url}; navigations:\n  " + "\n  ".join(tab.navigations))
            (ARTIFACTS / f"{safe}.txt").write_text("\n\n".join(notes))
            raise


async def _close_quietly(*closers) -> None:
    for close in closers:
        with contextlib.suppress(Exception):
            await close()


@pytest.fixture
async def preview_stack(environ, repo, github, tmp_path) -> AsyncIterator[PreviewStack]:
    missing = missing_tools()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests must run in CI, but these are missing: {'; '.join(missing)} "
                        "(.ci/run installs them)")
        pytest.skip(f"needs {'; '.join(missing)}; CI installs and runs it")
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"  # links need Kubernetes credentials; these tests never reach Kubernetes
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    env = {**environ, "KUBECONFIG": str(kubeconfig), "DEVENV_PREVIEW_DOMAIN": DOMAIN,
           "DEVENV_PUBLIC_URL": f"http://{BOT_HOST}:{port}",
           "DEVENV_PREVIEW_SCHEME": "http",
           "DEVENV_AUTH_URL": "http://devenv-bot.devpod.svc:3000/auth/check", "DEVENV_BOT_SERVICE": "devenv-bot:3000"}
    loaded = config.load(env)
    assert loaded.access is not None and loaded.access.preview_scheme == "http"
    # The access routes are added by hand, as in tests/test_access.py: a dict directory, an injected clock.
    server = BotServer(dataclasses.replace(loaded, access=None, exposure=None))
    directory = DictDirectory({WS: Workspace(INSTALLATION_ID, OWNER, REPO, PR_NUMBER)})
    clock = Clock()
    access = add_routes(server.app, server.bot, loaded.access, directory, clock=clock)
    await server.start()
    ide = await StandIn("OpenVSCode stand-in").start()
    app = await StandIn("App preview stand-in").start()
    nginx = Nginx(find_nginx() or "nginx", tmp_path / "nginx", port)
    playwright = browser = None
    try:
        nginx.write_config(render_config(prefix=nginx.prefix, port=port, bot_port=urlsplit(server.url).port or 0,
                                         bot_host=BOT_HOST, domain=DOMAIN,
                                         previews={"code": ide.port, APP_PORT_NAME: app.port}))
        nginx.start()
        playwright = await async_playwright().start()
        browser = await playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        yield PreviewStack(github=github, server=server, access=access, directory=directory, clock=clock,
                           nginx=nginx, ide=ide, app=app, browser=browser, exposure=loaded.exposure)
    finally:
        if browser is not None:
            await _close_quietly(browser.close)
        if playwright is not None:
            await _close_quietly(playwright.stop)
        nginx.stop()
        await _close_quietly(app.stop, ide.stop, server.stop)
