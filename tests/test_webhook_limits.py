"""What an unauthenticated sender can make the webhook endpoint hold: refused early, bounded, timed out.

Real sockets on loopback: half-sent requests are written by hand, as an attacker would.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from bot.services import build
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer, sign


async def _start(environ, **extra: str) -> BotServer:
    settings = config.load({**environ, **extra})
    return await BotServer(settings, bot=build(settings, [])).start()


async def _open(srv: BotServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = srv.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


def _head(srv: BotServer, length: int, *, signed_body: bytes | None = None, event: str = "pull_request",
          signature: bool = True) -> bytes:
    lines = [f"POST {srv.settings.webhook_path} HTTP/1.1", "Host: bot", "Content-Type: application/json",
             f"Content-Length: {length}", f"X-GitHub-Delivery: {uuid.uuid4()}"]
    if event:
        lines.append(f"X-GitHub-Event: {event}")
    if signature:
        assert srv.settings.app is not None
        lines.append("X-Hub-Signature-256: " + sign(srv.settings.app.webhook_secret, signed_body or b"x"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _status(reader: asyncio.StreamReader, timeout: float = 5) -> int:
    line = await asyncio.wait_for(reader.readline(), timeout)
    return int(line.split()[1])


async def test_a_body_without_signature_or_event_is_refused_before_it_is_read(environ, repo):
    srv = await _start(environ)
    writers = []
    try:
        statuses = []
        for head in (_head(srv, 20_000_000, signature=False), _head(srv, 20_000_000, event="")):
            reader, writer = await _open(srv)
            writers.append(writer)
            writer.write(head + b"{")  # 20 MB announced, one byte sent: the answer must not wait for the rest
            await writer.drain()
            statuses.append(await _status(reader))
    finally:
        for writer in writers:
            writer.close()
        await srv.stop()
    assert statuses == [401, 400]


async def test_bodies_in_flight_beyond_the_budget_get_503_and_the_budget_is_given_back(environ, repo):
    srv = await _start(environ, DEVENV_WEBHOOK_BODY_BUDGET=str(1_000_000))
    body = json.dumps({**payloads.pull_request("opened"), "pad": "x" * 600_000}).encode()
    try:
        reader, writer = await _open(srv)  # a delivery that holds 600 KB of the budget, its end not sent
        writer.write(_head(srv, len(body), signed_body=body) + body[:-10])
        await writer.drain()
        await asyncio.sleep(0.3)
        status_over, _ = await srv.deliver("pull_request", body=body)
        writer.write(body[-10:])
        await writer.drain()
        first = await _status(reader)
        writer.close()
        status_after, _ = await srv.deliver("pull_request", body=body)
        held = srv.bot.endpoints.body_budget.held
    finally:
        await srv.stop()
    assert status_over == 503
    assert (first, status_after, held) == (202, 202, 0)


async def _closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1000), timeout) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def test_half_sent_requests_are_closed_and_cannot_starve_healthz(environ, repo):
    srv = await _start(environ, DEVENV_READ_TIMEOUT="1.5", DEVENV_MAX_CONNECTIONS="100")
    conns = []
    try:
        for _ in range(300):  # loopback only, a bounded count; each sends half its headers and stops
            reader, writer = await _open(srv)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: bot\r\nX-Slow: ")
            conns.append((reader, writer))
        await asyncio.sleep(0.2)
        status, _ = await asyncio.wait_for(srv.get("/healthz"), 3)
        evicted = sum(await asyncio.gather(*(_closed(r, 0.2) for r, _ in conns)))
        await asyncio.sleep(1.5)
        left_open = sum(not c for c in await asyncio.gather(*(_closed(r, 0.5) for r, _ in conns)))
    finally:
        for _, writer in conns:
            writer.close()
        await srv.stop()
    assert status == 200
    assert evicted >= 190  # the oldest idle ones made room beyond DEVENV_MAX_CONNECTIONS
    assert left_open == 0  # and none outlived the header timeout


async def test_a_delivery_whose_body_stops_arriving_gets_408(environ, repo):
    srv = await _start(environ, DEVENV_READ_TIMEOUT="1")
    body = json.dumps(payloads.pull_request("opened")).encode()
    try:
        reader, writer = await _open(srv)
        writer.write(_head(srv, len(body), signed_body=body) + body[:100])
        await writer.drain()
        status = await _status(reader, timeout=4)
        writer.close()
        held = srv.bot.endpoints.body_budget.held
    finally:
        await srv.stop()
    assert (status, held) == (408, 0)


async def test_a_delivery_id_that_is_not_utf8_or_too_long_gets_400_every_time(environ, repo):
    srv = await _start(environ)
    body = json.dumps(payloads.pull_request("opened")).encode()
    assert srv.settings.app is not None
    signature = sign(srv.settings.app.webhook_secret, body)
    statuses = []
    try:
        for delivery in (b"\xff\xfe-not-utf8", b"d" * 201, b"d" * 201):
            reader, writer = await _open(srv)
            writer.write(b"POST " + srv.settings.webhook_path.encode() + b" HTTP/1.1\r\nHost: bot\r\n"
                         b"Content-Type: application/json\r\nX-GitHub-Event: pull_request\r\n"
                         b"X-Hub-Signature-256: " + signature.encode() + b"\r\nX-GitHub-Delivery: " + delivery +
                         f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            statuses.append(await _status(reader))
            writer.close()
        status_ok, _ = await srv.deliver("pull_request", body=body, delivery="d" * 200)
        status_again, _ = await srv.deliver("pull_request", body=body, delivery="d" * 200)
    finally:
        await srv.stop()
    assert statuses == [400, 400, 400]
    assert (status_ok, status_again) == (202, 200)  # up to 200 characters, de-duplicated as usual


def test_a_delivery_log_with_bytes_that_are_not_utf8_does_not_stop_start_up(tmp_path, caplog):
    from bot.core.deliveries import SeenDeliveries

    (tmp_path / "deliveries.log").write_bytes(b"first\n\xff\xfe torn write\nlast\n")
    seen = SeenDeliveries(tmp_path)
    seen.add("after")
    seen.close()
    assert "first" in seen and "last" in seen and "after" in seen
    assert "skipped 1 unreadable line" in caplog.text
