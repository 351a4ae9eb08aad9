"""Previews without an ingress controller, end to end: the Cloudflare Tunnel API mode.

The real bot on a socket, the GitHub emulator, the stand-in devpod, the fake Kubernetes API (through
a kubeconfig, as in test_links_e2e.py) and the Cloudflare API emulator. The tunnel's rules route the
IDE's host to the bot (``DEVENV_CLOUDFLARE_AUTH_PROXY``); the bot's preview proxy
(bot/preview_proxy.py) checks the browser and forwards to the workspace, here a stand-in upstream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from yarl import URL

from bot.access.preview_proxy import PREVIEW_PROXY_KEY
from bot.access.service import ACCESS_KEY
from bot.access.sessions import Identity
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.cloudflare_emulator import CloudflareEmulator
from tests.eventually import eventually
from tests.observe import sticky
from tests.test_access import DOMAIN, PUBLIC, Browser

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
WS = "hello-world-pr2-4d960c"
NS = "devenvs"
PROXY = "http://devenv-bot.devenv.svc:3000"
IDE_HOST = f"code-{WS}.{DOMAIN}"
WEB_HOST = f"web-{WS}.{DOMAIN}"
IDE = f"https://{IDE_HOST}/"
SETTINGS = "ports:\n  - {name: web, port: 3000}\n"


def names(kube, plural: str) -> set[str]:
    return {o["metadata"]["name"] for o in kube.objects(plural, NS)}


@pytest_asyncio.fixture
async def cloudflare() -> AsyncIterator[CloudflareEmulator]:
    emu = CloudflareEmulator(zone_name=DOMAIN)
    # The operator's rules: the bot's own host, and the catch-all.
    emu.config = {"ingress": [{"hostname": "bot.test", "service": PROXY}, {"service": "http_status:404"}]}
    await emu.start()
    try:
        yield emu
    finally:
        await emu.close()
    emu.assert_valid()


class Upstream:
    """A stand-in for the workspace's Service: echoes HTTP requests and WebSocket messages."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        seen = {"method": request.method, "path": request.raw_path, "headers": dict(request.headers),
                "body": body.decode()}
        self.seen.append(seen)
        resp = web.json_response(seen, headers={"X-Upstream": "yes"})
        resp.set_cookie("app", "1")
        return resp

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        self.seen.append({"method": "WS", "path": request.raw_path, "headers": dict(request.headers)})
        ws = web.WebSocketResponse(protocols=("echo",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                if msg.data == "bye":
                    await ws.close(code=4001, message=b"bye")
                    break
                if msg.data.startswith("big:"):  # the PR's app sending one huge message
                    await ws.send_bytes(b"x" * int(msg.data[4:]))
                    continue
                await ws.send_str("echo:" + msg.data)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        self.seen.append({"method": "WS closed", "code": ws.close_code})
        return ws

    async def start(self) -> Upstream:
        app = web.Application()
        app.router.add_get("/ws", self.ws)
        app.router.add_route("*", "/{tail:.*}", self.echo)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
def tunnel_environ(environ, kube, tmp_path, github, repo, cloudflare):
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", NS)
    base = payloads.pull_request("opened")["pull_request"]["base"]["sha"]
    github.set_file(OWNER, REPO, ".github/devenv.yml", SETTINGS, ref=base)
    # No DEVENV_AUTH_URL and no DEVENV_BOT_SERVICE: there is no ingress controller to use them.
    return {**environ, "KUBECONFIG": str(kubeconfig), "DEVENV_PREVIEW_DOMAIN": DOMAIN, "DEVENV_PUBLIC_URL": PUBLIC,
            "DEVENV_NAMESPACE": NS, **cloudflare.env(DEVENV_CLOUDFLARE_AUTH_PROXY=PROXY)}


@pytest.fixture
async def upstream():
    up = await Upstream().start()
    yield up
    await up.close()


@pytest.fixture
async def bot(tunnel_environ, upstream):
    srv = await BotServer(config.load(tunnel_environ)).start()
    srv.app[PREVIEW_PROXY_KEY].resolve = lambda ws_id, port: upstream.url if ws_id == WS else None
    yield srv
    await srv.stop()


async def opened(bot) -> None:
    status, _ = await bot.deliver("pull_request", payloads.pull_request("opened"))
    assert status == 202
    await bot.settle()


def tunnel_rules(cloudflare) -> dict[str, str]:
    return {r["hostname"]: r["service"] for r in cloudflare.ingress if r.get("hostname", "").endswith(DOMAIN)}


# --------------------------------------------------------------------------- the lifecycle


def test_tunnel_mode_needs_no_forward_auth_url(tunnel_environ):
    settings = config.load(tunnel_environ)
    assert settings.cloudflare is not None and settings.cloudflare.auth_proxy == PROXY
    assert settings.exposure.auth_url is None
    env = {k: v for k, v in tunnel_environ.items() if not k.startswith("DEVENV_CLOUDFLARE_")}
    with pytest.raises(config.ConfigError, match="DEVENV_AUTH_URL"):
        config.load(env)  # the ingress mode still needs it
    with pytest.raises(config.ConfigError, match="DEVENV_CLOUDFLARE_ZONE_ID"):
        config.load({**tunnel_environ, "DEVENV_CLOUDFLARE_ZONE_ID": ""})


async def test_an_opened_pr_gets_tunnel_routes_a_service_and_no_ingress(bot, github, kube, cloudflare):
    await opened(bot)
    record = bot.bot.environments.records[WS]
    assert record.state == "running"
    assert tunnel_rules(cloudflare) == {IDE_HOST: PROXY, WEB_HOST: f"http://devenv-{WS}.{NS}.svc:3000"}
    assert cloudflare.ingress[-1] == {"service": "http_status:404", "originRequest": {}}
    assert cloudflare.hostnames()[0] == "bot.test"  # the operator's rule is kept, first
    for host in (IDE_HOST, WEB_HOST):
        rec = cloudflare.record(host)
        assert rec is not None and rec["proxied"] is True and rec["comment"] == f"devenv-bot:{WS}"
        assert rec["content"] == f"{cloudflare.tunnel_id}.cfargotunnel.com"
    assert names(kube, "services") == {f"devenv-{WS}"}
    assert names(kube, "ingresses") == set()
    assert record.links == [
        {"name": "code", "url": f"{IDE}?folder=/workspaces/{WS}", "permission": "write"},
        {"name": "web", "url": f"https://{WEB_HOST}/", "permission": "read"},
    ]
    body = sticky(github)
    assert f"({IDE}?folder=/workspaces/{WS})" in body and f"(https://{WEB_HOST}/)" in body
    assert "not exposed yet" not in body
    # A push applies again and writes nothing.
    writes = len(cloudflare.writes())
    await bot.deliver("pull_request", payloads.pull_request("synchronize", head_sha="c" * 40))
    await bot.settle()
    assert len(cloudflare.writes()) == writes


async def test_closing_the_pr_removes_the_routes_records_and_service(bot, github, kube, cloudflare):
    await opened(bot)
    assert tunnel_rules(cloudflare)
    await bot.deliver("pull_request", payloads.pull_request("closed"))
    await bot.settle()
    assert tunnel_rules(cloudflare) == {}
    assert cloudflare.records == {}
    assert names(kube, "services") == set()
    assert cloudflare.hostnames() == ["bot.test", None]
    assert "⚫ Deleted" in sticky(github)


async def test_a_cloudflare_api_error_leaves_a_working_environment_and_says_why(bot, github, cloudflare):
    cloudflare.inject("POST", "/dns_records", 400, errors=[{"code": 9999, "message": "Quota exceeded"}])
    await opened(bot)
    record = bot.bot.environments.records[WS]
    assert record.state == "running" and record.links == []
    [run] = [c for c in github.check_runs(OWNER, REPO) if c["name"] == "devenv"]
    assert run["conclusion"] == "success"
    # the API error surfaces in the check run as well as in the comment
    assert "the Cloudflare API answered: [9999] Quota exceeded" in run["output"]["summary"]
    assert cloudflare.api_token not in run["output"]["summary"]
    body = sticky(github)
    assert "Browser links could not be created: the Cloudflare API answered: [9999] Quota exceeded" in body
    assert cloudflare.account_id not in body and cloudflare.api_token not in body
    assert "The environment works over SSH" in body and "not exposed yet" in body
    # the next push tries again
    await bot.deliver("pull_request", payloads.pull_request("synchronize", head_sha="d" * 40))
    await bot.settle()
    assert "could not be created" not in sticky(github) and cloudflare.record(IDE_HOST) is not None


async def test_the_ide_is_not_published_without_the_auth_proxy(tunnel_environ, github, cloudflare, kube):
    env = {**tunnel_environ, "DEVENV_CLOUDFLARE_AUTH_PROXY": ""}
    srv = await BotServer(config.load(env)).start()
    try:
        await opened(srv)
        assert srv.bot.environments.records[WS].state == "running"
        assert tunnel_rules(cloudflare) == {}
        assert "DEVENV_CLOUDFLARE_AUTH_PROXY" in sticky(github)
    finally:
        await srv.stop()


async def test_a_wrong_token_stops_the_start_with_a_clear_error(tunnel_environ, cloudflare):
    srv = BotServer(config.load({**tunnel_environ, "DEVENV_CLOUDFLARE_API_TOKEN": "wrong-token"}))
    with pytest.raises(RuntimeError, match=r"Cloudflare API refused.*\[10000\] Authentication error"):
        await srv.start()
    await srv.stop()


async def test_routes_of_workspaces_gone_while_the_bot_was_down_are_swept_at_start(tunnel_environ, cloudflare,
                                                                                   kube):
    gone = "gone-pr9-abcdef"
    cloudflare.config["ingress"].insert(0, {"hostname": f"code-{gone}.{DOMAIN}", "service": PROXY})
    cloudflare.add_record(f"code-{gone}.{DOMAIN}", f"{cloudflare.tunnel_id}.cfargotunnel.com",
                          comment=f"devenv-bot:{gone}")
    srv = await BotServer(config.load(tunnel_environ)).start()
    try:
        assert cloudflare.hostnames() == ["bot.test", None]
        assert cloudflare.records == {}
    finally:
        await srv.stop()


# --------------------------------------------------------------------------- the auth proxy


async def request(bot, method: str, host: str, path: str, *, cookie: str = "", **kw):
    headers = {"Host": host, **kw.pop("headers", {})}
    if cookie:
        headers["Cookie"] = cookie
    url = URL(bot.url + path, encoded=True)
    async with bot.session.request(method, url, headers=headers, allow_redirects=False, **kw) as resp:
        return resp.status, resp.headers, await resp.text()


async def signed_in(bot, github, login: str = "Codertocat") -> Browser:
    github.oauth_login = login
    browser = Browser(bot, github)
    status, url, text = await browser.sign_in(IDE)
    assert (status, url) == (200, IDE), text
    return browser


async def test_without_a_cookie_the_ide_host_redirects_to_sign_in(bot, upstream):
    await opened(bot)
    status, headers, _ = await request(bot, "GET", IDE_HOST, "/some/page?x=1")
    assert status == 302
    assert headers["Location"].startswith(f"{PUBLIC}/auth/login?rd=")
    assert "code-hello-world-pr2-4d960c.preview.test%2Fsome%2Fpage%3Fx%3D1" in headers["Location"]
    assert upstream.seen == []
    # The bot's own host is not proxied; nor are the bot's routes served on a preview host.
    status, _, text = await request(bot, "GET", "bot.test", "/healthz")
    assert status == 200 and "alive" in text
    status, _, _ = await request(bot, "GET", IDE_HOST, "/metrics")
    assert status == 302 and upstream.seen == []


async def test_a_writer_is_proxied_and_the_upstream_never_sees_the_devenv_cookie(bot, github, upstream):
    await opened(bot)
    browser = await signed_in(bot, github)
    cookie = browser.cookie_header(IDE_HOST)
    assert "devenv-" in cookie
    status, headers, text = await request(
        bot, "POST", IDE_HOST, "/api/save?folder=%2Fworkspaces", cookie=cookie + "; theme=dark", data=b"hello",
        headers={"X-Devenv-User": "forged", "X-Forwarded-Host": "evil.test", "Connection": "keep-alive, X-Drop",
                 "X-Drop": "1"})
    assert status == 200, text
    assert headers["X-Upstream"] == "yes"
    seen = json.loads(text)
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/api/save?folder=%2Fworkspaces", "hello")
    sent = seen["headers"]
    assert sent["Cookie"] == "theme=dark"
    assert "devenv" not in json.dumps(sent).replace("X-Devenv", "").lower().replace("devenv-bot", "")
    assert sent["X-Devenv-User"] == "Codertocat" and sent["X-Devenv-Permission"] == "admin"
    assert sent["Host"] == IDE_HOST and sent["X-Forwarded-Host"] == IDE_HOST
    assert sent["X-Forwarded-Proto"] == "https" and "X-Drop" not in sent
    assert [c for c in headers.getall("Set-Cookie")] == ["app=1; Path=/"]
    # The bot's own routes are still the bot's on its own host.
    status, _, _ = await request(bot, "GET", "bot.test", "/healthz")
    assert status == 200 and len(upstream.seen) == 1
    # The proxy's check is /auth/check's: one proxied request, one allowed check.
    assert 'devenv_link_checks_total{decision="allowed"} 1.0' in (await bot.get("/metrics"))[1]


async def test_a_websocket_is_bridged_both_ways_and_closes_through(bot, github, upstream):
    await opened(bot)
    browser = await signed_in(bot, github)
    headers = {"Host": IDE_HOST, "Cookie": browser.cookie_header(IDE_HOST) + "; theme=dark"}
    async with bot.session.ws_connect(bot.url + "/ws?x=1", headers=headers, protocols=("echo",)) as ws:
        assert ws.protocol == "echo"
        await ws.send_str("hi")
        assert (await ws.receive()).data == "echo:hi"
        await ws.send_bytes(b"abc")
        assert (await ws.receive()).data == b"cba"
        await ws.send_str("bye")  # the upstream closes with 4001: the browser sees that code
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4001
    [seen] = [s for s in upstream.seen if s["method"] == "WS"]
    assert seen["path"] == "/ws?x=1"
    assert seen["headers"]["Cookie"] == "theme=dark" and seen["headers"]["X-Devenv-User"] == "Codertocat"
    # The browser closing closes the upstream side too.
    async with bot.session.ws_connect(bot.url + "/ws", headers=headers) as ws:
        await ws.send_str("again")
        assert (await ws.receive()).data == "echo:again"
        await ws.close(code=4002)
    assert ws.closed
    await eventually(lambda: len([s for s in upstream.seen if s["method"] == "WS closed"]) == 2,
                     what="both WebSocket closes to reach the upstream")
    assert [s["code"] for s in upstream.seen if s["method"] == "WS closed"] == [4001, 4002]


async def test_a_sibling_previews_page_cannot_open_the_ides_websocket_or_post_to_it(bot, github, upstream):
    # Issue 11 item 1: the IDE host's cookie rides along on a socket another preview's page opens.
    await opened(bot)
    browser = await signed_in(bot, github)
    headers = {"Host": IDE_HOST, "Cookie": browser.cookie_header(IDE_HOST)}
    sibling = f"https://web-other-pr99-abcdef.{DOMAIN}"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await bot.session.ws_connect(bot.url + "/ws", headers=headers, origin=sibling)
    assert refused.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await bot.session.ws_connect(bot.url + "/ws", headers={**headers, "Sec-Fetch-Site": "same-site"})
    assert refused.value.status == 403
    status, _, page = await request(bot, "POST", IDE_HOST, "/api/run", cookie=headers["Cookie"], data=b"x",
                                    headers={"Origin": sibling})
    assert status == 403 and "may only come from its own pages" in page
    assert upstream.seen == []
    # The IDE's own page still opens its socket.
    async with bot.session.ws_connect(bot.url + "/ws", headers=headers, origin=f"https://{IDE_HOST}") as ws:
        await ws.send_str("mine")
        assert (await ws.receive()).data == "echo:mine"


async def test_a_websocket_message_over_the_cap_closes_both_sides_with_1009_either_way(bot, github, upstream):
    # Issue 11 item 5: messages were reassembled whatever their size (one 400 MB message: +780 MB).
    await opened(bot)
    proxy = bot.app[PREVIEW_PROXY_KEY]
    assert proxy.ws_max_message == 16 * 1024 * 1024
    proxy.ws_max_message = 64 * 1024  # the same check, with less to send
    browser = await signed_in(bot, github)
    headers = {"Host": IDE_HOST, "Cookie": browser.cookie_header(IDE_HOST)}
    async with bot.session.ws_connect(bot.url + "/ws", headers=headers, max_msg_size=0) as ws:
        await ws.send_bytes(b"y" * (64 * 1024))  # at the cap: passes
        assert len((await ws.receive()).data) == 64 * 1024
        await ws.send_bytes(b"y" * (64 * 1024 + 1))  # from the browser, over the cap
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009
    async with bot.session.ws_connect(bot.url + "/ws", headers=headers, max_msg_size=0) as ws:
        await ws.send_str(f"big:{64 * 1024 + 1}")  # from the PR's app, over the cap
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009
    await eventually(lambda: len([s for s in upstream.seen if s["method"] == "WS closed"]) == 2,
                     what="both WebSockets to close upstream")
    assert [s["code"] for s in upstream.seen if s["method"] == "WS closed"] == [1009, 1009]


async def test_a_websocket_without_a_cookie_is_not_upgraded(bot, upstream):
    await opened(bot)
    status, headers, _ = await request(bot, "GET", IDE_HOST, "/ws", headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert status == 302 and headers["Location"].startswith(f"{PUBLIC}/auth/login?rd=")
    assert upstream.seen == []


async def test_a_reader_gets_the_page_saying_why_for_the_ide(bot, github, upstream):
    await opened(bot)
    github.set_permission(OWNER, REPO, "reader", "read")
    access = bot.app[ACCESS_KEY]
    cookie = f"{access.host_cookie(IDE_HOST)}={access.host_cookie_value(Identity(77, 'reader'), IDE_HOST)}"
    status, headers, page = await request(bot, "GET", IDE_HOST, "/", cookie=cookie)
    assert status == 403 and "You need write access" in page
    assert upstream.seen == []
    metrics = (await bot.get("/metrics"))[1]
    assert 'devenv_link_checks_total{decision="forbidden"} 1.0' in metrics
    assert 'devenv_link_checks_total{decision="allowed"} 0.0' in metrics


async def test_a_stopped_environment_shows_the_stopped_page(bot, github, upstream):
    await opened(bot)
    browser = await signed_in(bot, github)
    await bot.deliver("pull_request", payloads.pull_request("converted_to_draft"))
    await bot.settle()
    status, _, page = await request(bot, "GET", IDE_HOST, "/", cookie=browser.cookie_header(IDE_HOST))
    assert status == 503 and "This environment is stopped" in page
    assert upstream.seen == []


async def test_an_upstream_that_does_not_answer_gets_a_502_page(bot, github, upstream):
    await opened(bot)
    browser = await signed_in(bot, github)
    bot.app[PREVIEW_PROXY_KEY].resolve = lambda ws_id, port: "http://127.0.0.1:1"
    status, _, page = await request(bot, "GET", IDE_HOST, "/", cookie=browser.cookie_header(IDE_HOST))
    assert status == 502 and "not answering" in page


# --------------------------------------------------------------------------- pieces


def test_the_service_only_backend_builds_the_service_and_nothing_else():
    from bot.cluster.exposure import Exposure, ExposureSettings
    from bot.cluster.routers import ServiceOnlyBackend, manifests
    from bot.cluster.workspace import exposed_workspace

    settings = ExposureSettings.from_env({"DEVENV_PREVIEW_DOMAIN": DOMAIN, "DEVENV_NAMESPACE": NS,
                                          "DEVENV_CLOUDFLARE_TUNNEL_ID": "x"})
    assert settings is not None and settings.auth_url is None
    ws = exposed_workspace(settings, WS, None, {"web": 3000})
    [service] = manifests(settings, ws, ServiceOnlyBackend(settings))
    assert service["kind"] == "Service" and service["metadata"]["name"] == f"devenv-{WS}"
    assert Exposure(settings, None, backend=ServiceOnlyBackend(settings)).kinds == (("v1", "Service", "services"),)


def test_the_tunnel_needs_a_preview_domain(tunnel_environ):
    env = {k: v for k, v in tunnel_environ.items() if k != "DEVENV_PREVIEW_DOMAIN"}
    with pytest.raises(config.ConfigError, match="DEVENV_CLOUDFLARE_TUNNEL_ID is set but DEVENV_PREVIEW_DOMAIN"):
        config.load(env)
