"""The web application: the bot's services (:mod:`bot.services`) behind aiohttp, each feature's routes added.

``make_app(settings)`` is what ``devenv-bot serve`` runs and what the tests start: the webhook,
health, readiness and metrics endpoints (:mod:`bot.core.web`); the setup pages while no App is
registered (:mod:`bot.setup`); the sign-in and forward-auth routes when preview links are on
(:mod:`bot.access`), and the preview proxy in Cloudflare Tunnel mode; the SSH gateway's ``/`` page
(:mod:`bot.gateway`) when it is on. Start-up and shutdown run
the services' :meth:`~bot.services.Bot.start` and :meth:`~bot.services.Bot.stop`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot import setup
from bot.access import preview_proxy
from bot.access import routes as access
from bot.access.hosts import PreviewTarget
from bot.access.origin import cross_site_refusal
from bot.cluster.kube import kube_api_client, kubeconfig_namespace
from bot.core import web as endpoints
from bot.core.dispatch import Router
from bot.gateway import link_page
from bot.gateway import page as gateway_page
from bot.services import Bot, build
from bot.settings.config import MAX_WEBHOOK_BYTES, Settings
from bot.setup import credentials
from handlers import ROUTERS

BOT_KEY: web.AppKey[Bot] = web.AppKey("bot", Bot)


def credential_store(settings: Settings) -> credentials.CredentialStore:
    """Where the setup flow keeps the App's credentials: a Kubernetes Secret if configured, else ``.env``."""
    if not settings.credentials_secret:
        return credentials.DotEnvFile(settings.env_file)
    namespace, name = credentials.secret_location(
        settings.credentials_secret, context_namespace=kubeconfig_namespace(settings.kube))
    return credentials.KubernetesSecret(namespace, name, lambda: kube_api_client(settings.kube))


def _add_setup(app: web.Application, bot: Bot) -> None:
    settings = bot.settings
    setup.add_routes(app, setup.Setup(
        github_url=settings.github_url, webhook_path=settings.webhook_path, public_url=settings.public_url,
        trusted_proxies=settings.trusted_proxies, store=credential_store(settings), github=bot.github.anonymous))


def _add_access(app: web.Application, bot: Bot) -> Any:
    settings, manager = bot.settings, bot.environments
    if settings.access is None or manager is None:
        return None
    directory = access.EnvironmentDirectory(manager, ports=manager.port_permission)
    parse_host = settings.exposure.parse_host if settings.exposure is not None else None
    checker = access.add_routes(app, bot, settings.access, directory, parse_host=parse_host, metrics=bot.metrics,
                                used_codes=bot.used_codes)
    if settings.cloudflare is not None and settings.exposure is not None:
        # No ingress controller: the tunnel sends preview hosts to the bot, which checks and proxies.
        preview_proxy.install(app, checker, preview_proxy.workspace_upstream(manager, settings.exposure))
    return checker


def _add_key_link(app: web.Application, bot: Bot, checker: Any) -> None:
    """The SSH gateway's key-link page, signed in through the access feature's GitHub sign-in."""
    assert bot.gateway is not None and bot.settings.access is not None
    public = bot.settings.access.public_url
    parts = urlsplit(public)
    bot_host = PreviewTarget(parts.scheme, (parts.hostname or "").lower(), parts.netloc, "/")

    def identify(cookie: str) -> str | None:
        identity = checker.sessions.session_identity(cookie)
        return identity.login if identity is not None else None

    link_page.add_routes(app, bot.gateway, public_url=public, identify=identify, login_url=checker.login_url,
                         cross_site=lambda headers, method: cross_site_refusal(headers, method, bot_host))


def make_app(settings: Settings, *, bot: Bot | None = None,
             routers: Iterable[Router] = ROUTERS) -> web.Application:
    """The aiohttp application; builds the services unless given (needs a running event loop)."""
    bot = bot or build(settings, routers)
    app = web.Application(client_max_size=MAX_WEBHOOK_BYTES + 1)
    app[BOT_KEY] = bot
    endpoints.add_routes(app, bot.endpoints)
    if settings.app is None:
        _add_setup(app, bot)
    checker = _add_access(app, bot)
    if bot.gateway is not None and settings.app is not None:  # the setup flow owns `/` until then
        gateway_page.add_routes(app, bot.gateway)
        if checker is not None:
            _add_key_link(app, bot, checker)

    async def on_startup(_app: web.Application) -> None:
        await bot.start()

    async def on_cleanup(_app: web.Application) -> None:
        await bot.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
