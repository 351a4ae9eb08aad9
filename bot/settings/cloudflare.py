"""Cloudflare Tunnel mode: which tunnel, account and zone the bot manages (docs/cloudflare.md).

On with ``DEVENV_CLOUDFLARE_TUNNEL_ID``; then the account, the zone and an API token are
needed too, and the links section (``DEVENV_PREVIEW_DOMAIN``) must be on. The token is
registered with the log redactor by its user, bot.cluster.cloudflare, not here: settings
import no feature.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from bot.settings import variables as var
from bot.settings.reader import Reader


@dataclasses.dataclass(frozen=True)
class CloudflareSettings:
    """Which tunnel, account and zone the bot manages."""

    tunnel_id: str
    account_id: str
    zone_id: str
    api_token: str = dataclasses.field(repr=False)
    api_url: str = var.API_URL.preset()
    #: The bot's authenticating reverse proxy as cloudflared reaches it, e.g.
    #: ``http://devenv-bot.devenv.svc:3000``. Unset: the IDE is never published.
    auth_proxy: str | None = None
    #: Route the app ports through the auth proxy too (else they go straight to the Service).
    proxy_previews: bool = var.PROXY_PREVIEWS.preset()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CloudflareSettings | None:
        """The tunnel section alone; None when ``DEVENV_CLOUDFLARE_TUNNEL_ID`` is unset; ValueError lists problems."""
        r = Reader(env)
        settings = read_cloudflare(r)
        r.check()
        return settings

    @property
    def cname_target(self) -> str:
        return f"{self.tunnel_id}.cfargotunnel.com"


def read_cloudflare(r: Reader) -> CloudflareSettings | None:
    """The tunnel section, or None without a tunnel id; every problem goes to ``r``."""
    if not r.is_set(var.TUNNEL_ID):
        return None
    for required in (var.ACCOUNT_ID, var.ZONE_ID, var.API_TOKEN):
        if not r.is_set(required):
            r.problem(f"{required.name} must be set when DEVENV_CLOUDFLARE_TUNNEL_ID is: {required.doc}")
    return CloudflareSettings(
        tunnel_id=r.get(var.TUNNEL_ID) or "", account_id=r.get(var.ACCOUNT_ID) or "", zone_id=r.get(var.ZONE_ID) or "",
        api_token=r.get(var.API_TOKEN) or "", api_url=r.value(var.API_URL), auth_proxy=r.get(var.AUTH_PROXY),
        proxy_previews=r.value(var.PROXY_PREVIEWS))


def check_tunnel_domain(r: Reader, cloudflare: CloudflareSettings | None) -> None:
    """The tunnel routes preview hosts, so it needs the links section's domain."""
    if cloudflare is not None and not r.is_set(var.PREVIEW_DOMAIN):
        r.problem("DEVENV_CLOUDFLARE_TUNNEL_ID is set but DEVENV_PREVIEW_DOMAIN is not: set it to the domain "
                  "the tunnel's preview hosts live under, e.g. preview.example.com (docs/cloudflare.md)")
