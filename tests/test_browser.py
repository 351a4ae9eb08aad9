"""Issue 6, end to end in a real browser: previews behind real nginx, signed in through GitHub.

Debian's headless Chromium (driven by Playwright, never a downloaded browser) opens the preview
links as a reviewer would; Debian's nginx plays the ingress controller (``auth_request`` to the
bot's ``/auth/check``, 401 → sign-in, ``/_devenv/`` to the bot without auth, WebSockets passed on);
the bot runs with its access routes and the GitHub emulator's OAuth pages. Everything is plain
http on random 127.0.0.1 ports (see tests/browser/fixtures.py for the wiring). A failing test leaves
screenshots, the navigations and nginx's log in test-artifacts/.

Runs in CI (.ci/run installs nginx and chromium); outside CI it is skipped when they are missing.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests import payloads
from tests.browser.fixtures import WS, PreviewStack, preview_stack  # noqa: F401  (the fixture)
from tests.payloads import PR_NUMBER
from tests.test_commands_e2e import command

pytestmark = pytest.mark.slow

AUTHORIZE = "/login/oauth/authorize"


def is_login(url: str, stack: PreviewStack) -> bool:
    return url.startswith(f"{stack.public_url}/auth/login?")


async def test_a_stranger_is_sent_to_github_and_a_writer_lands_in_the_ide_with_a_working_websocket(
        preview_stack: PreviewStack, request):
    stack = preview_stack
    ide_link = stack.links["code"]  # http://code-<ws>.preview.test:<nginx>/?folder=/workspaces/<ws>
    assert ide_link.startswith(f"http://code-{WS}.preview.test:{stack.port}/?folder=")
    stack.login_as("octo-writer", "write")
    tab = await stack.tab()
    async with stack.artifacts(request.node.name):
        response = await tab.page.goto(ide_link)

        chain = tab.chain()
        login = next(url for url in chain if is_login(url, stack))
        assert parse_qs(urlsplit(login).query)["rd"] == [ide_link]  # the whole URL, query included
        assert any(url.startswith(f"{stack.github.url}{AUTHORIZE}?") for url in chain), chain
        assert any(f"code-{WS}.preview.test:{stack.port}/_devenv/handoff?" in url for url in chain), chain
        assert response is not None and response.status == 200
        assert tab.page.url == ide_link
        assert await tab.page.title() == "OpenVSCode stand-in"
        assert await tab.page.text_content("#user") == "octo-writer"  # X-Devenv-User, set by nginx
        echo = tab.page.locator("#echo")
        await echo.filter(has_text="echo:").wait_for()
        assert await echo.text_content() == "echo: hello from the browser (as octo-writer)"
        # Only this host's own cookie reaches the workspace: not the bot's sign-in cookies.
        host_cookie = stack.access.host_cookie(stack.ide_host)
        assert await tab.page.text_content("#cookies") == host_cookie
        [cookie] = await tab.host_cookies(stack.ide_host)
        assert cookie["name"] == host_cookie and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert {c["domain"] for c in await tab.context.cookies()} == {stack.ide_host, "devenv.preview-bot.test"}


async def test_a_reader_gets_a_page_saying_why_for_the_ide_and_may_open_the_app_preview(
        preview_stack: PreviewStack, request):
    stack = preview_stack
    stack.login_as("octo-reader", "read")
    tab = await stack.tab()
    async with stack.artifacts(request.node.name):
        response = await tab.page.goto(stack.links["code"])

        # nginx has no error_page for 403 (nor has ingress-nginx): the check's 401 sent the browser to
        # sign in, once through GitHub, and the bot host shows why.
        assert response is not None and response.status == 403
        assert tab.page.url == f"{stack.public_url}/auth/login?{urlencode({'rd': stack.links['code']})}"
        text = await tab.page.inner_text("body")
        assert "You need write access" in text
        assert (f"This is the development environment (VS Code) of pull request #{PR_NUMBER} in "
                "Codertocat/Hello-World.") in " ".join(text.split())
        assert "GitHub says octo-reader has read" in text
        assert len(stack.github.calls_to("GET", AUTHORIZE)) == 1
        assert stack.ide.requests == []  # the IDE never saw the reader
        assert await tab.host_cookies(stack.ide_host) == []

        since = len(tab.navigations)
        response = await tab.page.reload()  # the page's address checks again; still no GitHub

        assert response is not None and response.status == 403
        assert "You need write access" in await tab.page.inner_text("body")
        assert not any(AUTHORIZE in url for url in tab.chain(since))

        since = len(tab.navigations)
        response = await tab.page.goto(stack.links["web"])

        assert response is not None and response.status == 200
        assert await tab.page.title() == "App preview stand-in"
        assert await tab.page.text_content("#user") == "octo-reader"
        chain = tab.chain(since)
        assert any(is_login(url, stack) for url in chain)  # a new host: a cookie of its own...
        assert not any(AUTHORIZE in url for url in chain)  # ...without asking GitHub again
        assert len(stack.github.calls_to("GET", AUTHORIZE)) == 1


async def test_a_forged_cookie_is_refused_and_the_browser_is_sent_to_sign_in(preview_stack: PreviewStack, request):
    stack = preview_stack
    stack.login_as("octo-reader", "read")
    tab = await stack.tab()
    async with stack.artifacts(request.node.name):
        assert (await tab.page.goto(stack.links["web"])).status == 200
        [cookie] = await tab.host_cookies(stack.web_host)
        body, mac = cookie["value"].split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        assert claims["l"] == "octo-reader"
        # The repository's admin, for the IDE's host, keeping the reader's signature.
        claims.update(l="Codertocat", u=1, h=stack.ide_host)
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode() + "." + mac
        await tab.context.add_cookies([{"name": stack.access.host_cookie(stack.ide_host), "value": forged,
                                        "url": stack.url(stack.ide_host)}])
        assert [c["value"] for c in await tab.host_cookies(stack.ide_host)] == [forged]
        since = len(tab.navigations)

        response = await tab.page.goto(stack.links["code"])

        chain = tab.chain(since)
        assert any(is_login(url, stack) for url in chain), chain  # 401 → sign-in, not the IDE
        assert not any(AUTHORIZE in url for url in chain), chain  # known on the bot host
        assert response is not None and response.status == 403
        text = await tab.page.inner_text("body")
        assert "GitHub says octo-reader has read" in text  # the forged "Codertocat" (admin) did not count
        assert stack.ide.requests == []


async def test_an_expired_cookie_sends_the_browser_back_through_github(preview_stack: PreviewStack, request):
    stack = preview_stack
    stack.login_as("octo-writer", "write")
    tab = await stack.tab()
    async with stack.artifacts(request.node.name):
        assert (await tab.page.goto(stack.links["code"])).status == 200
        [before] = await tab.host_cookies(stack.ide_host)
        since = len(tab.navigations)
        # Past the host cookie's life and the bot-host session's (both 8 h by default).
        s = stack.access.settings
        stack.clock.now += max(s.host_cookie_ttl, s.session_ttl) + 1

        response = await tab.page.reload()

        chain = tab.chain(since)
        assert any(is_login(url, stack) for url in chain), chain
        assert any(AUTHORIZE in url for url in chain), chain
        assert response is not None and response.status == 200
        assert await tab.page.text_content("#user") == "octo-writer"
        [after] = await tab.host_cookies(stack.ide_host)
        assert after["value"] != before["value"]


async def test_sign_in_refuses_a_return_address_outside_the_preview_domain(preview_stack: PreviewStack, request):
    stack = preview_stack
    tab = await stack.tab()
    async with stack.artifacts(request.node.name):
        # evil.test resolves to nginx too, so a redirect there would show up as a navigation.
        for rd in [f"http://evil.test:{stack.port}/", f"http://code-{WS}.preview.test.evil.test:{stack.port}/",
                   f"http://{stack.ide_host}@evil.test:{stack.port}/", "javascript:alert(1)"]:
            since = len(tab.navigations)
            response = await tab.page.goto(f"{stack.public_url}/auth/login?{urlencode({'rd': rd})}")

            assert response is not None and response.status == 400, rd
            assert "Cannot sign in to that address" in await tab.page.inner_text("body")
            assert urlsplit(tab.page.url).hostname == "devenv.preview-bot.test"
            assert not any("evil" in (urlsplit(url).hostname or "") for url in tab.chain(since)), tab.chain(since)
        assert stack.github.calls_to("GET", AUTHORIZE) == []


async def test_a_page_of_another_preview_cannot_open_the_ides_websocket(preview_stack: PreviewStack, request):
    # Issue 11 item 1: all previews are one site, so the IDE host's SameSite=Lax cookie rides along on
    # a WebSocket that the PR's app page (or another PR's) opens to the IDE of a maintainer who has
    # visited both. The check refuses a handshake whose Origin is not the IDE's own.
    stack = preview_stack
    stack.login_as("octo-writer", "write")
    tab = await stack.tab()
    async with stack.artifacts(request.node.name):
        assert (await tab.page.goto(stack.links["code"])).status == 200
        await tab.page.locator("#echo").filter(has_text="echo:").wait_for()  # its own page's socket works
        assert (await tab.page.goto(stack.links["web"])).status == 200
        assert await tab.page.title() == "App preview stand-in"
        opened_before = len(stack.ide.requests)

        outcome = await tab.page.evaluate("""(url) => new Promise((resolve) => {
            const ws = new WebSocket(url);
            ws.onopen = () => ws.send("stolen");
            ws.onmessage = (event) => resolve("read: " + event.data);
            ws.onerror = () => resolve("refused");
            setTimeout(() => resolve("timeout"), 10000);
        })""", f"ws://{stack.ide_host}:{stack.port}/ws")

        assert outcome == "refused"
        assert len(stack.ide.requests) == opened_before  # the IDE never saw the handshake


class LiveStates:
    """The test directory's states, read from the bot's environment records (as the real directory does)."""

    def __init__(self, manager) -> None:
        self.manager = manager

    def get(self, ws_id: str) -> str | None:
        record = self.manager.records.get(ws_id)
        return record.state if record is not None else None


async def test_the_link_of_a_stopped_environment_wakes_it_and_opens_the_ide(preview_stack: PreviewStack, request):
    # Issue 13 item 4: a writer opens the IDE link of a stopped environment, presses Wake, and lands in the IDE.
    stack = preview_stack
    server, manager = stack.server, stack.server.bot.environments
    assert manager is not None
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    await server.deliver("issue_comment", command(stack.github, "/devenv stop"))
    await server.settle()
    assert manager.records[WS].state == "stopped"
    stack.directory.states = LiveStates(manager)  # type: ignore[assignment]
    ide_link = stack.links["code"]
    stack.login_as("octo-writer", "write")
    tab = await stack.tab()
    async with stack.artifacts(request.node.name):
        response = await tab.page.goto(ide_link)
        assert response is not None and response.status == 503
        assert is_login(tab.page.url, stack)  # nginx sent the browser to the bot's host, which shows the page
        assert "This environment is stopped" in await tab.page.inner_text("body")

        await tab.page.click("#wake")
        await tab.page.wait_for_url(ide_link, timeout=60_000)  # the starting page reloads until it runs
        assert await tab.page.title() == "OpenVSCode stand-in"
        assert await tab.page.text_content("#user") == "octo-writer"
        chain = tab.chain()
        assert any(url.startswith(f"{stack.public_url}/auth/wake?") for url in chain), chain
    record = manager.records[WS]
    assert record.state == "running"
    assert [a.by for a in record.history if a.verb == "up"][-1] == "octo-writer (from the link)"
