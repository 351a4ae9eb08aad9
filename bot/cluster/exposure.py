"""Exposure: browser links to a workspace through the cluster's ingress controller.

Design. DevPod creates the workspace pod and nothing else (CONTRACT §5.2), and OpenVSCode in it
has no authentication of its own (CONTRACT §6). This package puts the IDE, and the app ports a
PR declares, behind the bot's forward-auth endpoint, in layers (sans-I/O first):

* :class:`ExposureSettings` (here), read once from the environment and validated;
* what a workspace exposes, checked once: :mod:`bot.cluster.workspace`;
* pure builders returning plain dicts: the Service and Ingresses (:mod:`bot.cluster.manifests`),
  a backend per ingress controller and the forward-auth invariant (:mod:`bot.cluster.routers`),
  the write-or-not decision (:mod:`bot.cluster.reconcile`), the links (:mod:`bot.cluster.links`);
* :class:`Exposure` (here), the applier, which sends them to the API server through
  :class:`bot.cluster.kube.KubeApi`: create what is missing, rewrite what drifted, delete what is
  no longer wanted, and sweep the objects of workspaces that are gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import string
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from bot.cluster import reconcile
from bot.cluster.kube import Kind, KubeApi
from bot.cluster.links import Link, links_of, live_links
from bot.cluster.manifests import INGRESS_KIND, SERVICE_KIND, kind_of
from bot.cluster.routers import RouterBackend, backend_for, manifests
from bot.cluster.workspace import CODE_PORT_NAME, ID_MAX_LEN, MANAGED_BY, ExposureError, exposed_workspace
from bot.cluster.workspace import UNSAFE_URL_CHARS as _UNSAFE_URL_CHARS

log = logging.getLogger(__name__)

__all__ = ["Exposure", "ExposureSettings"]

# The settings' own choices, limits and patterns (the builders get theirs from bot.cluster.workspace).
ROUTERS = ("ingress-nginx", "traefik")
DEFAULT_INGRESS_CLASS = {"ingress-nginx": "nginx", "traefik": "traefik"}
PERMISSIONS = ("read", "triage", "write", "maintain", "admin")
DNS_LABEL_MAX = 63
PORT_NAME_MAX = 15  # IANA service names, as Kubernetes container port names

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_ID_RE = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_PORT_RE = r"[a-z][a-z0-9]*"


def _check_url(var: str, url: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname or _UNSAFE_URL_CHARS.search(url) or parts.fragment:
        raise ValueError(f"{var} must be a plain {' or '.join(schemes)} URL without quotes, spaces, "
                         f"';', braces or '$', got {url!r}")
    return url


def _template_room(template: str) -> int:
    """How many characters a port name may have under ``template`` (ids have ≤ 48)."""
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    if sorted(fields) != ["id", "port"]:
        raise ValueError(f"DEVENV_HOST_TEMPLATE must contain {{port}} and {{id}} exactly once each, got {template!r}")
    literal = template.replace("{port}", "").replace("{id}", "")
    if not re.fullmatch(r"[a-z0-9-]*", literal):
        raise ValueError(f"DEVENV_HOST_TEMPLATE may only add lower-case letters, digits and '-', got {template!r}")
    if template.startswith("-") or template.endswith("-"):
        raise ValueError(f"DEVENV_HOST_TEMPLATE must not start or end with '-', got {template!r}")
    # The literal next to {port} must be a '-', so the host splits back into (port, id):
    # port names have no '-'.
    p, i = template.index("{port}"), template.index("{id}")
    between = template[p + 6:i] if p < i else template[i + 4:p]
    if (p < i and not between.startswith("-")) or (i < p and not between.endswith("-")):
        raise ValueError(f"DEVENV_HOST_TEMPLATE needs a '-' between {{port}} and {{id}}, got {template!r}")
    room = min(PORT_NAME_MAX, DNS_LABEL_MAX - ID_MAX_LEN - len(literal))
    if room < len(CODE_PORT_NAME):
        raise ValueError(
            f"DEVENV_HOST_TEMPLATE {template!r} leaves {max(room, 0)} characters for the port name with a "
            f"{ID_MAX_LEN}-character workspace id; a host label has at most {DNS_LABEL_MAX}"
        )
    return room


@dataclasses.dataclass(frozen=True)
class ExposureSettings:
    """Where and how workspaces are exposed; validated on construction."""

    domain: str
    bot_service: str
    bot_port: int
    auth_url: str | None
    auth_signin: str | None = None
    namespace: str = "devpod"  # DevPod's own default for KUBERNETES_NAMESPACE (CONTRACT §5.1)
    router: str = "ingress-nginx"
    ingress_class: str | None = None  # None: the router's usual class (nginx / traefik)
    tls_secret: str | None = None
    host_template: str = "{port}-{id}"
    #: Scheme of the links. ``https`` also behind a Cloudflare Tunnel that speaks plain
    #: HTTP to the ingress controller: the browser talks TLS to Cloudflare.
    scheme: str = "https"
    label_prefix: str = "devenv-bot.dev"
    #: GitHub permission shown on the links; the auth endpoint enforces the same variables.
    ide_permission: str = "write"
    app_permission: str = "read"

    def __post_init__(self) -> None:
        if not _DNS_SUBDOMAIN.match(self.domain) or "." not in self.domain or len(self.domain) > 189:
            raise ValueError(f"DEVENV_PREVIEW_DOMAIN must be a DNS name like preview.example.com, got {self.domain!r}")
        if not _DNS1035.match(self.bot_service) or len(self.bot_service) > 63:
            raise ValueError(f"DEVENV_BOT_SERVICE must name a Service in {self.namespace!r} like devenv-bot:3000, "
                             f"got {self.bot_service!r} (another namespace: see docs/links.md, ExternalName)")
        if not 1 <= self.bot_port <= 65535:
            raise ValueError(f"DEVENV_BOT_SERVICE port must be 1-65535, got {self.bot_port}")
        if self.auth_url is not None:
            _check_url("DEVENV_AUTH_URL", self.auth_url)
        if self.auth_signin is not None:
            _check_url("DEVENV_AUTH_SIGNIN", self.auth_signin)
        if not _DNS_LABEL.match(self.namespace):
            raise ValueError(f"DEVENV_NAMESPACE must be a namespace name, got {self.namespace!r}")
        if self.router not in ROUTERS:
            hint = " (the Gateway API backend is not written yet)" if self.router == "gateway" else ""
            raise ValueError(f"DEVENV_ROUTER must be one of {', '.join(ROUTERS)}, got {self.router!r}{hint}")
        for var, value in (("DEVENV_INGRESS_CLASS", self.ingress_class), ("DEVENV_TLS_SECRET", self.tls_secret)):
            if value is not None and (not _DNS_SUBDOMAIN.match(value) or len(value) > 253):
                raise ValueError(f"{var} must be a Kubernetes object name, got {value!r}")
        _template_room(self.host_template)
        if self.scheme not in ("http", "https"):
            raise ValueError(f"DEVENV_PREVIEW_SCHEME must be http or https, got {self.scheme!r}")
        if not _DNS_SUBDOMAIN.match(self.label_prefix):
            raise ValueError(f"DEVENV_LABEL_PREFIX must be a DNS subdomain, got {self.label_prefix!r}")
        for var, value in (("DEVENV_IDE_PERMISSION", self.ide_permission),
                           ("DEVENV_PREVIEW_PERMISSION", self.app_permission)):
            if value not in PERMISSIONS:
                raise ValueError(f"{var} must be one of {', '.join(PERMISSIONS)}, got {value!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExposureSettings | None:
        """Read the ``DEVENV_*`` exposure variables; None when ``DEVENV_PREVIEW_DOMAIN`` is unset.

        ``DEVENV_PREVIEW_DOMAIN``, ``DEVENV_BOT_SERVICE`` (``name:port``, a Service in the
        workspaces' namespace), ``DEVENV_AUTH_URL`` (required), ``DEVENV_AUTH_SIGNIN``
        (required for ingress-nginx; default ``<DEVENV_PUBLIC_URL>/auth/login``), ``DEVENV_NAMESPACE``, ``DEVENV_ROUTER``,
        ``DEVENV_INGRESS_CLASS``, ``DEVENV_TLS_SECRET``, ``DEVENV_HOST_TEMPLATE``,
        ``DEVENV_PREVIEW_SCHEME``, ``DEVENV_IDE_PERMISSION``, ``DEVENV_PREVIEW_PERMISSION``,
        ``DEVENV_LABEL_PREFIX``. With ``DEVENV_CLOUDFLARE_TUNNEL_ID`` (Cloudflare Tunnel API mode,
        no Ingresses) ``DEVENV_AUTH_URL``, ``DEVENV_AUTH_SIGNIN`` and ``DEVENV_BOT_SERVICE`` are optional.
        """

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        domain = get("DEVENV_PREVIEW_DOMAIN")
        if domain is None:
            return None
        router = get("DEVENV_ROUTER") or "ingress-nginx"
        auth_url = get("DEVENV_AUTH_URL")
        # Cloudflare Tunnel API mode (docs/cloudflare.md): no Ingress is created, so the ingress
        # controller's forward auth (and its sign-in URL, and the bot's Service for the handoff
        # route) are unused; the bot's own auth proxy guards the previews instead.
        tunnel_mode = get("DEVENV_CLOUDFLARE_TUNNEL_ID") is not None
        if auth_url is None and not tunnel_mode:
            raise ValueError("DEVENV_AUTH_URL must be set when DEVENV_PREVIEW_DOMAIN is: the bot's forward-auth "
                             "endpoint as the ingress controller reaches it, e.g. "
                             "http://devenv-bot.devenv.svc.cluster.local:3000/auth/check")
        signin = get("DEVENV_AUTH_SIGNIN")
        if signin is None and (public := get("DEVENV_PUBLIC_URL")) is not None:
            signin = public.rstrip("/") + "/auth/login"  # the login route of bot/access.py
        if signin is None and router == "ingress-nginx" and not tunnel_mode:
            raise ValueError("DEVENV_AUTH_SIGNIN must be set for ingress-nginx: the bot's public login URL, "
                             "e.g. https://devenv.example.com/auth/login")
        bot = get("DEVENV_BOT_SERVICE") or ("devenv-bot:3000" if tunnel_mode else None)
        name, colon, port = (bot or "").rpartition(":")
        if not bot or not colon or not port.isdigit():
            raise ValueError("DEVENV_BOT_SERVICE must be set to the bot's Service as name:port, e.g. devenv-bot:3000")
        kw: dict[str, Any] = {}
        for field, var in [("namespace", "DEVENV_NAMESPACE"), ("ingress_class", "DEVENV_INGRESS_CLASS"),
                           ("tls_secret", "DEVENV_TLS_SECRET"), ("host_template", "DEVENV_HOST_TEMPLATE"),
                           ("scheme", "DEVENV_PREVIEW_SCHEME"), ("ide_permission", "DEVENV_IDE_PERMISSION"),
                           ("app_permission", "DEVENV_PREVIEW_PERMISSION"),
                           ("label_prefix", "DEVENV_LABEL_PREFIX")]:
            if (value := get(var)) is not None:
                kw[field] = value
        return cls(domain=domain.lower().rstrip("."), bot_service=name, bot_port=int(port), auth_url=auth_url,
                   auth_signin=signin, router=router, **kw)

    # ------------------------------------------------------------------ hosts

    @property
    def max_port_name_len(self) -> int:
        """Longest port name that keeps every host one DNS label of ≤ 63 characters."""
        return _template_room(self.host_template)

    @property
    def effective_ingress_class(self) -> str:
        return self.ingress_class or DEFAULT_INGRESS_CLASS[self.router]

    def host(self, port_name: str, ws_id: str) -> str:
        label = self.host_template.format(port=port_name, id=ws_id)
        if len(label) > DNS_LABEL_MAX or not _DNS_LABEL.match(label):
            raise ExposureError(f"host label {label!r} is not a DNS label of at most {DNS_LABEL_MAX} characters")
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



class Exposure:
    """Creates, updates and deletes the exposure objects of workspaces in one namespace.

    Callers serialise per workspace (the environment lock); a per-id lock here guards too.
    Temporary API errors (5xx, 429, connection errors) are retried ``retries`` times with
    backoff; anything else raises ``kubernetes.client.exceptions.ApiException``.
    """

    def __init__(self, settings: ExposureSettings, api_client: Any, *, backend: RouterBackend | None = None,
                 retries: int = 3, backoff: float = 0.5, request_timeout: float = 30.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.settings = settings
        self.kube = KubeApi(api_client, settings.namespace, retries=retries, backoff=backoff,
                            request_timeout=request_timeout, sleep=sleep)
        self.backend = backend or backend_for(settings)
        self.kinds: tuple[Kind, ...] = (SERVICE_KIND, *self.backend.kinds)
        self._locks: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
        await self.kube.close()

    def _selector(self, ws_id: str | None = None) -> str:
        sel = f"{MANAGED_BY[0]}={MANAGED_BY[1]}"
        return sel + (f",{self.settings.label_prefix}/workspace={ws_id}" if ws_id else "")

    def _lock(self, ws_id: str) -> asyncio.Lock:
        return self._locks.setdefault(ws_id, asyncio.Lock())

    async def _ensure(self, want: dict[str, Any], live: dict[str, Any] | None) -> bool:
        """Create or update one object; True when something was written."""
        kind, name, prefix = kind_of(want), want["metadata"]["name"], self.settings.label_prefix
        for _ in range(4):
            if live is None:
                if await self.kube.create(kind, want):
                    return True
                # AlreadyExists (created meanwhile, or present without our labels): adopt it
                live = await self.kube.read(kind, name)
            if not reconcile.differs(prefix, want, live):
                return False
            if await self.kube.replace(kind, name, reconcile.replacement(prefix, want, live)):
                return True
            # Conflict: someone wrote in between; NotFound: deleted in between
            live = await self.kube.get(kind, name)
        raise ExposureError(f"{kind.kind} {name} kept changing under the bot; giving up")

    async def apply(self, ws_id: str, labels: Mapping[str, str] | None, ports: Mapping[str, int] | None,
                    *, folder: str | None = None) -> list[Link]:
        """Make the cluster match: create what is missing, rewrite what differs, delete what is
        no longer wanted (a port that went away). Returns the links, IDE first."""
        ws = exposed_workspace(self.settings, ws_id, labels, ports, folder=folder)
        wanted = manifests(self.settings, ws, self.backend)
        async with self._lock(ws_id):
            live: dict[tuple[str, str], dict[str, Any]] = {}
            for kind in self.kinds:
                for obj in await self.kube.list(kind, self._selector(ws_id)):
                    live[(kind.kind, obj["metadata"]["name"])] = obj
            writes = 0
            for obj in wanted:
                writes += await self._ensure(obj, live.pop((obj["kind"], obj["metadata"]["name"]), None))
            for (kind_name, name) in sorted(live, key=lambda key: reconcile.deletion_order(*key)):
                kind = next(k for k in self.kinds if k.kind == kind_name)
                writes += await self.kube.delete(kind, name)
            if writes:
                log.info("exposure of %s: %d object(s) written", ws_id, writes)
        return links_of(self.settings, ws)

    async def remove(self, ws_id: str) -> int:
        """Delete every object labelled with this workspace; returns how many were deleted."""
        async with self._lock(ws_id):
            return await self._remove_selected(self._selector(ws_id))

    async def _remove_selected(self, selector: str, keep: Callable[[dict[str, Any]], bool] = lambda o: False) -> int:
        found: list[tuple[Kind, str]] = []
        for kind in self.kinds:
            found += [(kind, o["metadata"]["name"]) for o in await self.kube.list(kind, selector) if not keep(o)]
        found.sort(key=lambda kn: reconcile.deletion_order(kn[0].kind, kn[1]))
        deleted = 0
        for kind, name in found:
            deleted += await self.kube.delete(kind, name)
        return deleted

    async def remove_orphans(self, live_ws_ids: Iterable[str]) -> set[str]:
        """Delete the bot's objects whose workspace is not in ``live_ws_ids``; returns those ids."""
        live = set(live_ws_ids)
        key = f"{self.settings.label_prefix}/workspace"
        orphans: set[str] = set()

        def keep(obj: dict[str, Any]) -> bool:
            ws = (obj["metadata"].get("labels") or {}).get(key)
            if ws is None or ws in live:
                return True
            orphans.add(ws)
            return False

        deleted = await self._remove_selected(self._selector(), keep)
        if deleted:
            log.info("removed %d exposure object(s) of gone workspaces %s", deleted, sorted(orphans))
        return orphans

    async def links(self, ws_id: str) -> list[Link]:
        """Links for the routes that exist (and whose Service exists), IDE first."""
        p = self.settings.label_prefix
        services = [o["metadata"]["name"] for o in await self.kube.list(SERVICE_KIND, self._selector(ws_id))]
        routes = await self.kube.list(INGRESS_KIND, self._selector(ws_id) + f",{p}/role=route")
        return live_links(p, services, routes)
