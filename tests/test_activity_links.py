"""Browser use of a link counts as activity: every passed check, and a bridged WebSocket while its
browser sends messages (once a minute at most), through the bot's preview proxy (Cloudflare Tunnel mode)."""

from __future__ import annotations

import asyncio

from bot.access.preview_proxy import PREVIEW_PROXY_KEY
from tests.eventually import eventually
from tests.test_cloudflare_e2e import (  # noqa: F401  (the tunnel-mode fixtures)
    IDE_HOST,
    WS,
    bot,
    cloudflare,
    opened,
    signed_in,
    tunnel_environ,
    upstream,
)


async def test_a_passed_ide_check_counts_as_ide_use(bot, github, upstream):  # noqa: F811
    await opened(bot)
    record = bot.bot.environments.records[WS]
    record.active_at, record.active_via = 1.0, "command"
    browser = await signed_in(bot, github)
    async with bot.session.get(bot.url + "/", headers={"Host": IDE_HOST, "Cookie": browser.cookie_header(IDE_HOST)},
                               allow_redirects=False) as resp:
        assert resp.status == 200
    assert record.active_at > 1.0 and record.active_via == "ide"


async def test_ide_websocket_traffic_counts_periodically_not_only_at_the_handshake(bot, github, upstream):  # noqa: F811
    await opened(bot)
    bot.app[PREVIEW_PROXY_KEY].ws_activity_every = 0.2
    record = bot.bot.environments.records[WS]
    browser = await signed_in(bot, github)
    headers = {"Host": IDE_HOST, "Cookie": browser.cookie_header(IDE_HOST)}
    async with bot.session.ws_connect(bot.url + "/ws", headers=headers) as ws:
        await ws.send_str("hi")
        assert (await ws.receive()).data == "echo:hi"
        at_handshake = record.active_at
        assert record.active_via == "ide"
        await asyncio.sleep(0.3)  # the tab stays open and keeps talking
        await ws.send_str("still here")
        assert (await ws.receive()).data == "echo:still here"
        await eventually(lambda: record.active_at > at_handshake, what="the traffic to count as use")
        assert record.active_via == "ide"
        later = record.active_at
        await ws.send_str("again")  # within the interval: not noted again
        assert (await ws.receive()).data == "echo:again"
        assert record.active_at == later
        await ws.close()
