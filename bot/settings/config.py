"""Configuration, read once at start-up, typed and validated.

Names follow Probot's so operators feel at home (``APP_ID``, ``PRIVATE_KEY``,
``WEBHOOK_SECRET``, ``WEBHOOK_PATH``, ``PORT``, ``HOST``, ``GHE_HOST``,
``GHE_PROTOCOL``, ``LOG_LEVEL``, ``LOG_FORMAT``); settings that belong to this
bot alone carry a ``DEVENV_`` prefix.  Nothing here reads ``os.environ`` at
import time: :func:`load` takes the mapping to read, so tests pass their own.

Every problem is collected and reported at once, each naming the variable and
what to set, so an operator fixes a bad ``.env`` in one go.  A private key
that does not parse is caught here, not on the first webhook.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bot.devpod.driver import DevPodSettings

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_WEBHOOK_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB


class ConfigError(Exception):
    """One or more settings are missing or wrong; the message says what to set."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"devenv-bot cannot start, fix its configuration:\n{lines}")


@dataclasses.dataclass(frozen=True)
class GitHubApp:
    """The registered GitHub App's identity and secrets."""

    app_id: str
    private_key: str = dataclasses.field(repr=False)
    webhook_secret: str = dataclasses.field(repr=False)
    client_id: str | None = None
    client_secret: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class Settings:
    app: GitHubApp | None  # None: not registered yet, serve the setup page
    webhook_path: str = "/api/github/webhooks"
    host: str = "0.0.0.0"
    port: int = 3000
    github_url: str = "https://github.com"  # web pages (manifest flow, OAuth)
    api_url: str = "https://api.github.com"  # REST base
    log_level: str = "info"
    log_format: str = "human"
    state_dir: Path = Path("state")
    env_file: Path = Path(".env")
    public_url: str | None = None
    shutdown_grace: float = 25.0
    writes_per_minute: float = 60.0  # content-creating requests per installation (GitHub allows ~80)
    write_burst: int = 10
    max_retries: int = 4
    retry_backoff: float = 1.0  # first back-off after a 5xx or connection error, doubled each try
    max_rate_wait: float = 900.0  # longest wait for a rate limit to reset before giving up
    delivery_cache_size: int = 10_000
    command_prefix: str = "/devenv"
    max_concurrent_ops: int = 4
    publish_interval: float = 3.0  # least seconds between two edits of one check run or comment
    sync_debounce: float = 5.0  # quiet seconds after a push before the environment follows it
    idle_sweep_interval: float = 60.0  # how often idle environments are looked for (0: never)
    devpod: DevPodSettings | None = None
    exposure: Any = None  # bot.exposure.ExposureSettings when DEVENV_PREVIEW_DOMAIN is set
    access: Any = None  # bot.access.AccessSettings, likewise
    cloudflare: Any = None  # bot.cloudflare.CloudflareSettings when DEVENV_CLOUDFLARE_TUNNEL_ID is set
    agent: Any = None  # bot.agent.AgentSettings
    environ: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def setup_mode(self) -> bool:
        return self.app is None

    @property
    def github_host(self) -> str:
        """Host name of GitHub's web side, as used in clone URLs."""
        return self.github_url.split("://", 1)[1]


def _unescape_pem(text: str) -> str:
    # Probot accepts keys whose newlines were written as "\n" on one line
    # (the only way to put them in many secret stores and .env files).
    text = text.strip().strip('"').strip("'")
    if "\\n" in text and "\n" not in text:
        text = text.replace("\\n", "\n")
    return text + "\n"


def _positive_float(env: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
        if value < 0:
            raise ValueError
        return value
    except ValueError:
        problems.append(f"{name}={raw!r} is not a number of seconds ≥ 0; set it like {name}={default:g}")
        return default


def _positive_int(env: Mapping[str, str], name: str, default: int, problems: list[str], minimum: int = 1) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
        if value < minimum:
            raise ValueError
        return value
    except ValueError:
        problems.append(f"{name}={raw!r} must be a whole number ≥ {minimum}; for example {name}={default}")
        return default


def _load_app(env: Mapping[str, str], problems: list[str]) -> GitHubApp | None:
    app_id = env.get("APP_ID", "").strip()
    key_text = env.get("PRIVATE_KEY", "")
    key_path = env.get("PRIVATE_KEY_PATH", "").strip()
    secret = env.get("WEBHOOK_SECRET", "")
    if not (app_id or key_text or key_path or secret):
        return None  # first run: nothing configured, the setup page registers the app

    missing = []
    if not app_id:
        missing.append("APP_ID (the App ID shown on the GitHub App's settings page)")
    elif not app_id.isdigit() and not app_id.startswith("Iv"):
        problems.append(f"APP_ID={app_id!r} is neither a numeric App ID nor a client ID (Iv…)")
    if not secret:
        missing.append(
            "WEBHOOK_SECRET (the secret set on the App's webhook; devenv-bot never accepts unsigned deliveries)"
        )
    if key_text and key_path:
        problems.append("set only one of PRIVATE_KEY and PRIVATE_KEY_PATH, not both")
    if key_path and not key_text:
        try:
            key_text = Path(key_path).expanduser().read_text()
        except OSError as exc:
            problems.append(f"PRIVATE_KEY_PATH={key_path!r} cannot be read ({exc.strerror}); point it at the App's .pem file")
            key_text = ""
            key_path = "unreadable"
    if not key_text and not key_path:
        missing.append("PRIVATE_KEY (the App's PEM private key, '\\n'-escaped is fine) or PRIVATE_KEY_PATH (its file)")
    for m in missing:
        problems.append(f"{m} is not set")
    pem = ""
    if key_text:
        pem = _unescape_pem(key_text)
        try:
            load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError):
            source = "PRIVATE_KEY_PATH" if key_path else "PRIVATE_KEY"
            problems.append(
                f"{source} does not hold a PEM private key (it should start with '-----BEGIN RSA PRIVATE KEY-----'); "
                "download a new key from the GitHub App's settings page"
            )
    if problems:
        return None
    return GitHubApp(
        app_id=app_id,
        private_key=pem,
        webhook_secret=secret,
        client_id=env.get("GITHUB_CLIENT_ID") or None,
        client_secret=env.get("GITHUB_CLIENT_SECRET") or None,
    )


def load(env: Mapping[str, str] | None = None, *, env_file: Path | None = None) -> Settings:
    """Read settings from ``env`` (default: the process environment plus ``.env``).

    Values already in the environment win over the ``.env`` file, as with Probot.
    Raises :class:`ConfigError` listing every problem found.
    """
    env_file = env_file or Path(os.environ.get("DEVENV_ENV_FILE", ".env") if env is None else ".env")
    if env is None:
        from dotenv import dotenv_values

        merged: dict[str, str] = {}
        if env_file.is_file():
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        merged.update(os.environ)
        env = merged

    problems: list[str] = []
    app = _load_app(env, problems)

    webhook_path = env.get("WEBHOOK_PATH", "/api/github/webhooks") or "/api/github/webhooks"
    if not webhook_path.startswith("/"):
        problems.append(f"WEBHOOK_PATH={webhook_path!r} must start with '/', e.g. /api/github/webhooks")

    port = _positive_int(env, "PORT", 3000, problems, minimum=0)
    if port > 65535:
        problems.append(f"PORT={port} is not a TCP port; use 1-65535 (0 picks a free one)")

    ghe_host = env.get("GHE_HOST", "").strip().rstrip("/")
    protocol = (env.get("GHE_PROTOCOL", "https") or "https").strip().lower()
    if protocol not in ("http", "https"):
        problems.append(f"GHE_PROTOCOL={protocol!r} must be 'https' (or 'http' for a local test server)")
    if ghe_host:
        if "://" in ghe_host or "/" in ghe_host:
            problems.append(f"GHE_HOST={ghe_host!r} must be a bare host name such as github.example.com (no scheme, no path)")
        github_url = f"{protocol}://{ghe_host}"
        api_url = f"{github_url}/api/v3"
    else:
        github_url, api_url = "https://github.com", "https://api.github.com"

    log_level = (env.get("LOG_LEVEL", "info") or "info").lower()
    if log_level == "trace":
        log_level = "debug"
    if log_level == "fatal":
        log_level = "critical"
    if log_level == "warn":
        log_level = "warning"
    if log_level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL={log_level!r} must be one of {', '.join(LOG_LEVELS)}")
    log_format = (env.get("LOG_FORMAT", "human") or "human").lower()
    if log_format == "pretty":
        log_format = "human"
    if log_format not in ("json", "human"):
        problems.append(f"LOG_FORMAT={log_format!r} must be 'json' or 'human'")

    prefix = env.get("DEVENV_COMMAND_PREFIX", "/devenv") or "/devenv"
    if not prefix.startswith("/") or any(c.isspace() for c in prefix):
        problems.append(f"DEVENV_COMMAND_PREFIX={prefix!r} must start with '/' and hold no spaces")

    public_url = (env.get("DEVENV_PUBLIC_URL") or "").rstrip("/") or None
    if public_url and not public_url.startswith(("http://", "https://")):
        problems.append(f"DEVENV_PUBLIC_URL={public_url!r} must be an http(s) URL such as https://devenv.example.com")

    state_dir = Path(env.get("DEVENV_STATE_DIR", "state") or "state").absolute()
    try:
        devpod_settings = DevPodSettings.from_env(env, state_dir)
    except ValueError as exc:
        problems.append(str(exc))
        devpod_settings = None

    from bot.agent.runner import AgentSettings
    from bot.cluster.cloudflare import CloudflareSettings
    from bot.cluster.exposure import ExposureSettings

    exposure = agent = cloudflare = None
    try:
        exposure = ExposureSettings.from_env(env)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        cloudflare = CloudflareSettings.from_env(env)
    except ValueError as exc:
        problems.append(str(exc))
    if cloudflare is not None and not (env.get("DEVENV_PREVIEW_DOMAIN") or "").strip():
        problems.append("DEVENV_CLOUDFLARE_TUNNEL_ID is set but DEVENV_PREVIEW_DOMAIN is not: set it to the domain "
                        "the tunnel's preview hosts live under, e.g. preview.example.com (docs/cloudflare.md)")
    try:
        agent = AgentSettings.from_env(env)
    except ValueError as exc:
        problems.append(str(exc))

    settings = Settings(
        app=app,
        webhook_path=webhook_path,
        host=env.get("HOST", "0.0.0.0") or "0.0.0.0",
        port=port,
        github_url=github_url,
        api_url=api_url,
        log_level=log_level,
        log_format=log_format,
        state_dir=state_dir,
        env_file=env_file,
        public_url=public_url,
        shutdown_grace=_positive_float(env, "DEVENV_SHUTDOWN_GRACE", 25.0, problems),
        writes_per_minute=_positive_float(env, "DEVENV_WRITES_PER_MINUTE", 60.0, problems),
        write_burst=_positive_int(env, "DEVENV_WRITE_BURST", 10, problems),
        max_retries=_positive_int(env, "DEVENV_MAX_RETRIES", 4, problems, minimum=0),
        retry_backoff=_positive_float(env, "DEVENV_RETRY_BACKOFF", 1.0, problems),
        max_rate_wait=_positive_float(env, "DEVENV_MAX_RATE_WAIT", 900.0, problems),
        command_prefix=prefix,
        max_concurrent_ops=_positive_int(env, "DEVENV_MAX_CONCURRENT_OPS", 4, problems),
        publish_interval=_positive_float(env, "DEVENV_PUBLISH_INTERVAL", 3.0, problems),
        sync_debounce=_positive_float(env, "DEVENV_SYNC_DEBOUNCE", 5.0, problems),
        idle_sweep_interval=_positive_float(env, "DEVENV_IDLE_SWEEP_INTERVAL", 60.0, problems),
        devpod=devpod_settings,
        exposure=exposure,
        cloudflare=cloudflare,
        agent=agent,
        environ=dict(env),
    )
    if (env.get("DEVENV_PREVIEW_DOMAIN") or "").strip() and app is not None:
        from bot.access.gate import AccessSettings

        try:
            settings = dataclasses.replace(settings, access=AccessSettings.from_env(env, settings))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return settings
