"""Tunnel routes and DNS records through the Cloudflare API (bot/cloudflare.py), against the emulator."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from bot.cluster.cloudflare import CloudflareTunnelRoutes
from bot.cluster.cloudflare_api import CloudflareError
from bot.cluster.tunnel_rules import CATCH_ALL, tunnel_routes
from bot.cluster.workspace import ExposureError, exposed_workspace
from bot.settings.cloudflare import CloudflareSettings
from bot.settings.exposure import ExposureSettings
from tests.cloudflare_emulator import CloudflareEmulator
from tests.cloudflare_emulator.fixtures import cloudflare  # noqa: F401

PROXY = "http://devenv-bot.devenv.svc:3000"
EXPOSURE = ExposureSettings(domain="preview.example.com", bot_service="devenv-bot", bot_port=3000,
                            auth_url="http://devenv-bot.devenv.svc:3000/auth/check", namespace="devenv-ws")
BOT_RULE = {"hostname": "devenv.example.com", "service": "http://devenv-bot.devenv.svc:3000"}
WILDCARD = {"hostname": "*.other.example.com", "service": "http://traefik.traefik.svc:80"}


def routes_of(ws_id: str, **ports: int) -> dict[str, str]:
    out = {f"code-{ws_id}.preview.example.com": PROXY}
    out.update({f"{name}-{ws_id}.preview.example.com": f"http://devenv-{ws_id}.devenv-ws.svc:{port}"
                for name, port in ports.items()})
    return out


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def settings(cloudflare):  # noqa: F811
    s = CloudflareSettings.from_env(cloudflare.env(DEVENV_CLOUDFLARE_AUTH_PROXY=PROXY + "/"))
    assert s is not None
    return s


@pytest.fixture
def tunnel(settings, session, sleeps):
    return CloudflareTunnelRoutes(settings, EXPOSURE, session, sleep=sleeps, backoff=0.5)


def seed(emu: CloudflareEmulator, *rules: dict) -> None:
    """An operator's configuration, as if written in the dashboard."""
    emu.config = {"ingress": [dict(r) for r in rules] + [dict(CATCH_ALL)]}


# --------------------------------------------------------------------------- settings


def test_the_mode_is_off_without_a_tunnel_id():
    assert CloudflareSettings.from_env({"DEVENV_CLOUDFLARE_API_TOKEN": "x" * 40}) is None


@pytest.mark.parametrize("missing", ["DEVENV_CLOUDFLARE_ACCOUNT_ID", "DEVENV_CLOUDFLARE_ZONE_ID",
                                     "DEVENV_CLOUDFLARE_API_TOKEN"])
def test_each_required_variable_is_named_when_missing(cloudflare, missing):  # noqa: F811
    env = cloudflare.env()
    del env[missing]
    with pytest.raises(ValueError, match=missing):
        CloudflareSettings.from_env(env)


def test_settings_default_to_the_public_api_and_hide_the_token(cloudflare):  # noqa: F811
    env = cloudflare.env()
    del env["DEVENV_CLOUDFLARE_API_URL"]
    s = CloudflareSettings.from_env(env)
    assert s.api_url == "https://api.cloudflare.com/client/v4"
    assert s.auth_proxy is None and s.proxy_previews is False
    assert cloudflare.api_token not in repr(s)
    assert s.cname_target == f"{cloudflare.tunnel_id}.cfargotunnel.com"


@pytest.mark.parametrize("var,value", [("DEVENV_CLOUDFLARE_TUNNEL_ID", "my-tunnel"),
                                       ("DEVENV_CLOUDFLARE_ZONE_ID", "example.com"),
                                       ("DEVENV_CLOUDFLARE_API_URL", "ftp://api.example.com"),
                                       ("DEVENV_CLOUDFLARE_AUTH_PROXY", "http://devenv-bot:3000/proxy"),
                                       ("DEVENV_CLOUDFLARE_PROXY_PREVIEWS", "maybe")])
def test_malformed_settings_are_refused_naming_the_variable(cloudflare, var, value):  # noqa: F811
    with pytest.raises(ValueError, match=var):
        CloudflareSettings.from_env(cloudflare.env(**{var: value}))


# --------------------------------------------------------------------------- apply / remove


async def test_apply_publishes_each_port_before_the_catch_all_with_a_proxied_cname(cloudflare, tunnel):  # noqa: F811
    await tunnel.apply("ws1", routes_of("ws1", web=8080))

    ingress = cloudflare.ingress
    assert ingress[-1]["service"] == "http_status:404" and "hostname" not in ingress[-1]
    by_host = {r.get("hostname"): r for r in ingress}
    assert by_host["code-ws1.preview.example.com"]["service"] == PROXY
    assert by_host["web-ws1.preview.example.com"]["service"] == "http://devenv-ws1.devenv-ws.svc:8080"
    assert by_host["web-ws1.preview.example.com"]["originRequest"]["connectTimeout"] == 10
    put = cloudflare.calls_of("PUT", "/configurations")[0]
    assert set(put.body) == {"config"} and put.authorization == f"Bearer {cloudflare.api_token}"
    for host in routes_of("ws1", web=8080):
        record = cloudflare.record(host)
        assert record["type"] == "CNAME" and record["proxied"] is True and record["ttl"] == 1
        assert record["content"] == f"{cloudflare.tunnel_id}.cfargotunnel.com"
        assert record["comment"] == "devenv-bot:ws1"


async def test_a_fresh_tunnel_without_configuration_gets_the_catch_all(cloudflare, tunnel):  # noqa: F811
    assert cloudflare.config is None
    await tunnel.apply("ws1", routes_of("ws1"))
    assert cloudflare.hostnames() == ["code-ws1.preview.example.com", None]


async def test_other_rules_and_other_workspaces_are_untouched(cloudflare, tunnel):  # noqa: F811
    seed(cloudflare, BOT_RULE, WILDCARD)
    await tunnel.apply("ws1", routes_of("ws1", web=8080))
    await tunnel.apply("ws2", routes_of("ws2"))
    # the workspaces' rules go before the operator's wildcard (first match wins)
    assert cloudflare.hostnames() == ["devenv.example.com", "code-ws1.preview.example.com",
                                      "web-ws1.preview.example.com", "code-ws2.preview.example.com",
                                      "*.other.example.com", None]
    ws1_rules = [r for r in cloudflare.ingress if "ws1" in str(r.get("hostname"))]

    await tunnel.remove("ws2")

    assert [r for r in cloudflare.ingress if "ws1" in str(r.get("hostname"))] == ws1_rules
    assert cloudflare.ingress[0] == {**BOT_RULE, "originRequest": {}}
    assert cloudflare.hostnames()[-2:] == ["*.other.example.com", None]
    assert cloudflare.config["warp-routing"] == {"enabled": False}  # other top-level keys kept
    assert cloudflare.record("code-ws1.preview.example.com") is not None


async def test_applying_the_same_routes_again_writes_nothing(cloudflare, tunnel):  # noqa: F811
    seed(cloudflare, BOT_RULE)
    await tunnel.apply("ws1", routes_of("ws1", web=8080))
    before = len(cloudflare.writes())

    await tunnel.apply("ws1", routes_of("ws1", web=8080))

    assert len(cloudflare.writes()) == before
    assert cloudflare.config_version == 1


async def test_a_port_that_goes_away_loses_its_rule_and_record(cloudflare, tunnel):  # noqa: F811
    await tunnel.apply("ws1", routes_of("ws1", web=8080, api=9000))
    await tunnel.apply("ws1", routes_of("ws1", web=8081))

    assert cloudflare.hostnames() == ["code-ws1.preview.example.com", "web-ws1.preview.example.com", None]
    assert cloudflare.ingress[1]["service"] == "http://devenv-ws1.devenv-ws.svc:8081"
    assert cloudflare.record("api-ws1.preview.example.com") is None


async def test_remove_withdraws_the_rules_and_dns_records(cloudflare, tunnel):  # noqa: F811
    seed(cloudflare, BOT_RULE)
    cloudflare.add_record("devenv.example.com", f"{cloudflare.tunnel_id}.cfargotunnel.com")
    await tunnel.apply("ws1", routes_of("ws1", web=8080))

    assert await tunnel.remove("ws1") == 2

    assert cloudflare.hostnames() == ["devenv.example.com", None]
    assert [r["name"] for r in cloudflare.records.values()] == ["devenv.example.com"]
    writes = len(cloudflare.writes())
    assert await tunnel.remove("ws1") == 0  # nothing left: no write
    assert len(cloudflare.writes()) == writes


async def test_remove_orphans_sweeps_only_gone_workspaces(cloudflare, tunnel):  # noqa: F811
    seed(cloudflare, BOT_RULE)
    for ws in ("ws1", "ws2", "ws3"):
        await tunnel.apply(ws, routes_of(ws))
    # a record tagged like ours but outside the preview domain is never touched
    cloudflare.add_record("elsewhere.example.com", f"{cloudflare.tunnel_id}.cfargotunnel.com",
                          comment="devenv-bot:ws9")

    assert await tunnel.remove_orphans(["ws2"]) == {"ws1", "ws3"}

    assert cloudflare.hostnames() == ["devenv.example.com", "code-ws2.preview.example.com", None]
    assert sorted(r["name"] for r in cloudflare.records.values()) == ["code-ws2.preview.example.com",
                                                                        "elsewhere.example.com"]


async def test_records_are_found_across_pages(cloudflare, tunnel):  # noqa: F811
    cloudflare.max_per_page = 2
    await tunnel.apply("ws1", routes_of("ws1", a=81, b=82, c=83, d=84))
    assert await tunnel.remove("ws1") == 5
    assert cloudflare.records == {}


async def test_a_stale_record_of_ours_is_corrected(cloudflare, tunnel):  # noqa: F811
    host = "code-ws1.preview.example.com"
    cloudflare.add_record(host, "0ld-tunnel.cfargotunnel.com", proxied=False, comment="devenv-bot:ws1")

    await tunnel.apply("ws1", routes_of("ws1"))

    record = cloudflare.record(host)
    assert record["content"] == f"{cloudflare.tunnel_id}.cfargotunnel.com" and record["proxied"] is True
    assert len(cloudflare.calls_of("PUT", "/dns_records/")) == 1


async def test_a_record_someone_else_made_is_not_taken_over(cloudflare, tunnel):  # noqa: F811
    cloudflare.add_record("code-ws1.preview.example.com", "192.0.2.1", type="A")

    with pytest.raises(CloudflareError, match="devenv-bot did not create"):
        await tunnel.apply("ws1", routes_of("ws1"))

    assert cloudflare.record("code-ws1.preview.example.com")["content"] == "192.0.2.1"


async def test_a_retried_create_that_had_gone_through_is_accepted(cloudflare, tunnel, monkeypatch):  # noqa: F811
    host = "code-ws1.preview.example.com"
    cloudflare.add_record(host, f"{cloudflare.tunnel_id}.cfargotunnel.com", comment="devenv-bot:ws1")
    real = cloudflare._list_records
    misses = [host]

    def list_records(query):  # the first lookup misses it, as if a lost POST answer had created it
        if query.get("name") in misses:
            misses.remove(query["name"])
            return real({**query, "name": "nothing.example.com"})
        return real(query)

    monkeypatch.setattr(cloudflare, "_list_records", list_records)
    await tunnel.apply("ws1", routes_of("ws1"))

    assert [c.status for c in cloudflare.calls_of("POST")] == [400]
    assert len(cloudflare.records) == 1
    cloudflare.rejections.clear()  # the 81053 was the point of this test


async def test_concurrent_applies_do_not_lose_each_others_rules(cloudflare, tunnel):  # noqa: F811
    await asyncio.gather(*(tunnel.apply(f"ws{i}", routes_of(f"ws{i}")) for i in range(5)))
    assert sorted(h for h in cloudflare.hostnames() if h) == [f"code-ws{i}.preview.example.com" for i in range(5)]


# --------------------------------------------------------------------------- the IDE


def test_the_ide_is_not_published_without_the_auth_proxy(cloudflare):  # noqa: F811
    s = CloudflareSettings.from_env(cloudflare.env())
    ws = exposed_workspace(EXPOSURE, "ws1", ports={"web": 8080})
    with pytest.raises(ExposureError, match="DEVENV_CLOUDFLARE_AUTH_PROXY"):
        tunnel_routes(EXPOSURE, s, ws)


def test_routes_send_the_ide_to_the_proxy_and_apps_to_the_service(settings):
    ws = exposed_workspace(EXPOSURE, "ws1", ports={"web": 8080})
    assert tunnel_routes(EXPOSURE, settings, ws) == routes_of("ws1", web=8080)
    proxied = CloudflareSettings(**{**settings.__dict__, "proxy_previews": True})
    assert set(tunnel_routes(EXPOSURE, proxied, ws).values()) == {PROXY}


@pytest.mark.parametrize("routes", [
    {"code-ws1.preview.example.com": "http://devenv-ws1.devenv-ws.svc:10800"},
    {"web-ws1.preview.example.com": "http://devenv-ws1.devenv-ws.svc:10800"},  # the IDE's port by another name
    {"code-ws1.preview.example.com": "http://evil.example.net"},
])
async def test_apply_refuses_a_direct_route_to_the_ide(cloudflare, tunnel, routes):  # noqa: F811
    with pytest.raises(ExposureError, match="IDE"):
        await tunnel.apply("ws1", routes)
    assert cloudflare.calls == []


@pytest.mark.parametrize("host", ["code-ws2.preview.example.com", "code-ws1.example.org", "*.preview.example.com",
                                  "code-ws1.preview.example.com:443"])
async def test_apply_refuses_hosts_that_are_not_the_workspaces_own(cloudflare, tunnel, host):  # noqa: F811
    with pytest.raises(ExposureError):
        await tunnel.apply("ws1", {host: PROXY})
    assert cloudflare.calls == []


async def test_without_a_proxy_the_ide_host_is_refused_even_pointing_at_the_bot(cloudflare, session):  # noqa: F811
    tunnel = CloudflareTunnelRoutes(CloudflareSettings.from_env(cloudflare.env()), EXPOSURE, session)
    with pytest.raises(ExposureError, match=r"AUTH_PROXY \(unset\)"):
        await tunnel.apply("ws1", {"code-ws1.preview.example.com": PROXY})


# --------------------------------------------------------------------------- errors


async def test_an_api_error_surfaces_with_cloudflares_message(cloudflare, tunnel):  # noqa: F811
    cloudflare.inject("PUT", "/configurations$", 400,
                      errors=[{"code": 1056, "message": "Bad Request: tunnel quota exceeded"}])
    with pytest.raises(CloudflareError) as info:
        await tunnel.apply("ws1", routes_of("ws1"))
    assert info.value.status == 400 and info.value.codes == [1056]
    assert "[1056] Bad Request: tunnel quota exceeded" in str(info.value)
    assert info.value.messages == ["[1056] Bad Request: tunnel quota exceeded"]
    assert len(cloudflare.calls_of("PUT")) == 1  # a 400 is not retried


async def test_success_false_with_a_200_is_an_error_too(cloudflare, tunnel):  # noqa: F811
    cloudflare.inject("GET", "/configurations$", 200, errors=[{"code": 1001, "message": "Tunnel is deleted"}])
    with pytest.raises(CloudflareError, match="Tunnel is deleted"):
        await tunnel.check()


async def test_a_bad_token_is_an_authentication_error_and_never_shown(cloudflare, session, caplog):  # noqa: F811
    s = CloudflareSettings.from_env(cloudflare.env(DEVENV_CLOUDFLARE_API_TOKEN="not-the-token-0123456789"))
    tunnel = CloudflareTunnelRoutes(s, EXPOSURE, session, sleep=Sleeps())
    with caplog.at_level(logging.DEBUG), pytest.raises(CloudflareError) as info:
        await tunnel.check()
    assert info.value.status == 403 and info.value.codes == [10000]
    assert "Authentication error" in str(info.value)
    assert "not-the-token-0123456789" not in str(info.value) + caplog.text
    assert len(cloudflare.calls) == 1


async def test_unknown_tunnel_and_zone_ids_are_not_found(cloudflare, session):  # noqa: F811
    for var in ("DEVENV_CLOUDFLARE_TUNNEL_ID", "DEVENV_CLOUDFLARE_ZONE_ID"):
        other = {"DEVENV_CLOUDFLARE_TUNNEL_ID": "00000000-0000-4000-8000-000000000000",
                 "DEVENV_CLOUDFLARE_ZONE_ID": "0" * 32}[var]
        tunnel = CloudflareTunnelRoutes(CloudflareSettings.from_env(cloudflare.env(
            DEVENV_CLOUDFLARE_AUTH_PROXY=PROXY, **{var: other})), EXPOSURE,
                                        session, sleep=Sleeps())
        with pytest.raises(CloudflareError) as info:
            await tunnel.apply("ws1", routes_of("ws1"))
        assert info.value.status == 404 and "perhaps your object identifier is invalid" in str(info.value)


async def test_a_locally_managed_tunnel_is_refused(cloudflare, tunnel):  # noqa: F811
    cloudflare.tunnel_source = "local"
    with pytest.raises(CloudflareError, match="locally managed"):
        await tunnel.apply("ws1", routes_of("ws1"))
    assert cloudflare.writes() == []


async def test_server_errors_are_retried_with_backoff(cloudflare, tunnel, sleeps, caplog):  # noqa: F811
    cloudflare.inject("GET", "/configurations$", 500, times=2)
    with caplog.at_level(logging.WARNING):
        await tunnel.apply("ws1", routes_of("ws1"))
    assert sleeps == [0.5, 1.0]
    assert cloudflare.hostnames() == ["code-ws1.preview.example.com", None]
    assert cloudflare.api_token not in caplog.text


async def test_a_rate_limit_waits_for_retry_after(cloudflare, tunnel, sleeps):  # noqa: F811
    cloudflare.inject("POST", "/dns_records$", 429, retry_after=7)
    await tunnel.apply("ws1", routes_of("ws1"))
    assert sleeps == [7.0]
    assert cloudflare.record("code-ws1.preview.example.com") is not None


async def test_retries_are_bounded_and_long_waits_capped(cloudflare, tunnel, sleeps):  # noqa: F811
    cloudflare.inject("GET", "/configurations$", 429, retry_after=300, times=10)
    with pytest.raises(CloudflareError) as info:
        await tunnel.apply("ws1", routes_of("ws1"))
    assert info.value.status == 429 and "Rate limited" in str(info.value)
    assert sleeps == [30.0, 30.0, 30.0]
    assert len(cloudflare.calls) == 4


async def test_an_unreachable_api_is_an_error_after_retries(settings, session):
    s = CloudflareSettings(**{**settings.__dict__, "api_url": "http://127.0.0.1:9/client/v4"})
    sleeps = Sleeps()
    with pytest.raises(CloudflareError, match="no response"):
        await CloudflareTunnelRoutes(s, EXPOSURE, session, sleep=sleeps, retries=2).check()
    assert sleeps == [1.0, 2.0]


# --------------------------------------------------------------------------- the emulator itself


@pytest.mark.parametrize("ingress,message", [
    ([{"hostname": "a.example.com", "service": "http://x:80"}], "last ingress rule must match all URLs"),
    ([{"service": "http_status:404"}, {"service": "http_status:404"}], "not the last rule"),
    ([{"hostname": "a.example.com:443", "service": "http://x:80"}, CATCH_ALL], "port"),
    ([{"hostname": "a.*.example.com", "service": "http://x:80"}, CATCH_ALL], "wildcard"),
    ([{"hostname": "a.example.com", "service": "http://x:80/app"}, CATCH_ALL], "different path"),
    ([{"hostname": "a.example.com", "service": "x:80"}, CATCH_ALL], "invalid address"),
])
async def test_the_emulator_rejects_what_cloudflared_rejects(cloudflare, session, ingress, message):  # noqa: F811
    url = cloudflare.api_url + f"/accounts/{cloudflare.account_id}/cfd_tunnel/{cloudflare.tunnel_id}/configurations"
    async with session.put(url, json={"config": {"ingress": ingress}},
                           headers={"Authorization": f"Bearer {cloudflare.api_token}"}) as resp:
        doc = await resp.json()
    assert resp.status == 400 and doc["success"] is False and doc["result"] is None
    assert message in doc["errors"][0]["message"]
    cloudflare.rejections.clear()


@pytest.mark.parametrize("record,code", [
    ({"type": "CNAME", "name": "a.example.com", "content": "t.cfargotunnel.com", "proxied": "true"}, 9003),
    ({"type": "CNAME", "name": "a.example.com", "content": "not a host"}, 9020),
    ({"type": "CNAME", "name": "a.example.org", "content": "t.cfargotunnel.com"}, 1004),
])
async def test_the_emulator_validates_dns_records(cloudflare, session, record, code):  # noqa: F811
    async with session.post(cloudflare.api_url + f"/zones/{cloudflare.zone_id}/dns_records", json=record,
                            headers={"Authorization": f"Bearer {cloudflare.api_token}"}) as resp:
        doc = await resp.json()
    assert resp.status == 400 and doc["errors"][0]["code"] == code
    cloudflare.rejections.clear()


async def test_a_workspace_keeps_its_place_among_rules_added_later(cloudflare, tunnel):  # noqa: F811
    seed(cloudflare, BOT_RULE, WILDCARD)
    await tunnel.apply("ws1", routes_of("ws1"))
    ingress = cloudflare.config["ingress"]
    ingress.insert(2, {"hostname": "added.example.com", "service": "http://x.y.svc:80", "originRequest": {}})
    writes = len(cloudflare.writes())

    await tunnel.apply("ws1", routes_of("ws1"))

    assert len(cloudflare.writes()) == writes
