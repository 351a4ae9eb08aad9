"""Links to workspaces: the preview domain, the ingress controller, and who may open what.

:class:`ExposureSettings` is on when ``DEVENV_PREVIEW_DOMAIN`` is set. It also knows the
shape of a preview host (``<port>-<id>.<domain>`` by default): :meth:`~ExposureSettings.host`
builds one and :meth:`~ExposureSettings.parse_host` splits one back, for the manifests in
:mod:`bot.cluster.exposure`, the tunnel routes in :mod:`bot.cluster.cloudflare` and the
access checks in :mod:`bot.access.forward_auth`.

Turning the domain on needs its companions: ``DEVENV_AUTH_URL`` (the forward-auth endpoint
the ingress controller calls), ``DEVENV_AUTH_SIGNIN`` for ingress-nginx (or
``DEVENV_PUBLIC_URL`` to derive it) and ``DEVENV_BOT_SERVICE``. With a Cloudflare Tunnel
(``DEVENV_CLOUDFLARE_TUNNEL_ID``) no Ingress is made, so none of the three is needed.
:func:`read_exposure` reports every missing one at once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from bot.settings import variables as var
from bot.settings.kinds import DNS_LABEL_MAX, ID_MAX_LEN, template_room
from bot.settings.reader import Reader

#: The usual ingress class of each router.
DEFAULT_INGRESS_CLASS = {"ingress-nginx": "nginx", "traefik": "traefik"}
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_ID_RE = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_PORT_RE = r"[a-z][a-z0-9]*"


class HostError(ValueError):
    """A preview host name would not be one DNS label under the domain."""


@dataclasses.dataclass(frozen=True)
class ExposureSettings:
    """Where and how workspaces are exposed."""

    domain: str
    bot_service: str
    bot_port: int
    auth_url: str | None
    auth_signin: str | None = None
    namespace: str = "devpod"  # DevPod's own default for KUBERNETES_NAMESPACE (CONTRACT §5.1)
    router: str = var.ROUTER.preset()
    ingress_class: str | None = None  # None: the router's usual class (nginx / traefik)
    tls_secret: str | None = None
    host_template: str = var.HOST_TEMPLATE.preset()
    #: Scheme of the links. ``https`` also behind a Cloudflare Tunnel that speaks plain
    #: HTTP to the ingress controller: the browser talks TLS to Cloudflare.
    scheme: str = "https"
    label_prefix: str = var.LABEL_PREFIX.preset()
    #: GitHub permission shown on the links; the auth endpoint enforces the same variables.
    ide_permission: str = var.IDE_PERMISSION.preset()
    app_permission: str = var.PREVIEW_PERMISSION.preset()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExposureSettings | None:
        """The links section alone; None when ``DEVENV_PREVIEW_DOMAIN`` is unset; ValueError lists problems."""
        r = Reader(env)
        settings = read_exposure(r)
        r.check()
        return settings

    # ------------------------------------------------------------------ hosts

    @property
    def max_port_name_len(self) -> int:
        """Longest port name that keeps every host one DNS label of ≤ 63 characters."""
        return template_room(self.host_template)

    @property
    def effective_ingress_class(self) -> str:
        return self.ingress_class or DEFAULT_INGRESS_CLASS[self.router]

    def host(self, port_name: str, ws_id: str) -> str:
        label = self.host_template.format(port=port_name, id=ws_id)
        if len(label) > DNS_LABEL_MAX or not _DNS_LABEL.fullmatch(label):
            raise HostError(f"host label {label!r} is not a DNS label of at most {DNS_LABEL_MAX} characters")
        return f"{label}.{self.domain}"

    def parse_host(self, host: str) -> tuple[str, str] | None:
        """``code-myrepo-pr1-abc123.preview.example.com`` → ``("code", "myrepo-pr1-abc123")``.

        For the auth endpoint: which workspace and port a request is for. None when the
        host is not a preview host of this domain.
        """
        suffix = "." + self.domain
        host = host.lower().rstrip(".").split(":")[0]
        if not host.endswith(suffix):
            return None
        pattern = re.escape(self.host_template).replace(r"\{port\}", f"(?P<port>{_PORT_RE})")
        pattern = pattern.replace(r"\{id\}", f"(?P<id>{_ID_RE})")
        m = re.fullmatch(pattern, host[: -len(suffix)])
        if not m or len(m["id"]) > ID_MAX_LEN:
            return None
        return m["port"], m["id"]


def read_exposure(r: Reader) -> ExposureSettings | None:
    """The links section, or None without ``DEVENV_PREVIEW_DOMAIN``; every problem goes to ``r``."""
    if not r.is_set(var.PREVIEW_DOMAIN):
        return None
    # Cloudflare Tunnel API mode (docs/cloudflare.md): no Ingress is created, so the ingress
    # controller's forward auth (and its sign-in URL, and the bot's Service for the handoff
    # route) are unused; the bot's own auth proxy guards the previews instead.
    tunnel_mode = r.is_set(var.TUNNEL_ID)
    router = r.value(var.ROUTER)
    if not r.is_set(var.AUTH_URL) and not tunnel_mode:
        r.problem("DEVENV_AUTH_URL must be set when DEVENV_PREVIEW_DOMAIN is: the bot's forward-auth endpoint as "
                  "the ingress controller reaches it, e.g. http://devenv-bot.devenv.svc.cluster.local:3000/auth/check")
    signin = _signin(r)
    if not r.is_set(var.AUTH_SIGNIN) and signin is None and router == "ingress-nginx" and not tunnel_mode:
        r.problem("DEVENV_AUTH_SIGNIN must be set for ingress-nginx: the bot's public login URL, "
                  "e.g. https://devenv.example.com/auth/login")
    service = r.get(var.BOT_SERVICE) or (("devenv-bot", 3000) if tunnel_mode else None)
    if not r.is_set(var.BOT_SERVICE) and service is None:
        r.problem("DEVENV_BOT_SERVICE must be set to the bot's Service as name:port, e.g. devenv-bot:3000")
    name, port = service or ("", 0)
    return ExposureSettings(
        domain=r.get(var.PREVIEW_DOMAIN) or "", bot_service=name, bot_port=port, auth_url=r.get(var.AUTH_URL),
        auth_signin=signin, namespace=r.get(var.NAMESPACE) or "devpod", router=router,
        ingress_class=r.get(var.INGRESS_CLASS), tls_secret=r.get(var.TLS_SECRET),
        host_template=r.value(var.HOST_TEMPLATE), scheme=r.get(var.PREVIEW_SCHEME) or "https",
        label_prefix=r.value(var.LABEL_PREFIX), ide_permission=r.value(var.IDE_PERMISSION),
        app_permission=r.value(var.PREVIEW_PERMISSION))


def _signin(r: Reader) -> str | None:
    """``DEVENV_AUTH_SIGNIN``, else the login route of the bot's public URL (bot/access/signin.py)."""
    if r.is_set(var.AUTH_SIGNIN) or not r.valid(var.PUBLIC_URL):
        return r.get(var.AUTH_SIGNIN)
    public: str | None = r.get(var.PUBLIC_URL)
    derived = f"{public}/auth/login"
    try:
        return var.AUTH_SIGNIN.kind.parse(var.AUTH_SIGNIN.name, derived)
    except ValueError as exc:
        r.problem(f"{exc} (derived from DEVENV_PUBLIC_URL; set DEVENV_AUTH_SIGNIN)")
        return None
