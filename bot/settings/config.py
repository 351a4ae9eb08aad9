"""Configuration, read once at start-up, typed and validated.

Names follow Probot's so operators feel at home (``APP_ID``, ``PRIVATE_KEY``,
``WEBHOOK_SECRET``, ``WEBHOOK_PATH``, ``PORT``, ``HOST``, ``GHE_HOST``,
``GHE_PROTOCOL``, ``LOG_LEVEL``, ``LOG_FORMAT``); settings that belong to this
bot alone carry a ``DEVENV_`` prefix.  Nothing here reads ``os.environ`` at
import time: :func:`load` takes the mapping to read, so tests pass their own.

Every variable is declared once, in :mod:`bot.settings.variables`. :func:`load` reads them
in one pass (:class:`~bot.settings.reader.Reader`): the core settings below, then each
feature's section (DevPod, links, sign-in, Cloudflare, the agent), then the rules that span
sections. Every problem is collected and reported at once, each naming the variable and what
to set, so an operator fixes a bad ``.env`` in one go.

The core settings (server, GitHub pacing, environments) are fields of :class:`Settings`
itself; each feature's section is a frozen dataclass of its own, None when the feature is off.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from bot.settings import variables as var
from bot.settings.access import AccessSettings, read_access
from bot.settings.agent import AgentSettings, read_agent
from bot.settings.app import GitHubApp, read_app
from bot.settings.cloudflare import CloudflareSettings, check_tunnel_domain, read_cloudflare
from bot.settings.devpod import DevPodSettings, read_devpod
from bot.settings.exposure import ExposureSettings, read_exposure
from bot.settings.gateway import GatewaySettings, read_gateway
from bot.settings.kube import KubeSettings, check_credentials, read_kube
from bot.settings.prebuilds import PrebuildSettings, read_prebuilds
from bot.settings.reader import ConfigError, Reader
from bot.settings.values import Network

__all__ = ["LOG_LEVELS", "MAX_WEBHOOK_BYTES", "ConfigError", "GitHubApp", "Settings", "load"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_WEBHOOK_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB


@dataclasses.dataclass(frozen=True)
class Settings:
    app: GitHubApp | None  # None: not registered yet, serve the setup page
    webhook_path: str = var.WEBHOOK_PATH.preset()
    host: str = var.HOST.preset()
    port: int = var.PORT.preset()
    github_url: str = "https://github.com"  # web pages (manifest flow, OAuth)
    api_url: str = "https://api.github.com"  # REST base
    log_level: str = var.LOG_LEVEL.preset()
    log_format: str = var.LOG_FORMAT.preset()
    state_dir: Path = var.STATE_DIR.preset()
    env_file: Path = var.ENV_FILE.preset()
    public_url: str | None = None
    shutdown_grace: float = var.SHUTDOWN_GRACE.preset()
    webhook_body_budget: int = var.WEBHOOK_BODY_BUDGET.preset()  # bytes of delivery bodies in memory at once
    read_timeout: float = var.READ_TIMEOUT.preset()  # for a request's headers, and a delivery's body
    max_connections: int = var.MAX_CONNECTIONS.preset()
    trusted_proxies: tuple[Network, ...] = ()  # whose forwarded headers the setup page believes
    credentials_secret: str | None = None  # a Kubernetes Secret the setup flow writes, instead of env_file
    writes_per_minute: float = var.WRITES_PER_MINUTE.preset()  # content-creating requests per installation
    write_burst: int = var.WRITE_BURST.preset()
    max_retries: int = var.MAX_RETRIES.preset()
    retry_backoff: float = var.RETRY_BACKOFF.preset()  # first back-off after a 5xx or connection error, doubled
    max_rate_wait: float = var.MAX_RATE_WAIT.preset()  # longest wait for a rate limit to reset before giving up
    delivery_cache_size: int = 10_000
    command_prefix: str = var.COMMAND_PREFIX.preset()
    max_concurrent_ops: int = var.MAX_CONCURRENT_OPS.preset()
    publish_interval: float = var.PUBLISH_INTERVAL.preset()  # least seconds between two edits of one check run
    sync_debounce: float = var.SYNC_DEBOUNCE.preset()  # quiet seconds after a push before the environment follows
    idle_sweep_interval: float = var.IDLE_SWEEP_INTERVAL.preset()  # how often idle environments are looked for
    catchup_interval: float = var.CATCHUP_INTERVAL.preset()  # how often open PRs are listed to catch missed events
    state_backend: str = var.STATE_BACKEND.preset()  # "file" (one process) or "kubernetes" (replicas)
    replica_id: str = ""  # this replica's name in Leases and records (never empty once loaded)
    lease_duration: float = var.LEASE_DURATION.preset()  # seconds a Lease lasts without renewal
    devpod: DevPodSettings | None = None
    exposure: ExposureSettings | None = None  # when DEVENV_PREVIEW_DOMAIN is set
    access: AccessSettings | None = None  # likewise, once the App is registered
    cloudflare: CloudflareSettings | None = None  # when DEVENV_CLOUDFLARE_TUNNEL_ID is set
    agent: AgentSettings | None = None
    gateway: GatewaySettings | None = None  # the SSH gateway, when DEVENV_SSH_PORT is set
    prebuilds: PrebuildSettings | None = None  # when DEVENV_PREBUILD_REPOSITORY is set
    kube: KubeSettings = KubeSettings()  # the bot's own Kubernetes client (links)

    @property
    def setup_mode(self) -> bool:
        return self.app is None

    @property
    def github_host(self) -> str:
        """Host name of GitHub's web side, as used in clone URLs."""
        return self.github_url.split("://", 1)[1]


def load(env: Mapping[str, str] | None = None, *, env_file: Path | None = None) -> Settings:
    """Read settings from ``env`` (default: the process environment plus ``.env``).

    Values already in the environment win over the ``.env`` file, as with Probot.
    Raises :class:`ConfigError` listing every problem found.
    """
    env, env_file = _environment(env, env_file)
    r = Reader(env)
    settings = _with_features(r, _core(r, env_file))
    r.check()
    return settings


def _environment(env: Mapping[str, str] | None, env_file: Path | None) -> tuple[Mapping[str, str], Path]:
    """The mapping to read and the ``.env`` file: the process environment over ``DEVENV_ENV_FILE``."""
    source = os.environ if env is None else env
    if env_file is None:
        raw = source.get(var.ENV_FILE.name, "").strip()
        env_file = Path(raw) if raw else var.ENV_FILE.preset()
    if env is not None:
        return env, env_file
    merged: dict[str, str] = {}
    if env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged, env_file


def _core(r: Reader, env_file: Path) -> Settings:
    """The App, the server, GitHub pacing and the environments' queue."""
    github_url, api_url = _github_urls(r)
    return Settings(
        app=read_app(r), webhook_path=r.value(var.WEBHOOK_PATH), host=r.value(var.HOST), port=r.value(var.PORT),
        github_url=github_url, api_url=api_url, log_level=r.value(var.LOG_LEVEL),
        log_format=r.value(var.LOG_FORMAT), state_dir=r.value(var.STATE_DIR).absolute(), env_file=env_file,
        public_url=r.get(var.PUBLIC_URL), shutdown_grace=r.value(var.SHUTDOWN_GRACE),
        webhook_body_budget=r.value(var.WEBHOOK_BODY_BUDGET), read_timeout=r.value(var.READ_TIMEOUT),
        max_connections=r.value(var.MAX_CONNECTIONS),
        trusted_proxies=r.get(var.TRUSTED_PROXIES) or (), credentials_secret=r.get(var.CREDENTIALS_SECRET),
        writes_per_minute=r.value(var.WRITES_PER_MINUTE), write_burst=r.value(var.WRITE_BURST),
        max_retries=r.value(var.MAX_RETRIES), retry_backoff=r.value(var.RETRY_BACKOFF),
        max_rate_wait=r.value(var.MAX_RATE_WAIT), command_prefix=r.value(var.COMMAND_PREFIX),
        max_concurrent_ops=r.value(var.MAX_CONCURRENT_OPS), publish_interval=r.value(var.PUBLISH_INTERVAL),
        sync_debounce=r.value(var.SYNC_DEBOUNCE), idle_sweep_interval=r.value(var.IDLE_SWEEP_INTERVAL),
        catchup_interval=r.value(var.CATCHUP_INTERVAL), state_backend=r.value(var.STATE_BACKEND),
        replica_id=r.get(var.REPLICA_ID) or default_replica_id(), lease_duration=r.value(var.LEASE_DURATION))


def default_replica_id() -> str:
    """The host name (a pod's name, unique among a Deployment's replicas) and the process id."""
    return f"{socket.gethostname() or 'devenv-bot'}-{os.getpid()}"


def _github_urls(r: Reader) -> tuple[str, str]:
    """GitHub's web and REST bases: github.com, or GitHub Enterprise Server at ``GHE_HOST``."""
    protocol, host = r.value(var.GHE_PROTOCOL), r.get(var.GHE_HOST)
    if not host:
        return "https://github.com", "https://api.github.com"
    return f"{protocol}://{host}", f"{protocol}://{host}/api/v3"


def _with_features(r: Reader, core: Settings) -> Settings:
    """Each feature's section, and the rules between sections."""
    exposure, cloudflare, kube = read_exposure(r), read_cloudflare(r), read_kube(r)
    check_tunnel_domain(r, cloudflare)
    access = None
    if core.app is not None:  # setup mode runs no environment: no sign-in, no links to make yet
        access = read_access(r, core.app, github_url=core.github_url, api_url=core.api_url)
        if exposure is not None:
            check_credentials(r, kube)
    return dataclasses.replace(core, devpod=read_devpod(r, core.state_dir), exposure=exposure, access=access,
                               cloudflare=cloudflare, agent=read_agent(r), kube=kube,
                               gateway=read_gateway(r), prebuilds=read_prebuilds(r))
