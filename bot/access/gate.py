"""The preview access gate's settings: :class:`AccessSettings`, read once at start-up.

``DEVENV_PREVIEW_DOMAIN`` turns the gate on; the rest (the bot's public URL, the GitHub App's
OAuth client, the session key, the permissions the IDE and other ports need, the cookies' and
the permission cache's lives) is checked here and every problem reported at once.  How the
gate works is in the package's docstring (:mod:`bot.access`) and docs/access.md.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.github.permissions import LEVELS as PERMISSION_LEVELS
from bot.settings.config import ConfigError, Settings

__all__ = ["AccessSettings", "derive_secret"]

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def derive_secret(webhook_secret: str) -> bytes:
    """The default session key: HKDF-SHA256 of the webhook secret, salt and info fixed.

    One-way, so a leaked session key does not reveal the webhook secret; rotating the webhook
    secret signs everyone out.  Set ``DEVENV_SESSION_SECRET`` to decouple the two.
    """
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"devenv-bot access",
                info=b"session cookies v1").derive(webhook_secret.encode())


@dataclasses.dataclass(frozen=True)
class AccessSettings:
    preview_domain: str  # previews are <label>.<preview_domain>, exactly one label deep
    preview_scheme: str  # "https" (Secure, __Host- cookies) or "http" (local tests only)
    public_url: str  # the bot's own origin: /auth/login and /auth/callback live here
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    github_url: str = "https://github.com"
    api_url: str = "https://api.github.com"
    secret: bytes = dataclasses.field(default=b"", repr=False)
    ide_permission: str = "write"  # needed for the IDE (port "code")
    preview_permission: str = "read"  # needed for other ports, unless the directory says otherwise
    host_cookie_ttl: float = 8 * 3600.0
    session_ttl: float = 8 * 3600.0  # the bot-host sign-in, reused for other previews
    permission_ttl: float = 60.0
    handoff_ttl: float = 60.0  # the one-time code's life
    login_ttl: float = 600.0  # from /auth/login to /auth/callback

    @property
    def secure(self) -> bool:
        return self.preview_scheme == "https"

    @property
    def bot_secure(self) -> bool:
        return self.public_url.startswith("https://")

    @classmethod
    def from_env(cls, env: Mapping[str, str], settings: Settings) -> AccessSettings | None:
        """Read the access settings; ``None`` when ``DEVENV_PREVIEW_DOMAIN`` is unset (nothing exposed).

        Raises :class:`~bot.config.ConfigError` listing every problem.
        """
        domain = (env.get("DEVENV_PREVIEW_DOMAIN") or "").strip().lower().rstrip(".")
        if not domain:
            return None
        problems: list[str] = []
        if not _DOMAIN.match(domain):
            problems.append(f"DEVENV_PREVIEW_DOMAIN={domain!r} must be a bare domain such as preview.example.com")
        public_url = (env.get("DEVENV_PUBLIC_URL") or settings.public_url or "").rstrip("/")
        if not public_url:
            problems.append("DEVENV_PUBLIC_URL is needed for sign-in to previews: the bot's own https URL, "
                            "such as https://devenv.example.com (GitHub sends users back to <it>/auth/callback)")
        elif not re.match(r"^https?://[^/@?#\s]+$", public_url):
            problems.append(f"DEVENV_PUBLIC_URL={public_url!r} must be an origin such as https://devenv.example.com")
        else:
            host = urlsplit(public_url).hostname or ""
            if host == domain or host.endswith("." + domain):
                problems.append(f"DEVENV_PUBLIC_URL={public_url!r} must not be inside DEVENV_PREVIEW_DOMAIN: "
                                "previews run untrusted code and must not share the bot's host")
        default_scheme = "http" if public_url.startswith("http://") else "https"
        scheme = (env.get("DEVENV_PREVIEW_SCHEME") or default_scheme).strip().lower()
        if scheme not in ("https", "http"):
            problems.append(f"DEVENV_PREVIEW_SCHEME={scheme!r} must be https (or http for a local test)")
        app = settings.app
        if app is None or not app.client_id or not app.client_secret:
            problems.append("GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (the GitHub App's OAuth client) are needed "
                            "to sign users in to previews")
        raw_secret = env.get("DEVENV_SESSION_SECRET") or ""
        if raw_secret and len(raw_secret) < 32:
            problems.append("DEVENV_SESSION_SECRET must be at least 32 characters; "
                            "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'")
        if raw_secret:
            secret = raw_secret.encode()
        elif app is not None:
            secret = derive_secret(app.webhook_secret)
        else:
            secret = b""
        levels = {}
        for name, default in (("DEVENV_IDE_PERMISSION", "write"), ("DEVENV_PREVIEW_PERMISSION", "read")):
            value = (env.get(name) or default).strip().lower()
            if value not in PERMISSION_LEVELS or value == "none":
                problems.append(f"{name}={value!r} must be one of read, triage, write, maintain, admin")
            levels[name] = value
        times = {}
        for name, default in (("DEVENV_ACCESS_COOKIE_TTL", 8 * 3600.0), ("DEVENV_SESSION_TTL", 8 * 3600.0),
                              ("DEVENV_PERMISSION_TTL", 60.0)):
            raw = env.get(name) or ""
            try:
                times[name] = float(raw) if raw else default
                if times[name] <= 0:
                    raise ValueError
            except ValueError:
                problems.append(f"{name}={raw!r} must be a number of seconds > 0, e.g. {name}={default:g}")
                times[name] = default
        if problems:
            raise ConfigError(problems)
        assert app is not None and app.client_id and app.client_secret
        return cls(preview_domain=domain, preview_scheme=scheme, public_url=public_url,
                   client_id=app.client_id, client_secret=app.client_secret,
                   github_url=settings.github_url, api_url=settings.api_url, secret=secret,
                   ide_permission=levels["DEVENV_IDE_PERMISSION"],
                   preview_permission=levels["DEVENV_PREVIEW_PERMISSION"],
                   host_cookie_ttl=times["DEVENV_ACCESS_COOKIE_TTL"], session_ttl=times["DEVENV_SESSION_TTL"],
                   permission_ttl=times["DEVENV_PERMISSION_TTL"])
