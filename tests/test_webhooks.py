"""The webhook endpoint over a real socket, with real HMAC signatures."""

from __future__ import annotations

import asyncio
import json

from bot.core.dispatch import Router
from bot.services import build
from bot.settings.config import MAX_WEBHOOK_BYTES
from tests import payloads
from tests.botserver import BotServer, sign


def recording_router(seen: list, *, fail: bool = False, gate: asyncio.Event | None = None) -> Router:
    router = Router()

    @router.register("pull_request")
    async def record(event, ctx):
        if gate is not None:
            await gate.wait()
        seen.append((event.event, event.data.get("action"), event.delivery_id))

    if fail:
        @router.register("pull_request")
        async def explode(event, ctx):
            raise RuntimeError("boom")

    return router


async def start(settings, router) -> BotServer:
    return await BotServer(settings, bot=build(settings, [router])).start()


async def test_a_signed_delivery_is_accepted_with_202_and_handled_in_the_background(settings, repo):
    seen: list = []
    srv = await start(settings, recording_router(seen))
    try:
        status, answer = await srv.deliver("pull_request", payloads.pull_request("opened"), delivery="d-1")
        await srv.settle()
    finally:
        await srv.stop()
    assert status == 202 and answer["delivery"] == "d-1"
    assert seen == [("pull_request", "opened", "d-1")]


async def test_the_answer_does_not_wait_for_the_handler(settings, repo):
    seen: list = []
    gate = asyncio.Event()
    srv = await start(settings, recording_router(seen, gate=gate))
    try:
        status, _ = await srv.deliver("pull_request", payloads.pull_request("opened"))
        assert status == 202
        assert seen == []  # still blocked on the gate, yet GitHub got its answer
        assert len(srv.bot.tasks) == 1
        gate.set()
        await srv.settle()
    finally:
        await srv.stop()
    assert len(seen) == 1


async def test_a_bad_signature_gets_401_and_nothing_runs(settings, repo):
    seen: list = []
    srv = await start(settings, recording_router(seen))
    try:
        status, answer = await srv.deliver("pull_request", payloads.pull_request("opened"), secret="wrong-secret")
        await srv.settle()
    finally:
        await srv.stop()
    assert status == 401 and "signature" in answer["message"]
    assert seen == []


async def test_a_missing_signature_gets_401(settings, repo):
    seen: list = []
    srv = await start(settings, recording_router(seen))
    try:
        status, answer = await srv.deliver("pull_request", payloads.pull_request("opened"), unsigned=True)
        # a valid legacy SHA-1 signature alone is not enough either
        body = json.dumps(payloads.pull_request("opened")).encode()
        import hashlib
        import hmac

        sha1 = "sha1=" + hmac.new(settings.app.webhook_secret.encode(), body, hashlib.sha1).hexdigest()
        status_sha1, _ = await srv.deliver("pull_request", body=body, unsigned=True,
                                           headers={"X-Hub-Signature": sha1})
        await srv.settle()
    finally:
        await srv.stop()
    assert status == 401 and "X-Hub-Signature-256" in answer["message"]
    assert status_sha1 == 401
    assert seen == []


async def test_a_body_over_25_mb_gets_413(server):
    body = b'{"a":"' + b"x" * (MAX_WEBHOOK_BYTES + 10) + b'"}'
    status, answer = await server.deliver("pull_request", body=body)
    assert status == 413


async def test_invalid_json_with_a_valid_signature_gets_400(server):
    status, answer = await server.deliver("pull_request", body=b'{"action": "opened", ')
    assert status == 400 and "JSON" in answer["message"]


async def test_a_json_array_gets_400(server):
    status, answer = await server.deliver("pull_request", body=b"[1, 2]")
    assert status == 400


async def test_a_delivery_without_event_header_gets_400(server):
    body = json.dumps(payloads.ping()).encode()
    status, _ = await server.deliver("", body=body)
    assert status == 400


async def test_ping_is_answered_with_pong(server):
    status, answer = await server.deliver("ping", payloads.ping())
    assert status == 200 and answer["message"] == "pong"


async def test_an_event_nobody_handles_is_acknowledged_and_ignored(server):
    status, answer = await server.deliver("star", {"action": "created", "sender": {"login": "x"}})
    assert status == 202 and answer["message"] == "no handler for this event"
    assert len(server.bot.tasks) == 0


async def test_a_redelivered_delivery_is_not_acted_on_twice(settings, repo):
    seen: list = []
    srv = await start(settings, recording_router(seen))
    try:
        payload = payloads.pull_request("opened")
        first, _ = await srv.deliver("pull_request", payload, delivery="same-id")
        second, answer = await srv.deliver("pull_request", payload, delivery="same-id")
        await srv.settle()
    finally:
        await srv.stop()
    assert (first, second) == (202, 200)
    assert "duplicate" in answer["message"]
    assert len(seen) == 1


async def test_a_delivery_whose_handler_raised_is_handled_again_when_redelivered(settings, repo):
    # Issue 11 item 11: it used to be marked seen before the handlers ran, so a failed delivery
    # could never be redelivered.
    seen: list = []
    srv = await start(settings, recording_router(seen, fail=True))
    try:
        payload = payloads.pull_request("opened")
        first, _ = await srv.deliver("pull_request", payload, delivery="d-retry")
        await srv.settle()
        again, answer = await srv.deliver("pull_request", payload, delivery="d-retry")
        await srv.settle()
    finally:
        await srv.stop()
    assert (first, again) == (202, 202) and answer["message"] == "accepted"
    assert [d for _, _, d in seen] == ["d-retry", "d-retry"]


async def test_a_duplicate_while_the_first_is_in_flight_gets_200_and_a_handled_one_is_remembered(settings, repo):
    seen: list = []
    gate = asyncio.Event()
    srv = await start(settings, recording_router(seen, gate=gate))
    try:
        payload = payloads.pull_request("opened")
        first, _ = await srv.deliver("pull_request", payload, delivery="d-slow")
        during, answer = await srv.deliver("pull_request", payload, delivery="d-slow")
        assert (first, during) == (202, 200) and "duplicate" in answer["message"]
        assert "d-slow" not in (srv.bot.seen_deliveries.path.read_text()
                                if srv.bot.seen_deliveries.path.exists() else "")  # not handled yet
        gate.set()
        await srv.settle()
        after, _ = await srv.deliver("pull_request", payload, delivery="d-slow")
        await srv.settle()
    finally:
        await srv.stop()
    assert after == 200 and len(seen) == 1
    assert "d-slow" in srv.bot.seen_deliveries.path.read_text().split()


async def test_a_failing_handler_does_not_stop_the_others(settings, repo, caplog):
    seen: list = []
    srv = await start(settings, recording_router(seen, fail=True))
    try:
        status, _ = await srv.deliver("pull_request", payloads.pull_request("opened"), delivery="d-fail")
        await srv.settle()
        # and the process keeps serving
        status2, _ = await srv.deliver("ping", payloads.ping())
    finally:
        await srv.stop()
    assert status == 202 and status2 == 200
    assert len(seen) == 1
    failed = [r for r in caplog.records if "explode" in r.getMessage()]
    assert failed and failed[0].exc_info is not None


async def test_health_readiness_and_metrics(server):
    assert (await server.get("/healthz"))[0] == 200
    status, text = await server.get("/readyz")
    assert status == 200 and "ready" in text
    await server.deliver("ping", payloads.ping())
    await server.deliver("pull_request", payloads.pull_request("opened"), secret="bad")
    status, text = await server.get("/metrics")
    assert status == 200
    assert 'devenv_webhook_deliveries_total{action="",event="ping",outcome="pong"} 1.0' in text
    assert 'outcome="unauthorized"' in text


async def test_requests_cannot_grow_the_metrics_with_names_of_their_own(server):
    for i in range(30):
        assert (await server.deliver(f"made-up-{i}", {"action": f"act-{i}"}, unsigned=True))[0] == 401
        await server.deliver(f"forged-{i}", {"action": f"act-{i}"}, secret="not-the-secret")
    await server.deliver("made-up", {"action": "Not a label!"})  # signed, but no handler listens to it
    status, text = await server.get("/metrics")
    assert "made-up" not in text and "forged" not in text and "act-" not in text and "Not a label" not in text
    assert 'devenv_webhook_deliveries_total{action="",event="unknown",outcome="unauthorized"} 60.0' in text
    assert 'devenv_webhook_deliveries_total{action="",event="other",outcome="ignored"} 1.0' in text


async def test_twenty_deliveries_in_a_row_are_each_answered_before_their_work_runs(settings, repo):
    # The answer never waits for the handlers (how fast it comes: bench/webhooks.py).
    seen: list = []
    gate = asyncio.Event()
    srv = await start(settings, recording_router(seen, gate=gate))
    try:
        payload = payloads.pull_request("opened")
        for i in range(20):
            status, _ = await srv.deliver("pull_request", payload, delivery=f"fast-{i}")
            assert status == 202
        assert len(srv.bot.tasks) == 20  # all still waiting at the gate, every one answered
        gate.set()
        await srv.settle()
    finally:
        await srv.stop()
    assert len(seen) == 20


async def test_deliveries_are_refused_with_503_while_draining(settings, repo):
    seen: list = []
    gate = asyncio.Event()
    srv = await start(settings, recording_router(seen, gate=gate))
    try:
        await srv.deliver("pull_request", payloads.pull_request("opened"), delivery="before")
        srv.bot.tasks.accepting = False
        status, _ = await srv.deliver("pull_request", payloads.pull_request("opened"), delivery="after")
        ready, _ = await srv.get("/readyz")
        gate.set()
        await srv.settle()
    finally:
        await srv.stop()
    assert status == 503 and ready == 503
    assert [d for _, _, d in seen] == ["before"]


def test_signatures_are_hmac_sha256_of_the_raw_body():
    # The test helper itself must sign like GitHub does (docs example values).
    assert sign("It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")


async def test_a_form_encoded_delivery_is_accepted_like_github_sends_it(settings, repo):
    import urllib.parse

    seen: list = []
    srv = await start(settings, recording_router(seen))
    try:
        body = urllib.parse.urlencode({"payload": json.dumps(payloads.pull_request("opened"))}).encode()
        status, _ = await srv.deliver("pull_request", body=body, delivery="form-1",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        await srv.settle()
    finally:
        await srv.stop()
    assert status == 202 and seen == [("pull_request", "opened", "form-1")]


async def test_another_content_type_gets_415(server):
    status, answer = await server.deliver("pull_request", body=b"<xml/>", headers={"Content-Type": "text/xml"})
    assert status == 415 and "application/json" in answer["message"]


async def test_a_delivery_redelivered_after_a_restart_is_not_acted_on_again(settings, repo):
    seen: list = []
    first = await start(settings, recording_router(seen))
    try:
        await first.deliver("pull_request", payloads.pull_request("opened"), delivery="before-restart")
        await first.settle()
    finally:
        await first.stop()
    second = await start(settings, recording_router(seen))
    try:
        status, answer = await second.deliver("pull_request", payloads.pull_request("opened"),
                                              delivery="before-restart")
        await second.settle()
    finally:
        await second.stop()
    assert status == 200 and "duplicate" in answer["message"]
    assert len(seen) == 1


def test_the_delivery_log_keeps_only_the_newest_ids(tmp_path):
    from bot.core.deliveries import SeenDeliveries

    log = SeenDeliveries(tmp_path, capacity=3)
    for i in range(7):
        log.add(f"d{i}")
    log.close()
    reopened = SeenDeliveries(tmp_path, capacity=3)
    assert [f"d{i}" in reopened for i in range(7)] == [False] * 4 + [True] * 3
    assert len((tmp_path / "deliveries.log").read_text().splitlines()) < 6  # compacted, not ever-growing


async def test_a_sha1_hmac_in_the_sha256_header_gets_401(settings, repo):
    import hashlib
    import hmac

    seen: list = []
    srv = await start(settings, recording_router(seen))
    body = json.dumps(payloads.pull_request("opened")).encode()
    sha1 = "sha1=" + hmac.new(settings.app.webhook_secret.encode(), body, hashlib.sha1).hexdigest()
    try:
        status, answer = await srv.deliver("pull_request", body=body, signature=sha1)
        await srv.settle()
    finally:
        await srv.stop()
    assert status == 401 and "sha256=" in answer["message"]
    assert seen == []
