"""Sign-in to previews: the bot's public URL, the OAuth client, cookie keys and lifetimes.

:class:`AccessSettings` is on with ``DEVENV_PREVIEW_DOMAIN`` once the App is registered: every
preview link is checked by the bot (bot.access), which signs users in with the App's
OAuth client and asks GitHub for their permission on the repository.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.settings import variables as var
from bot.settings.app import GitHubApp
from bot.settings.reader import Reader


class _Where(Protocol):
    """What :meth:`AccessSettings.from_env` reads of the whole settings (config imports this module)."""

    @property
    def app(self) -> GitHubApp | None: ...

    @property
    def github_url(self) -> str: ...

    @property
    def api_url(self) -> str: ...

    @property
    def public_url(self) -> str | None: ...


#: The shortest webhook secret the cookie key is derived from; a shorter one could be guessed offline
#: from any signed cookie, so DEVENV_SESSION_SECRET is then required.
MIN_DERIVING_SECRET = 20

_ORIGIN = re.compile(r"https?://[^/@?#\s]+")


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
    ide_permission: str = var.IDE_PERMISSION.preset()  # needed for the IDE (port "code")
    preview_permission: str = var.PREVIEW_PERMISSION.preset()  # for other ports, unless the directory says otherwise
    host_cookie_ttl: float = var.ACCESS_COOKIE_TTL.preset()
    session_ttl: float = var.SESSION_TTL.preset()  # the bot-host sign-in, reused for other previews
    permission_ttl: float = var.PERMISSION_TTL.preset()
    handoff_ttl: float = 60.0  # the one-time code's life
    login_ttl: float = 600.0  # from /auth/login to /auth/callback

    @property
    def secure(self) -> bool:
        return self.preview_scheme == "https"

    @property
    def bot_secure(self) -> bool:
        return self.public_url.startswith("https://")

    @classmethod
    def from_env(cls, env: Mapping[str, str], settings: _Where) -> AccessSettings | None:
        """The access section alone; ``None`` when ``DEVENV_PREVIEW_DOMAIN`` is unset (nothing exposed).

        Raises :class:`~bot.settings.reader.ConfigError` listing every problem.
        """
        r = Reader(env)
        access = read_access(r, settings.app, github_url=settings.github_url, api_url=settings.api_url,
                             public_url=settings.public_url)
        r.check()
        return access


def read_access(r: Reader, app: GitHubApp | None, *, github_url: str, api_url: str,
                public_url: str | None = None) -> AccessSettings | None:
    """The access section, or None without ``DEVENV_PREVIEW_DOMAIN``; every problem goes to ``r``."""
    if not r.is_set(var.PREVIEW_DOMAIN):
        return None
    domain = r.get(var.PREVIEW_DOMAIN) or ""
    public = _public_url(r, domain, public_url)
    default_scheme = "http" if public.startswith("http://") else "https"
    if app is None or not app.client_id or not app.client_secret:
        r.problem("GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (the GitHub App's OAuth client) are needed "
                  "to sign users in to previews")
    own_secret = r.get(var.SESSION_SECRET)
    if not own_secret and app is not None and len(app.webhook_secret) < MIN_DERIVING_SECRET:
        r.problem(f"WEBHOOK_SECRET has {len(app.webhook_secret)} characters, too few to derive the key that signs "
                  f"sign-in cookies from (at least {MIN_DERIVING_SECRET}): set DEVENV_SESSION_SECRET (generate one "
                  "with: python -c 'import secrets; print(secrets.token_hex(32))'), or a longer webhook secret")
    derived = derive_secret(app.webhook_secret) if app is not None else b""
    secret = own_secret.encode() if own_secret else derived
    client_id, client_secret = (app.client_id, app.client_secret) if app is not None else (None, None)
    return AccessSettings(
        preview_domain=domain, preview_scheme=r.get(var.PREVIEW_SCHEME) or default_scheme, public_url=public,
        client_id=client_id or "", client_secret=client_secret or "",
        github_url=github_url, api_url=api_url, secret=secret,
        ide_permission=r.value(var.IDE_PERMISSION), preview_permission=r.value(var.PREVIEW_PERMISSION),
        host_cookie_ttl=r.value(var.ACCESS_COOKIE_TTL), session_ttl=r.value(var.SESSION_TTL),
        permission_ttl=r.value(var.PERMISSION_TTL))


def _public_url(r: Reader, domain: str, fallback: str | None) -> str:
    """The bot's own origin, which must be set and outside the preview domain."""
    if r.is_set(var.PUBLIC_URL) and not r.valid(var.PUBLIC_URL):
        return ""  # already reported as a bad URL
    public = r.get(var.PUBLIC_URL) or (fallback or "").rstrip("/")
    if not public:
        r.problem("DEVENV_PUBLIC_URL is needed for sign-in to previews: the bot's own https URL, "
                  "such as https://devenv.example.com (GitHub sends users back to <it>/auth/callback)")
    elif not _ORIGIN.fullmatch(public):
        r.problem(f"DEVENV_PUBLIC_URL={public!r} must be an origin such as https://devenv.example.com")
    else:
        host = urlsplit(public).hostname or ""
        if host == domain or host.endswith("." + domain):
            r.problem(f"DEVENV_PUBLIC_URL={public!r} must not be inside DEVENV_PREVIEW_DOMAIN: "
                      "previews run untrusted code and must not share the bot's host")
    return public
