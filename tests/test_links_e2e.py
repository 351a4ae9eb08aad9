"""Browser links end to end: the real bot, the GitHub emulator, the stand-in devpod and the fake Kubernetes API.

The bot reaches the fake through a kubeconfig file, as an operator's bot outside the cluster would.
Every object it writes is validated by the fake (the ``kube`` fixture fails the test otherwise).
"""

from __future__ import annotations

import json

import pytest

from bot.environments.journal import Action
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.observe import sticky
from tests.test_access import DOMAIN, PUBLIC, Browser
from tests.test_golden import AT, SHA, compare, manager, record

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
WS = "hello-world-pr2-4d960c"
NS = "devenvs"
IDE = f"https://code-{WS}.{DOMAIN}/"
WEB = f"https://web-{WS}.{DOMAIN}/"
SETTINGS = "ports:\n  - {name: web, port: 3000}\n  - {name: admin, port: 8080, permission: write}\n"


def names(kube, plural: str) -> set[str]:
    return {o["metadata"]["name"] for o in kube.objects(plural, NS)}


@pytest.fixture
def links_environ(environ, kube, tmp_path, github, repo):
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", NS)
    base = payloads.pull_request("opened")["pull_request"]["base"]["sha"]
    github.set_file(OWNER, REPO, ".github/devenv.yml", SETTINGS, ref=base)
    return {**environ, "KUBECONFIG": str(kubeconfig), "DEVENV_PREVIEW_DOMAIN": DOMAIN, "DEVENV_PUBLIC_URL": PUBLIC,
            "DEVENV_AUTH_URL": "http://devenv-bot.devenvs.svc:3000/auth/check",
            "DEVENV_BOT_SERVICE": "devenv-bot:3000", "DEVENV_NAMESPACE": NS}


@pytest.fixture
async def bot(links_environ):
    srv = await BotServer(config.load(links_environ)).start()
    yield srv
    await srv.stop()


async def opened(bot) -> None:
    status, _ = await bot.deliver("pull_request", payloads.pull_request("opened"))
    assert status == 202
    await bot.settle()


async def test_an_opened_pr_gets_its_links_in_the_cluster_and_in_the_comment(bot, github, kube):
    await opened(bot)
    assert names(kube, "services") == {f"devenv-{WS}"}
    assert names(kube, "ingresses") == {f"devenv-{WS}-code", f"devenv-{WS}-web", f"devenv-{WS}-admin",
                                        f"devenv-{WS}--handoff"}
    service = kube.get("services", NS, f"devenv-{WS}")
    assert service["spec"]["selector"] == {"devenv-bot.dev/workspace": WS}
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"code": 10800, "web": 3000, "admin": 8080}
    code = kube.get("ingresses", NS, f"devenv-{WS}-code")
    assert code["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"].endswith("/auth/check")
    assert code["metadata"]["labels"]["devenv-bot.dev/repo"] == f"{OWNER}.{REPO}"
    assert code["metadata"]["labels"]["devenv-bot.dev/pr"] == str(NUMBER)

    record = bot.bot.environments.records[WS]
    assert record.state == "running"
    assert record.links == [
        {"name": "code", "url": f"{IDE}?folder=/workspaces/{WS}", "permission": "write"},
        {"name": "admin", "url": f"https://admin-{WS}.{DOMAIN}/", "permission": "write"},
        {"name": "web", "url": WEB, "permission": "read"},
    ]
    body = sticky(github)
    assert f"]({IDE}?folder=/workspaces/{WS}) — people with write access |" in body
    assert f"| App preview `web` | [`web-{WS}.{DOMAIN}`]({WEB}) — anyone who can read the repository |" in body
    assert f"| App preview `admin` | [`admin-{WS}.{DOMAIN}`](https://admin-{WS}.{DOMAIN}/) — people with write " \
           "access |" in body
    assert "not exposed yet" not in body


async def test_a_push_keeps_the_links_without_rewriting_them(bot, github, kube):
    await opened(bot)
    writes = len(kube.writes())
    await bot.deliver("pull_request", payloads.pull_request("synchronize", head_sha="c" * 40))
    await bot.settle()
    assert bot.bot.environments.records[WS].env_sha == "c" * 40
    assert len(kube.writes()) == writes  # applied again, nothing changed, nothing written
    assert f"({WEB})" in sticky(github)


async def test_closing_the_pr_removes_its_links(bot, github, kube):
    await opened(bot)
    assert names(kube, "ingresses")
    await bot.deliver("pull_request", payloads.pull_request("closed"))
    await bot.settle()
    assert names(kube, "services") == names(kube, "ingresses") == set()
    body = sticky(github)
    assert "⚫ Deleted" in body and DOMAIN not in body


async def test_links_of_workspaces_gone_while_the_bot_was_down_are_removed_at_start_up(links_environ, kube, github):
    first = await BotServer(config.load(links_environ)).start()
    try:
        await opened(first)
    finally:
        await first.stop()
    orphan = {"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "devenv-gone-pr9-abcdef", "namespace": NS,
                           "labels": {"app.kubernetes.io/managed-by": "devenv-bot",
                                      "devenv-bot.dev/workspace": "gone-pr9-abcdef"}},
              "spec": {"selector": {"devenv-bot.dev/workspace": "gone-pr9-abcdef"},
                       "ports": [{"name": "code", "port": 10800}]}}
    kube.put_object("services", NS, orphan)
    foreign = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "someone-else", "namespace": NS},
               "spec": {"ports": [{"name": "http", "port": 80}]}}
    kube.put_object("services", NS, foreign)
    second = await BotServer(config.load(links_environ)).start()
    try:
        assert names(kube, "services") == {f"devenv-{WS}", "someone-else"}  # the live workspace keeps its links
        assert f"devenv-{WS}-code" in names(kube, "ingresses")
    finally:
        await second.stop()


async def test_the_kubernetes_api_failing_leaves_a_working_environment_and_says_why_links_are_missing(
        bot, github, kube, devpod):
    kube.inject("GET", "/services", 403, "Forbidden")
    await opened(bot)
    record = bot.bot.environments.records[WS]
    assert record.state == "running" and record.links == []
    [run] = [c for c in github.check_runs(OWNER, REPO) if c["name"] == "devenv"]
    assert run["conclusion"] == "success"
    # the check run says it too, not only the comment
    assert "Browser links could not be created: the Kubernetes API answered 403 Forbidden" in run["output"]["summary"]
    body = sticky(github)
    assert "Browser links could not be created: the Kubernetes API answered 403 Forbidden" in body
    assert "The environment works over SSH" in body
    assert f"devpod ssh {WS}" in body and "not exposed yet" in body
    assert names(kube, "ingresses") == set()
    # the next push tries again, and the note goes away
    await bot.deliver("pull_request", payloads.pull_request("synchronize", head_sha="d" * 40))
    await bot.settle()
    body = sticky(github)
    assert "could not be created" not in body and f"({WEB})" in body


async def test_a_start_up_with_the_kubernetes_api_failing_still_starts(links_environ, kube, github):
    kube.inject("GET", "/services", 403, "Forbidden")
    srv = await BotServer(config.load(links_environ)).start()
    try:
        assert srv.bot.readiness.started
        await opened(srv)
        assert srv.bot.environments.records[WS].links
    finally:
        await srv.stop()


async def stopped(bot, github) -> Browser:
    await opened(bot)
    await bot.deliver("pull_request", payloads.pull_request("converted_to_draft"))
    await bot.settle()
    assert bot.bot.environments.records[WS].state == "stopped"
    github.oauth_login = "Codertocat"  # admin on the repository
    browser = Browser(bot, github)
    status, url, text = await browser.sign_in(IDE)
    assert (status, url) == (200, IDE), text
    return browser


async def test_a_stopped_environment_s_link_shows_how_to_wake_it_behind_ingress_nginx(bot, github, kube):
    browser = await stopped(bot, github)
    # Still routed: the Ingresses stay while the environment sleeps.
    assert f"devenv-{WS}-code" in names(kube, "ingresses")
    # nginx shows only its own page for a 403, so the check answers 401: nginx sends the browser to
    # auth-signin, where the bot (which knows the browser) shows the page.
    status, _, _ = await browser.check(IDE)
    assert status == 401
    status, _, page = await browser.sign_in(IDE)
    assert status == 503
    assert "This environment is stopped" in page
    assert "<code>/devenv up</code>" in page
    assert f'href="{github.url}/{OWNER}/{REPO}/pull/{NUMBER}"' in page
    assert "Wake" in page and "devenv</code> check run" in page


async def test_a_stopped_environment_s_link_shows_the_page_itself_behind_traefik(bot, github):
    browser = await stopped(bot, github)
    status, headers, page = await browser.check(IDE, style="traefik")
    assert status == 503 and headers["Cache-Control"] == "no-store"
    assert "This environment is stopped" in page and "development environment (VS Code)" in page
    # Not signed in on another preview host yet: Traefik follows the bot's 302 to sign-in, which
    # knows the browser and shows the same page there.
    status, headers, _ = await browser.check(WEB, style="traefik")
    assert status == 302
    status, _, page = await browser.follow(headers["Location"])
    assert status == 503 and "<code>web</code> preview" in page


async def test_the_stopped_page_is_only_for_people_who_may_open_the_link(bot, github):
    await stopped(bot, github)
    github.set_permission(OWNER, REPO, "reader", "read")
    github.oauth_login = "reader"
    reader = Browser(bot, github)
    status, url, _ = await reader.sign_in(WEB)
    assert (status, url) == (200, WEB)
    status, _, _ = await reader.check(IDE)
    assert status == 401  # not signed in on the IDE host: the usual sign-in, nothing about the state
    status, _, page = await reader.sign_in(IDE)
    assert status == 403 and "You need write access" in page and "stopped" not in page
    status, _, page = await reader.check(WEB, style="traefik")
    assert status == 503 and "This environment is stopped" in page


async def test_waking_the_environment_opens_the_link_again(bot, github):
    browser = await stopped(bot, github)
    await bot.deliver("pull_request", payloads.pull_request("ready_for_review"))
    await bot.settle()
    assert bot.bot.environments.records[WS].state == "running"
    status, headers, _ = await browser.check(IDE)
    assert status == 200 and headers["X-Devenv-User"] == "Codertocat"


def test_the_ide_link_opens_the_folder_devpod_reports(tmp_path):
    m = manager(tmp_path)
    assert m.links.workspace_folder(WS) is None  # no result file yet: the exposure's default is used
    result = tmp_path / "dp" / "contexts" / "default" / "workspaces" / WS / "workspace_result.json"
    result.parent.mkdir(parents=True)
    result.write_text(json.dumps({"SubstitutionContext": {"ContainerWorkspaceFolder": "/src/app (v2)"}}))
    assert m.links.workspace_folder(WS) == "/src/app (v2)"
    result.write_text("{not json")
    assert m.links.workspace_folder(WS) is None


def test_the_comment_with_links_matches_its_golden_file(tmp_path):
    env = {"DEVENV_PREVIEW_DOMAIN": "preview.example.com", "DEVENV_AUTH_URL": "http://bot:3000/auth/check",
           "DEVENV_BOT_SERVICE": "devenv-bot:3000", "DEVENV_PUBLIC_URL": "https://devenv.example.com"}
    host = "hello-world-pr2-4d960c.preview.example.com"
    links = [{"name": "code", "url": f"https://code-{host}/?folder=/src/app%20%28v2%29", "permission": "write"},
             {"name": "web", "url": f"https://web-{host}/", "permission": "read"},
             {"name": "admin", "url": f"https://admin-{host}/", "permission": "maintain"}]
    running = record(state="running", env_sha=SHA, links=links, last_action=Action("up", "Codertocat", AT, "succeeded"))
    compare("comment_links", manager(tmp_path, **env).comment_body(running))
    asleep = record(state="stopped", env_sha=SHA, links=links[:1],
                    last_action=Action("stop", "Codertocat", AT, "succeeded"))
    compare("comment_links_stopped", manager(tmp_path, **env).comment_body(asleep))


async def test_a_port_the_router_cannot_serve_costs_only_its_own_link(links_environ, github, kube):
    """The settings accept names up to 14 characters; a host template with a prefix leaves the router less room."""
    base = payloads.pull_request("opened")["pull_request"]["base"]["sha"]
    github.set_file(OWNER, REPO, ".github/devenv.yml",
                    "ports: [{name: web, port: 3000}, {name: administrators, port: 8080}]\n", ref=base)
    bot = await BotServer(config.load({**links_environ, "DEVENV_HOST_TEMPLATE": "p{port}-{id}"})).start()
    try:
        await opened(bot)
    finally:
        await bot.stop()
    record = bot.bot.environments.records[WS]
    assert [link["name"] for link in record.links] == ["code", "web"]
    assert names(kube, "ingresses") == {f"devenv-{WS}-code", f"devenv-{WS}-web", f"devenv-{WS}--handoff"}
    body = sticky(github)
    assert "Some ports got no browser link: port name 'administrators'" in body
    assert f"(https://pweb-{WS}.{DOMAIN}/)" in body
