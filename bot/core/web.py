"""The HTTP side: the webhook endpoint, health, readiness and metrics.

Acknowledge first, work later: a delivery is verified (HMAC over the raw
body), parsed, de-duplicated by ``X-GitHub-Delivery``, handed to a tracked
background task and answered with 202 within milliseconds.  Nothing slow
(GitHub calls, DevPod) ever runs inside the request.
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from gidgethub import ValidationFailure, routing, sansio

from bot.core import logs
from bot.core.deliveries import SeenDeliveries
from bot.core.dispatch import Context, Dispatcher
from bot.core.metrics import Metrics
from bot.core.tasks import TaskTracker
from bot.environments.manager import EnvironmentManager
from bot.github.auth import AppAuth
from bot.github.client import GitHubClient
from bot.github.permissions import Permissions
from bot.repo_settings.loader import RepoSettingsLoader
from bot.settings.config import MAX_WEBHOOK_BYTES, Settings

log = logging.getLogger(__name__)

BOT_KEY: web.AppKey[Bot] = web.AppKey("bot")
ACTION_LABEL = re.compile(r"[a-z_]{1,40}")


class Bot:
    """The running bot's services, shared by the web side and the handlers."""

    def __init__(self, settings: Settings, routers: Iterable[routing.Router] | None = None,
                 *, clock=time.time) -> None:
        if routers is None:
            from handlers import ROUTERS

            routers = ROUTERS
        self.settings = settings
        self.metrics = Metrics()
        self.dispatcher = Dispatcher(routers, self.metrics)
        self.tasks = TaskTracker(on_change=self.metrics.background_tasks.set)
        self.seen_deliveries = SeenDeliveries(settings.state_dir, settings.delivery_cache_size)
        self.auth: AppAuth | None = None
        if settings.app is not None:
            self.auth = AppAuth(settings.app.app_id, settings.app.private_key, clock=clock)
            logs.redactor.add(settings.app.webhook_secret)
            logs.redactor.add(settings.app.client_secret)
        self.session: aiohttp.ClientSession | None = None
        self.github: GitHubClient | None = None
        self.ready = False
        self.environments: EnvironmentManager | None = None
        self.repo_settings = RepoSettingsLoader()
        self.permissions = Permissions()
        self.exposure: Any = None  # bot.exposure.Exposure when preview links are configured
        self.tunnel: Any = None  # bot.cloudflare.CloudflareTunnelRoutes in the Cloudflare Tunnel API mode
        if settings.app is not None and settings.devpod is not None:
            # Built now (no I/O) so the web routes can refer to it; started in start().
            self.environments = EnvironmentManager(
                settings=settings, github=None, auth=self.auth, dp=settings.devpod,
                max_concurrent=settings.max_concurrent_ops, publish_interval=settings.publish_interval,
                sync_debounce=settings.sync_debounce)
        self.agent_runs: Any = None  # bot.agent_runs.AgentRuns: /devenv agent run|stop
        self.reaper: Any = None  # bot.reaper.IdleReaper: stops idle environments
        self.link_activity: dict[str, float] = {}  # ws id -> last passed access check of a link
        if self.environments is not None and settings.agent is not None:
            from bot.agent.runs import AgentRuns

            self.agent_runs = AgentRuns(
                manager=self.environments, settings=settings.agent, github_url=settings.github_url,
                prefix=settings.command_prefix, progress_interval=settings.agent.progress_interval)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60, connect=10))
        self.github = GitHubClient(self.settings, self.auth, self.session, self.metrics)
        if self.settings.exposure is not None:
            from kubernetes.config import ConfigException

            from bot.cluster.exposure import Exposure
            from bot.cluster.kube import kube_api_client

            try:
                api = kube_api_client(self.settings.kube)
            except ConfigException as exc:
                raise RuntimeError(
                    "DEVENV_PREVIEW_DOMAIN is set, so devenv-bot must reach Kubernetes to expose links, but it "
                    f"found no credentials ({exc}): run it in the cluster or set KUBECONFIG") from exc
            if self.settings.cloudflare is not None:
                from bot.cluster.routers import ServiceOnlyBackend

                # No ingress controller: the workspace Service only; the tunnel routes the hosts.
                self.exposure = Exposure(self.settings.exposure, api,
                                         backend=ServiceOnlyBackend(self.settings.exposure))
                try:
                    await self._start_tunnel()
                except BaseException:  # the start fails: leave nothing open behind
                    await self.exposure.close()
                    self.exposure = None
                    await self.session.close()
                    raise
            else:
                self.exposure = Exposure(self.settings.exposure, api)
        if self.environments is not None:
            self.environments.github = self.github
            self.environments.exposure = self.exposure
            self.environments.tunnel = self.tunnel
            await self.environments.start()
            if self.settings.idle_sweep_interval > 0:
                from bot.environments.reaper import IdleReaper

                self.reaper = IdleReaper(
                    self.environments, activity=lambda ws_id: self.link_activity.get(ws_id),
                    busy=lambda record: self.agent_runs is not None and record.ws_id in self.agent_runs.runs,
                    interval=self.settings.idle_sweep_interval)
                self.reaper.start()
        self.ready = True

    async def _start_tunnel(self) -> None:
        """Check the Cloudflare token and ids once: a wrong one stops the start with a clear error;
        Cloudflare not answering (after the retries) is only logged, the check repeats at every build."""
        from bot.cluster.cloudflare import CloudflareTunnelRoutes
        from bot.cluster.cloudflare_api import CloudflareError

        cf = self.settings.cloudflare
        assert self.session is not None
        assert cf is not None and self.settings.exposure is not None  # start() calls this in tunnel mode only
        tunnel = CloudflareTunnelRoutes(cf, self.settings.exposure, self.session)
        try:
            await tunnel.check()
        except CloudflareError as exc:
            if exc.status is not None and exc.status < 500:
                raise RuntimeError(
                    f"DEVENV_CLOUDFLARE_TUNNEL_ID is set, but the Cloudflare API refused the bot: {exc}. Check "
                    "DEVENV_CLOUDFLARE_API_TOKEN (Account: Cloudflare Tunnel Edit, Zone: DNS Edit), "
                    "DEVENV_CLOUDFLARE_ACCOUNT_ID and DEVENV_CLOUDFLARE_TUNNEL_ID (docs/cloudflare.md)") from None
            log.warning("could not check the Cloudflare tunnel at start-up (%s); previews are tried again at "
                        "every build", exc)
        if not cf.auth_proxy:
            log.warning("DEVENV_CLOUDFLARE_AUTH_PROXY is unset: the IDE cannot be published through the tunnel, so "
                        "no environment gets browser links (docs/cloudflare.md)")
        self.tunnel = tunnel

    async def stop(self) -> None:
        self.ready = False
        if self.reaper is not None:
            await self.reaper.stop()
        await self.tasks.drain(self.settings.shutdown_grace)
        if self.agent_runs is not None:
            await self.agent_runs.drain(self.settings.shutdown_grace)
        if self.environments is not None:
            await self.environments.drain(self.settings.shutdown_grace)
        if self.exposure is not None:
            await self.exposure.close()
        if self.session is not None:
            await self.session.close()
        self.seen_deliveries.close()

    def context_for(self, event: sansio.Event) -> Context:
        installation = (event.data.get("installation") or {}).get("id") if isinstance(event.data, dict) else None
        gh = self.github.installation(installation) if (self.github and isinstance(installation, int)) else None
        return Context(gh=gh, bot=self, delivery_id=event.delivery_id)

    async def handle(self, event: sansio.Event) -> int:
        """Run the handlers for one event (in the current task)."""
        return await self.dispatcher.dispatch(event, self.context_for(event))


def _answer(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"message": message, **extra}, status=status)


class _Refused(Exception):
    """A delivery answered with an error before it reaches a handler."""

    def __init__(self, response: web.Response) -> None:
        self.response = response


def _refuse(bot: Bot, event: str, outcome: str, status: int, message: str) -> _Refused:
    bot.metrics.deliveries.labels(event, "", outcome).inc()
    return _Refused(_answer(status, message))


def _event_label(bot: Bot, event_name: str) -> str:
    """Metric labels take only names from a fixed set: what the routers handle, ``ping``, else ``other``.

    Headers are the sender's to choose; as labels they would let anyone grow /metrics without bound.
    """
    return event_name if event_name == "ping" or event_name in bot.dispatcher.events() else "other"


def _action_label(action: object) -> str:
    return action if isinstance(action, str) and ACTION_LABEL.fullmatch(action) else ""


async def _verified_body(bot: Bot, request: web.Request) -> bytes:
    """The raw body, once its HMAC-SHA256 signature matched the webhook secret."""
    assert bot.settings.app is not None
    length = request.content_length
    if length is not None and length > MAX_WEBHOOK_BYTES:
        raise _refuse(bot, "unknown", "too_large", 413, "payload larger than GitHub's 25 MB limit")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _refuse(bot, "unknown", "too_large", 413, "payload larger than GitHub's 25 MB limit") from None
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    signature = request.headers.get("X-Hub-Signature-256")
    if not signature:
        log.warning("refused a delivery without X-Hub-Signature-256 (delivery %r)", delivery_id[:64])
        raise _refuse(bot, "unknown", "unauthorized", 401,
                      "missing X-Hub-Signature-256: set the webhook secret on the GitHub App")
    # Only the SHA-256 signature is accepted (never the legacy SHA-1 header), over the raw body.
    try:
        sansio.validate_event(body, signature=signature, secret=bot.settings.app.webhook_secret)
    except ValidationFailure:
        log.warning("refused a delivery with a bad signature (delivery %r)", delivery_id[:64])
        raise _refuse(bot, "unknown", "unauthorized", 401, "signature does not match the webhook secret") from None
    return body


def _decoded(bot: Bot, request: web.Request, body: bytes, event_label: str) -> dict[str, Any]:
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


def _hand_over(bot: Bot, event: sansio.Event, event_label: str) -> web.Response:
    """Answer at once; the handlers run in a tracked background task."""
    delivery_id = event.delivery_id or ""
    action = _action_label(event.data.get("action"))
    if event.event == "ping":
        bot.metrics.deliveries.labels("ping", "", "pong").inc()
        return web.json_response({"message": "pong", "zen": event.data.get("zen")})
    if delivery_id in bot.seen_deliveries:
        bot.metrics.deliveries.labels(event_label, action, "duplicate").inc()
        log.info("delivery %s was already received; not acting on it twice", delivery_id[:64])
        return _answer(200, "duplicate delivery, already handled", delivery=delivery_id)
    bot.seen_deliveries.add(delivery_id)
    if not bot.dispatcher.handles(event):
        bot.metrics.deliveries.labels(event_label, action, "ignored").inc()
        return _answer(202, "no handler for this event", delivery=delivery_id)
    bot.metrics.deliveries.labels(event_label, action, "accepted").inc()
    bot.tasks.spawn(bot.handle(event), name=f"delivery-{delivery_id[:40]}")
    return _answer(202, "accepted", delivery=delivery_id)


async def webhook(request: web.Request) -> web.Response:
    """A delivery from GitHub: refuse what is not signed or not well-formed, else hand it over (202)."""
    bot = request.app[BOT_KEY]
    if bot.settings.app is None:
        return _answer(503, "devenv-bot is not registered yet: open the setup page at / to create the GitHub App")
    if not bot.tasks.accepting:
        return _answer(503, "shutting down; GitHub will show this delivery as failed, redeliver it later")
    try:
        body = await _verified_body(bot, request)
        event_name = request.headers.get("X-GitHub-Event", "")
        delivery_id = request.headers.get("X-GitHub-Delivery", "")
        label = _event_label(bot, event_name)
        if not event_name or not delivery_id:
            raise _refuse(bot, label, "invalid", 400, "missing X-GitHub-Event or X-GitHub-Delivery header")
        data = _decoded(bot, request, body, label)
    except _Refused as refused:
        return refused.response
    return _hand_over(bot, sansio.Event(data, event=event_name, delivery_id=delivery_id), label)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    bot = request.app[BOT_KEY]
    if bot.settings.app is None:
        return web.json_response({"status": "setup", "message": "GitHub App not registered yet"}, status=503)
    if not bot.ready or not bot.tasks.accepting:
        return web.json_response({"status": "not ready"}, status=503)
    return web.json_response({"status": "ready", "background_tasks": len(bot.tasks)})


async def metrics(request: web.Request) -> web.Response:
    bot = request.app[BOT_KEY]
    resp = web.Response(body=bot.metrics.render())
    resp.headers["Content-Type"] = bot.metrics.content_type
    return resp


def _credential_store(settings: Settings) -> Any:
    from bot.setup import credentials

    if not settings.credentials_secret:
        return credentials.DotEnvFile(settings.env_file)
    from bot.cluster.kube import kube_api_client

    kubeconfig = str(settings.kube.kubeconfig) if settings.kube.kubeconfig is not None else None
    namespace, name = credentials.secret_location(
        settings.credentials_secret, context_namespace=credentials.kubeconfig_namespace(kubeconfig))
    return credentials.KubernetesSecret(namespace, name, lambda: kube_api_client(settings.kube))


def make_app(settings: Settings, *, bot: Bot | None = None) -> web.Application:
    """Build the aiohttp application (setup pages when the app is not registered yet)."""
    bot = bot or Bot(settings)
    app = web.Application(client_max_size=MAX_WEBHOOK_BYTES + 1)
    app[BOT_KEY] = bot
    app.router.add_post(settings.webhook_path, webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    if settings.app is None:
        from bot import setup  # the setup pages need the GitHub client, so they live above core

        setup.add_routes(app, setup.Setup(
            github_url=settings.github_url, webhook_path=settings.webhook_path, public_url=settings.public_url,
            trusted_proxies=settings.trusted_proxies, store=_credential_store(settings),
            github=lambda: bot.github.anonymous()))
    if settings.access is not None and bot.environments is not None:
        from bot.access import routes as access

        directory = access.EnvironmentDirectory(bot.environments, ports=bot.environments.port_permission)
        bot.link_activity = directory.activity  # the idle reaper counts link use as activity
        parse_host = settings.exposure.parse_host if settings.exposure is not None else None
        checker = access.add_routes(app, bot, settings.access, directory, parse_host=parse_host)
        if settings.cloudflare is not None and settings.exposure is not None:
            # No ingress controller: the tunnel sends preview hosts to the bot, which checks and proxies.
            from bot.access import preview_proxy

            preview_proxy.install(app, checker, preview_proxy.workspace_upstream(bot.environments, settings.exposure))

    async def on_startup(_app: web.Application) -> None:
        await bot.start()

    async def on_cleanup(_app: web.Application) -> None:
        await bot.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
