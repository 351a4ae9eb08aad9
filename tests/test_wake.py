"""Wake on open (issue 13 item 4): a stopped environment's link offers a Wake button to those who may wake
it; the button's POST is refused from another site or without its token, and starts the environment
through the manager's normal ``up`` (check run, comment and history follow); others get the reason."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlencode, urlsplit

from bot.access.service import ACCESS_KEY
from bot.access.wake import WAKE_KEY
from tests import payloads
from tests.observe import devenv_runs
from tests.test_access import PUBLIC, Browser
from tests.test_commands_e2e import command
from tests.test_links_e2e import IDE, OWNER, REPO, WEB, WS, bot, links_environ, opened  # noqa: F401

WAKE = f"{PUBLIC}/auth/wake"


async def stopped(bot, github) -> None:  # noqa: F811
    await opened(bot)
    status, _ = await bot.deliver("issue_comment", command(github, "/devenv stop"))
    assert status == 202
    await bot.settle()
    assert bot.bot.environments.records[WS].state == "stopped"


async def signed_in(bot, github, login: str, role: str, link: str) -> tuple[Browser, str]:  # noqa: F811
    """A browser signed in as ``login`` that opened ``link`` (behind ingress-nginx): the page it ends on."""
    github.set_permission(OWNER, REPO, login, role)
    github.oauth_login = login
    browser = Browser(bot, github)
    status, url, _ = await browser.sign_in(link)  # through GitHub, handed off to the link...
    assert (status, url) == (200, link)
    status, url, page = await browser.sign_in(link)  # ...whose check sends nginx's browser to the bot's page
    assert status == 503 and url == f"{PUBLIC}/auth/login?{urlencode({'rd': link})}", (status, url)
    assert "This environment is stopped" in page
    return browser, page


def wake_form(page: str) -> dict[str, str]:
    action = re.search(r'<form method="post" action="([^"]+)">', page)
    assert action is not None, page
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
    return {"action": html.unescape(action.group(1)), **{k: html.unescape(v) for k, v in fields.items()}}


async def post(bot, browser: Browser, form: dict[str, str], **headers: str):  # noqa: F811
    cookie = browser.cookie_header(urlsplit(PUBLIC).hostname or "")
    h = {"Host": urlsplit(PUBLIC).netloc, "Cookie": cookie, "Origin": PUBLIC, "Sec-Fetch-Site": "same-origin",
         **headers}
    data = {k: v for k, v in form.items() if k != "action"}
    async with bot.session.post(bot.url + urlsplit(form["action"]).path, data=data, headers=h,
                                allow_redirects=False) as resp:
        return resp.status, resp.headers, await resp.text()


def ups(bot) -> list:  # noqa: F811
    return [a for a in bot.bot.environments.records[WS].history if a.verb == "up"]


async def test_a_writer_wakes_the_environment_from_its_link_and_is_sent_on_to_it(bot, github, devpod):  # noqa: F811
    await stopped(bot, github)
    browser, page = await signed_in(bot, github, "octo-writer", "write", IDE)
    form = wake_form(page)
    assert form["action"] == WAKE and form["rd"] == IDE
    status, headers, _ = await post(bot, browser, form)
    assert status == 303 and headers["Location"] == f"{WAKE}?{urlencode({'rd': IDE})}"
    # While it starts, the page says so and reloads itself.
    status, _, waiting = await browser.get(headers["Location"])
    assert status == 503 and "This environment is starting" in waiting and 'http-equiv="refresh"' in waiting
    await bot.settle()
    record = bot.bot.environments.records[WS]
    assert record.state == "running" and len(devpod.calls("up")) == 2
    assert (ups(bot)[-1].by, ups(bot)[-1].outcome) == ("octo-writer (from the link)", "succeeded")
    assert devenv_runs(github)[-1]["conclusion"] == "success"  # the check run follows
    body = github.comments(OWNER, REPO, payloads.PR_NUMBER)[0]["body"]
    assert re.search(r"octo\S*writer \\?\(from the link\\?\)", body), body  # the history follows
    # Once it runs, the page sends the browser on to the link.
    status, headers, _ = await browser.get(f"{WAKE}?{urlencode({'rd': IDE})}")
    assert status == 302 and headers["Location"] == IDE


async def test_a_cross_site_post_or_one_without_its_token_wakes_nothing(bot, github, devpod):  # noqa: F811
    await stopped(bot, github)
    browser, page = await signed_in(bot, github, "octo-writer", "write", IDE)
    form = wake_form(page)
    status, _, text = await post(bot, browser, form, Origin="https://evil.test", **{"Sec-Fetch-Site": "cross-site"})
    assert status == 403 and "Not from another site" in text
    status, _, _ = await post(bot, browser, form, Origin=f"https://web-{WS}.preview.test")  # a sibling preview
    assert status == 403
    status, _, _ = await post(bot, browser, form, **{"Sec-Fetch-Site": "same-site"})  # another preview, no Origin check
    assert status == 403
    status, _, text = await post(bot, browser, {**form, "token": "9999999999.forged"})
    assert status == 403 and "stale" in text
    status, _, _ = await post(bot, Browser(bot, github), form)  # the token without the cookie it was made for
    assert status == 403
    await bot.settle()
    assert bot.bot.environments.records[WS].state == "stopped" and len(devpod.calls("up")) == 1


async def test_repeated_wakes_ask_for_one_up(bot, github, devpod):  # noqa: F811
    await stopped(bot, github)
    browser, page = await signed_in(bot, github, "octo-writer", "write", IDE)
    form = wake_form(page)
    for _ in range(3):
        status, _, _ = await post(bot, browser, form)
        assert status == 303
    await bot.settle()
    assert [a.by for a in ups(bot)][-1:] == ["octo-writer (from the link)"]
    assert len(devpod.calls("up")) == 2  # the PR's first up, and one wake


async def test_a_reader_is_told_who_may_wake_it_and_cannot_wake_it_anyway(bot, github, devpod):  # noqa: F811
    await stopped(bot, github)
    browser, page = await signed_in(bot, github, "octo-reader", "read", WEB)  # the web port needs read
    assert 'name="token"' not in page
    assert "Only someone with write access to the repository can wake it." in page
    assert "<code>/devenv up</code>" in page
    # Even with a token of their own (never shown to them), the POST asks the same question and is refused.
    identity = bot.app[ACCESS_KEY].sessions.session_identity(browser.cookie_header(urlsplit(PUBLIC).hostname or ""))
    assert identity is not None and identity.login == "octo-reader"
    token = bot.app[WAKE_KEY].token(identity, f"web-{WS}.preview.test")
    status, _, text = await post(bot, browser, {"action": WAKE, "rd": WEB, "token": token})
    assert status == 503 and "Only someone with write access" in text
    await bot.settle()
    assert bot.bot.environments.records[WS].state == "stopped" and len(devpod.calls("up")) == 1


async def test_behind_traefik_the_stopped_page_links_to_the_wake_page(bot, github):  # noqa: F811
    await stopped(bot, github)
    github.oauth_login = "Codertocat"
    browser = Browser(bot, github)
    assert (await browser.sign_in(IDE))[:2] == (200, IDE)
    status, _, page = await browser.check(IDE, style="traefik")
    assert status == 503 and "This environment is stopped" in page
    link = re.search(r'<a class="button" id="wake" href="([^"]+)">', page)
    assert link is not None and html.unescape(link.group(1)) == f"{WAKE}?{urlencode({'rd': IDE})}"
    status, _, wake_page = await browser.get(html.unescape(link.group(1)))
    assert status == 503 and wake_form(wake_page)["rd"] == IDE


async def test_the_wake_page_signs_a_stranger_in_first(bot, github):  # noqa: F811
    await stopped(bot, github)
    browser = Browser(bot, github)
    status, headers, _ = await browser.get(f"{WAKE}?{urlencode({'rd': IDE})}")
    assert status == 302
    login = urlsplit(headers["Location"])
    assert login.path == "/auth/login" and parse_qs(login.query)["rd"] == [f"{WAKE}?{urlencode({'rd': IDE})}"]
