"""The HTTP side: the webhook endpoint, health, readiness and metrics.

Acknowledge first, work later: a delivery is verified (HMAC over the raw
body), parsed, de-duplicated by ``X-GitHub-Delivery``, handed to a tracked
background task and answered with 202 within milliseconds.  Nothing slow
(GitHub calls, DevPod) ever runs inside the request.  It is remembered as
handled only once every handler ran without an exception, so a delivery
whose handling failed can be redelivered (:mod:`bot.core.deliveries`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from aiohttp import web
from gidgethub import ValidationFailure, sansio

from bot.core.deliveries import Deliveries
from bot.core.dispatch import Dispatcher
from bot.core.metrics import Metrics
from bot.core.readiness import Readiness
from bot.core.tasks import TaskTracker
from bot.settings.config import MAX_WEBHOOK_BYTES, Settings

log = logging.getLogger(__name__)

ACTION_LABEL = re.compile(r"[a-z_]{1,40}")
DELIVERY_ID = re.compile(r"[\x21-\x7e]{1,200}")


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """What the webhook, health, readiness and metrics endpoints use (built by :mod:`bot.services`)."""

    settings: Settings
    metrics: Metrics
    tasks: TaskTracker
    seen: Deliveries
    dispatcher: Dispatcher
    readiness: Readiness
    handle: Callable[[sansio.Event], Coroutine[Any, Any, int]]  # runs the handlers for one event
    body_budget: BodyBudget = dataclasses.field(default_factory=lambda: BodyBudget(64 * 1024 * 1024))


ENDPOINTS_KEY: web.AppKey[Endpoints] = web.AppKey("endpoints", Endpoints)


def _answer(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"message": message, **extra}, status=status)


class _Refused(Exception):
    """A delivery answered with an error before it reaches a handler."""

    def __init__(self, response: web.Response) -> None:
        self.response = response


def _refuse(bot: Endpoints, event: str, outcome: str, status: int, message: str) -> _Refused:
    bot.metrics.deliveries.labels(event, "", outcome).inc()
    return _Refused(_answer(status, message))


def _event_label(bot: Endpoints, event_name: str) -> str:
    """Metric labels take only names from a fixed set: what the routers handle, ``ping``, else ``other``.

    Headers are the sender's to choose; as labels they would let anyone grow /metrics without bound.
    """
    return event_name if event_name == "ping" or event_name in bot.dispatcher.events() else "other"


def _action_label(action: object) -> str:
    return action if isinstance(action, str) and ACTION_LABEL.fullmatch(action) else ""


class BodyBudget:
    """Bytes of request bodies held in memory at once, across every webhook request in flight.

    Bodies are read before their signature can be checked, so anyone may send them: without a
    budget, a few dozen connections of 25 MB each would hold gigabytes.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, n: int) -> bool:
        if self.held + n > self.limit:
            return False
        self.held += n
        return True

    def give_back(self, n: int) -> None:
        self.held -= n


def _too_large(bot: Endpoints) -> _Refused:
    return _refuse(bot, "unknown", "too_large", 413, "payload larger than GitHub's 25 MB limit")


def _over_budget(bot: Endpoints) -> _Refused:
    log.warning("refused a delivery: %d bytes of bodies already in flight (DEVENV_WEBHOOK_BODY_BUDGET)",
                bot.body_budget.held)
    return _refuse(bot, "unknown", "busy", 503, "too many deliveries in flight; redeliver it later")


async def _read_body(bot: Endpoints, request: web.Request) -> bytes:
    """The body, read in chunks; every chunk counts against the budget before it is kept."""
    length = request.content_length
    if length is not None and length > MAX_WEBHOOK_BYTES:
        raise _too_large(bot)
    reserved = length or 0
    if not bot.body_budget.take(reserved):
        raise _over_budget(bot)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(bot.settings.read_timeout):  # a half-sent body must not hold the budget
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > MAX_WEBHOOK_BYTES:
                    raise _too_large(bot)
                if size > reserved:
                    if not bot.body_budget.take(size - reserved):
                        raise _over_budget(bot)
                    reserved = size
                chunks.append(chunk)
        return b"".join(chunks)
    except TimeoutError:
        log.warning("refused a delivery whose body took over %.0fs (DEVENV_READ_TIMEOUT)", bot.settings.read_timeout)
        raise _refuse(bot, "unknown", "timeout", 408, "the body did not arrive in time") from None
    finally:
        bot.body_budget.give_back(reserved)


def _check_headers(bot: Endpoints, request: web.Request) -> None:
    """Refuse before reading a byte of the body when it could never be acted on."""
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    if not request.headers.get("X-Hub-Signature-256"):
        log.warning("refused a delivery without X-Hub-Signature-256 (delivery %r)", delivery_id[:64])
        raise _refuse(bot, "unknown", "unauthorized", 401,
                      "missing X-Hub-Signature-256: set the webhook secret on the GitHub App")
    if not request.headers.get("X-GitHub-Event") or not delivery_id:
        raise _refuse(bot, "unknown", "invalid", 400, "missing X-GitHub-Event or X-GitHub-Delivery header")
    if not DELIVERY_ID.fullmatch(delivery_id):
        # GitHub's ids are GUIDs; anything else could not be de-duplicated faithfully (the log keeps one line
        # of at most 200 characters of UTF-8), so it is refused the same way every time.
        raise _refuse(bot, "unknown", "invalid", 400,
                      "X-GitHub-Delivery must be 1-200 printable ASCII characters, as GitHub's GUIDs are")


async def _verified_body(bot: Endpoints, request: web.Request) -> bytes:
    """The raw body, once its HMAC-SHA256 signature matched the webhook secret."""
    assert bot.settings.app is not None
    _check_headers(bot, request)
    body = await _read_body(bot, request)
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    signature = request.headers["X-Hub-Signature-256"]
    # Only the SHA-256 signature is accepted (never the legacy SHA-1 header), over the raw body;
    # gidgethub would check whatever algorithm the prefix names, ``sha1=`` included.
    if not signature.startswith("sha256="):
        log.warning("refused a delivery whose signature is not sha256= (delivery %r)", delivery_id[:64])
        raise _refuse(bot, "unknown", "unauthorized", 401, "X-Hub-Signature-256 must be sha256=<HMAC-SHA256>")
    try:
        sansio.validate_event(body, signature=signature, secret=bot.settings.app.webhook_secret)
    except ValidationFailure:
        log.warning("refused a delivery with a bad signature (delivery %r)", delivery_id[:64])
        raise _refuse(bot, "unknown", "unauthorized", 401, "signature does not match the webhook secret") from None
    return body


def _decoded(bot: Endpoints, request: web.Request, body: bytes, event_label: str) -> dict[str, Any]:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    try:
        # Verified once above. orjson parses GitHub's 10-30 KB payloads several times faster than
        # json, which is most of the time a delivery costs (bench/README.md).
        if content_type == "application/json":
            data = orjson.loads(body)
        elif content_type == "application/x-www-form-urlencoded":
            data = orjson.loads(urllib.parse.parse_qs(body.decode())["payload"][0])
        else:
            raise _refuse(bot, event_label, "invalid", 415, "expected Content-Type application/json")
    except (ValueError, KeyError, UnicodeDecodeError):
        raise _refuse(bot, event_label, "invalid", 400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _refuse(bot, event_label, "invalid", 400, "payload must be a JSON object")
    return data


async def _hand_over(bot: Endpoints, event: sansio.Event, event_label: str) -> web.Response:
    """Answer at once; the handlers run in a tracked background task."""
    delivery_id = event.delivery_id or ""
    action = _action_label(event.data.get("action"))
    if event.event == "ping":
        bot.metrics.deliveries.labels("ping", "", "pong").inc()
        return web.json_response({"message": "pong", "zen": event.data.get("zen")})
    handles = bot.dispatcher.handles(event)
    try:  # in flight from here when it goes to handlers: a duplicate meanwhile is "already handled"
        claimed = await bot.seen.claim(delivery_id, run=handles)
    except Exception:  # several replicas: the cluster could not say whether another one has it
        log.exception("could not claim delivery %s", delivery_id[:64])
        return _answer(503, "cannot tell whether this delivery was handled; redeliver it later")
    if not claimed:
        bot.metrics.deliveries.labels(event_label, action, "duplicate").inc()
        log.info("delivery %s was already received; not acting on it twice", delivery_id[:64])
        return _answer(200, "duplicate delivery, already handled", delivery=delivery_id)
    if not handles:
        bot.metrics.deliveries.labels(event_label, action, "ignored").inc()
        return _answer(202, "no handler for this event", delivery=delivery_id)
    bot.metrics.deliveries.labels(event_label, action, "accepted").inc()
    bot.tasks.spawn(_handle(bot, event), name=f"delivery-{delivery_id[:40]}")
    return _answer(202, "accepted", delivery=delivery_id)


async def _handle(bot: Endpoints, event: sansio.Event) -> None:
    """Run the handlers; only a delivery they all handled is remembered, so a failed one can be redelivered."""
    delivery_id = event.delivery_id or ""
    handled = False
    try:
        handled = await bot.handle(event) == 0
    finally:
        await bot.seen.done(delivery_id, handled=handled)
        if not handled:
            log.warning("delivery %s was not fully handled; redelivering it will act on it again", delivery_id[:64])


async def webhook(request: web.Request) -> web.Response:
    """A delivery from GitHub: refuse what is not signed or not well-formed, else hand it over (202)."""
    bot = request.app[ENDPOINTS_KEY]
    if bot.settings.app is None:
        return _answer(503, "devenv-bot is not registered yet: open the setup page at / to create the GitHub App")
    if not bot.tasks.accepting:
        return _answer(503, "shutting down; GitHub will show this delivery as failed, redeliver it later")
    try:
        body = await _verified_body(bot, request)
        event_name = request.headers.get("X-GitHub-Event", "")
        delivery_id = request.headers.get("X-GitHub-Delivery", "")
        label = _event_label(bot, event_name)
        data = _decoded(bot, request, body, label)
    except _Refused as refused:
        return refused.response
    return await _hand_over(bot, sansio.Event(data, event=event_name, delivery_id=delivery_id), label)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """200 only when the bot can do its work; else 503 with every reason (:mod:`bot.core.readiness`)."""
    bot = request.app[ENDPOINTS_KEY]
    if bot.settings.app is None:
        return web.json_response({"status": "setup", "message": "GitHub App not registered yet"}, status=503)
    if not bot.tasks.accepting:
        return web.json_response({"status": "shutting down"}, status=503)
    problems = bot.readiness.problems()
    if problems:
        return web.json_response({"status": "not ready", "problems": problems}, status=503)
    return web.json_response({"status": "ready", "background_tasks": len(bot.tasks)})


async def metrics(request: web.Request) -> web.Response:
    bot = request.app[ENDPOINTS_KEY]
    resp = web.Response(body=bot.metrics.render())
    resp.headers["Content-Type"] = bot.metrics.content_type
    return resp


def add_routes(app: web.Application, endpoints: Endpoints) -> None:
    """The webhook endpoint, ``/healthz``, ``/readyz`` and ``/metrics``."""
    app[ENDPOINTS_KEY] = endpoints
    app.router.add_post(endpoints.settings.webhook_path, webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
