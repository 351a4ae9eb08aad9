"""Linking an SSH key that is not on GitHub through the bot's sign-in, end to end.

A real OpenSSH client connects with a key GitHub does not list for the login it claims; the
gateway prints a one-time link to ``<DEVENV_PUBLIC_URL>/ssh/link``; a browser (cookies kept by
:class:`tests.test_access.Browser`) signs in through the GitHub emulator's OAuth pages and confirms;
the waiting connection then runs its command, and the next connection with that key needs no
link.  Used, expired and cross-site confirmations and strangers are refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import stat
import subprocess
from pathlib import Path

import pytest

from bot.gateway import service
from bot.settings import config
from tests.github_emulator.user_keys import set_user_keys
from tests.test_access import Browser, access_environ
from tests.test_gateway import (  # noqa: F401
    OWNER,
    REPO,
    WS,
    Client,
    keygen,
    prepare_sshd,
    pytestmark,
    start_with_running_pr,
)

PUBLIC = "https://bot.test"
LINK = re.compile(r"(https://bot\.test/ssh/link\?code=[A-Za-z0-9_-]+)")


@pytest.fixture
async def link_bot(environ, devpod, tmp_path, github, repo):
    state = Path(environ["DEVENV_STATE_DIR"])
    prepare_sshd(devpod.home, state)
    env = access_environ(environ, DEVENV_SSH_PORT="0", DEVENV_SSH_HOST="ssh.devenv.example.com")
    srv = await start_with_running_pr(dataclasses.replace(config.load(env), exposure=None))
    yield srv
    await srv.stop()


class Waiting:
    """An ``ssh`` run whose stderr is read as it comes, to catch the link it prints."""

    def __init__(self, client: Client, *command: str) -> None:
        self.argv = ["ssh", "-p", str(client.port), *client.options(), client.target, *command]
        self.err = b""

    async def link(self) -> str:
        self.proc = await asyncio.create_subprocess_exec(*self.argv, stdin=asyncio.subprocess.DEVNULL,
                                                         stdout=asyncio.subprocess.PIPE,
                                                         stderr=asyncio.subprocess.PIPE)
        assert self.proc.stderr is not None
        while (found := LINK.search(self.err.decode())) is None:
            line = await asyncio.wait_for(self.proc.stderr.readline(), 30)
            assert line, self.err.decode()
            self.err += line
        return found.group(1)

    async def end(self) -> subprocess.CompletedProcess:
        out, err = await asyncio.wait_for(self.proc.communicate(), 60)
        return subprocess.CompletedProcess(self.argv, self.proc.returncode, out, self.err + err)


def unlinked(github, tmp_path, bot, login: str, role: str = "write") -> Client:
    """A user whose key is NOT on GitHub (another key is)."""
    client = Client(tmp_path, login, bot.bot.gateway.port)
    set_user_keys(github, login, [keygen(tmp_path / f"{login}-github-key")])
    github.set_permission(OWNER, REPO, login, role)
    return client


async def open_link(server, github, link: str, login: str) -> tuple[Browser, int, str]:
    github.oauth_login = login
    browser = Browser(server, github)
    status, url, text = await browser.follow(link)
    assert url == link  # the sign-in came back to the link page
    return browser, status, text


async def post(server, browser: Browser, form: dict[str, str], origin: str | None = PUBLIC) -> tuple[int, str]:
    headers = {"Host": "bot.test", "Cookie": browser.cookie_header("bot.test")}
    if origin is not None:
        headers["Origin"] = origin
    async with server.session.post(server.url + "/ssh/link", data=form, headers=headers,
                                   allow_redirects=False) as resp:
        return resp.status, await resp.text()


def form_of(page: str) -> dict[str, str]:
    return dict(re.findall(r"name=(code|token) value='([^']*)'", page))


def fingerprint_of(client: Client) -> str:
    return subprocess.run(["ssh-keygen", "-lf", str(client.key)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


async def test_an_unknown_key_is_linked_through_the_sign_in_and_the_next_connection_needs_no_link(
        link_bot, github, tmp_path, caplog):
    caplog.set_level("DEBUG")
    alice = unlinked(github, tmp_path, link_bot, "alice")
    waiting = Waiting(alice, "echo linked")
    link = await waiting.link()
    assert "is not on alice's GitHub account" in waiting.err.decode()
    browser, status, page = await open_link(link_bot, github, link, "alice")
    fingerprint = fingerprint_of(alice)
    assert status == 200 and fingerprint in page and WS in page
    form = form_of(page)
    assert (await post(link_bot, browser, form, origin="https://evil.test"))[0] == 403  # cross-site: refused
    status, text = await post(link_bot, browser, form)
    assert status == 200, text
    done = await waiting.end()
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"linked\n"

    again = await alice.ssh("echo again")
    assert again.returncode == 0 and again.stdout == b"again\n", again.stderr
    assert b"/ssh/link" not in again.stderr

    assert (await post(link_bot, browser, form))[0] == 410  # the code was single-use
    assert (await browser.get(link))[0] == 410
    kept = Path(link_bot.bot.settings.state_dir) / "ssh" / "key_links.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and fingerprint in kept.read_text()
    assert "linked to alice" in caplog.text and link.split("code=")[1] not in caplog.text  # codes are never logged

    github.set_permission(OWNER, REPO, "alice", "read")  # a linked key of a revoked login: refused as usual
    revoked = await alice.ssh("true")
    assert revoked.returncode != 0 and b"alice has read access" in revoked.stderr


async def test_a_stranger_who_signs_in_is_refused_and_the_connection_is_not_let_through(
        link_bot, github, tmp_path, monkeypatch):
    monkeypatch.setattr(service, "CODE_TTL", 4.0)
    alice = unlinked(github, tmp_path, link_bot, "alice")
    waiting = Waiting(alice, "echo in")
    link = await waiting.link()
    browser, status, page = await open_link(link_bot, github, link, "mallory")
    assert status == 403 and "Only alice can link it" in page
    done = await waiting.end()  # nobody confirmed: the wait ends, nothing ran
    assert done.returncode != 0 and done.stdout == b""
    assert b"not linked in time" in done.stderr
    assert (await browser.get(link))[0] == 410  # an expired code is gone
    assert link_bot.bot.gateway.links.linked(fingerprint_of(alice)) is None


async def test_an_expired_code_is_refused(link_bot, github, tmp_path):
    alice = unlinked(github, tmp_path, link_bot, "alice")
    waiting = Waiting(alice, "echo in")
    link = await waiting.link()
    browser, status, page = await open_link(link_bot, github, link, "alice")
    assert status == 200
    links = link_bot.bot.gateway.links
    real = links.clock
    links.clock = lambda: real() + 600  # past the code's two minutes
    assert (await post(link_bot, browser, form_of(page)))[0] == 410
    links.clock = real
    waiting.proc.kill()
    await waiting.proc.wait()


async def test_a_key_is_not_offered_a_link_when_the_login_may_not_have_a_shell(link_bot, github, tmp_path):
    reader = unlinked(github, tmp_path, link_bot, "reader", role="read")
    done = await reader.ssh("true")
    assert done.returncode == 255
    assert b"this key is not one of reader's SSH keys on GitHub" in done.stderr and b"/ssh/link" not in done.stderr


async def test_the_sign_in_returns_only_to_the_link_page_on_the_bots_own_host(link_bot, github):
    browser = Browser(link_bot, github)
    for rd in ("https://bot.test/auth/check", "https://evil.test/ssh/link?code=x", "https://bot.test.evil.test/ssh/link",
               "https://bot.test//evil.test/ssh/link", "https://bot.test/ssh/linked"):
        status, _, _ = await browser.get(f"{PUBLIC}/auth/login?rd={rd}")
        assert status == 400, rd
    status, headers, _ = await browser.get(f"{PUBLIC}/auth/login?rd={PUBLIC}/ssh/link?code=x")
    assert status == 302 and "/login/oauth/authorize" in headers["Location"]


async def test_a_confirmation_without_the_pages_token_or_from_a_sibling_site_is_refused(link_bot, github, tmp_path):
    alice = unlinked(github, tmp_path, link_bot, "alice")
    waiting = Waiting(alice, "echo in")
    link = await waiting.link()
    browser, status, page = await open_link(link_bot, github, link, "alice")
    form = form_of(page)
    assert (await post(link_bot, browser, {"code": form["code"], "token": "0" * 64}))[0] == 403
    assert (await post(link_bot, Browser(link_bot, github), form))[0] == 403  # no session cookie
    headers = {"Host": "bot.test", "Cookie": browser.cookie_header("bot.test"), "Sec-Fetch-Site": "same-site"}
    async with link_bot.session.post(link_bot.url + "/ssh/link", data=form, headers=headers) as resp:
        assert resp.status == 403
    assert link_bot.bot.gateway.links.linked(fingerprint_of(alice)) is None
    assert (await post(link_bot, browser, form))[0] == 200  # the real page's form still works
    assert (await waiting.end()).returncode == 0
