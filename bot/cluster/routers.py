"""Router backends: the routing objects of one ingress controller, and the check that they are safe.

Design. A :class:`RouterBackend` builds, for a workspace, the objects its ingress controller
needs to route the preview hosts through the bot's forward-auth endpoint:
:class:`NginxIngressBackend` (annotations), :class:`TraefikBackend` (a ``forwardAuth``
Middleware) and :class:`ServiceOnlyBackend` (nothing: the Cloudflare Tunnel routes instead). A
Gateway API ``HTTPRoute`` backend can follow the same protocol.

:func:`manifests` composes the Service with a backend's objects and then *checks* the result
with :func:`assert_protected`: every route to the workspace Service carries forward auth, and
the only unauthenticated route is ``/_devenv/`` to the bot's own Service. A missing
``DEVENV_AUTH_URL`` raises :class:`~bot.cluster.workspace.ExposureError` instead of producing
an open IDE.
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.cluster.kube import Kind
from bot.cluster.manifests import (
    INGRESS_KIND,
    MIDDLEWARE_KIND,
    handoff_ingress,
    meta,
    port_ingress,
    require_auth,
    service_manifest,
    stamp,
)
from bot.cluster.workspace import CODE_PORT_NAME, HANDOFF_PATH, ExposedWorkspace, ExposureError
from bot.settings.exposure import ExposureSettings

__all__ = [
    "AUTH_RESPONSE_HEADERS",
    "NGINX",
    "TRAEFIK",
    "USER_HEADER",
    "NginxIngressBackend",
    "RouterBackend",
    "ServiceOnlyBackend",
    "TraefikBackend",
    "assert_protected",
    "backend_for",
    "manifests",
]

#: Header the auth endpoint returns (GitHub login); the router copies it to the upstream
#: request, overwriting any value the browser sent.
USER_HEADER = "X-Devenv-User"
#: Every header the auth endpoint (bot/access/forward_auth.py ``check``) returns on a 2xx; all are copied
#: upstream so the PR's app can never be handed a forged one by the browser.
AUTH_RESPONSE_HEADERS = (USER_HEADER, "X-Devenv-User-Id", "X-Devenv-Permission")
#: ingress-nginx's default timeout is 60 s; an idle IDE WebSocket must survive longer.
WEBSOCKET_TIMEOUT = "3600"

#: Annotation prefixes of the routers; keys under them on the bot's objects are the bot's.
NGINX = "nginx.ingress.kubernetes.io/"
TRAEFIK = "traefik.ingress.kubernetes.io/"


class RouterBackend(Protocol):
    """Builds the routing objects of one ingress controller for a workspace."""

    #: Every kind it creates, in creation order.
    kinds: tuple[Kind, ...]

    def objects(self, ws: ExposedWorkspace) -> list[dict[str, Any]]: ...

    def is_protected(self, ingress: dict[str, Any], objects: list[dict[str, Any]]) -> bool:
        """Does this Ingress (one of ``objects``) pass through the bot's forward auth?"""
        ...


class NginxIngressBackend:
    """ingress-nginx: ``auth-url``/``auth-signin`` annotations on each port's Ingress.

    nginx calls ``auth-url`` before every request (no body) with ``X-Original-URL``
    (scheme, host and URI), ``X-Original-Method`` and the browser's cookies; the bot reads
    the host and path from ``X-Original-URL``, so no ``$host`` variables are put in the URL.
    A 401 turns into a 302 to ``auth-signin`` with ``rd=<original URL>`` appended by nginx;
    a 403 is shown as is. (FACTS §A1; ingress-nginx nginx.tmpl at controller-v1.15.1.)
    """

    kinds: tuple[Kind, ...] = (INGRESS_KIND,)

    def __init__(self, settings: ExposureSettings):
        self.settings = settings

    def annotations(self) -> dict[str, str]:
        s = self.settings
        if not s.auth_signin:
            raise ExposureError("ingress-nginx needs DEVENV_AUTH_SIGNIN (where a 401 sends the browser)")
        return {
            NGINX + "auth-url": require_auth(s),
            NGINX + "auth-signin": s.auth_signin,
            NGINX + "auth-response-headers": ",".join(AUTH_RESPONSE_HEADERS),
            NGINX + "proxy-read-timeout": WEBSOCKET_TIMEOUT,
            NGINX + "proxy-send-timeout": WEBSOCKET_TIMEOUT,
        }

    def objects(self, ws: ExposedWorkspace) -> list[dict[str, Any]]:
        annotations = self.annotations()
        out = [port_ingress(self.settings, ws, n, p, annotations) for n, p in ws.ports]
        return [*out, handoff_ingress(self.settings, ws)]

    def is_protected(self, ingress: dict[str, Any], objects: list[dict[str, Any]]) -> bool:
        ann = ingress["metadata"].get("annotations") or {}
        return bool(self.settings.auth_url) and ann.get(NGINX + "auth-url") == self.settings.auth_url \
            and bool(ann.get(NGINX + "auth-signin"))


class TraefikBackend:
    """Traefik: a ``forwardAuth`` Middleware per workspace, referenced by each port's Ingress.

    Traefik sends ``X-Forwarded-Host/Uri/Method/Proto`` to the auth address; on a non-2xx
    answer it returns the auth response to the browser as is, so the bot itself must answer
    an unauthenticated browser with a 302 to its login (there is no ``auth-signin``).
    ``trustForwardHeader: false``: the client's own ``X-Forwarded-*`` are not believed.
    """

    kinds: tuple[Kind, ...] = (MIDDLEWARE_KIND, INGRESS_KIND)

    def __init__(self, settings: ExposureSettings):
        self.settings = settings

    def middleware_ref(self, ws: ExposedWorkspace) -> str:
        return f"{self.settings.namespace}-{ws.middleware_name}@kubernetescrd"

    def middleware(self, ws: ExposedWorkspace) -> dict[str, Any]:
        return {
            "apiVersion": MIDDLEWARE_KIND.api_version,
            "kind": MIDDLEWARE_KIND.kind,
            "metadata": meta(self.settings, ws, ws.middleware_name, "auth"),
            "spec": {"forwardAuth": {"address": require_auth(self.settings), "trustForwardHeader": False,
                                     "authResponseHeaders": list(AUTH_RESPONSE_HEADERS)}},
        }

    def objects(self, ws: ExposedWorkspace) -> list[dict[str, Any]]:
        mw = self.middleware(ws)
        annotations = {TRAEFIK + "router.middlewares": self.middleware_ref(ws)}
        out = [port_ingress(self.settings, ws, n, p, annotations) for n, p in ws.ports]
        return [mw, *out, handoff_ingress(self.settings, ws)]

    def is_protected(self, ingress: dict[str, Any], objects: list[dict[str, Any]]) -> bool:
        refs = (ingress["metadata"].get("annotations") or {}).get(TRAEFIK + "router.middlewares", "")
        for obj in objects:
            if obj["kind"] != "Middleware":
                continue
            ref = f"{self.settings.namespace}-{obj['metadata']['name']}@kubernetescrd"
            fa = obj["spec"].get("forwardAuth") or {}
            if ref in [r.strip() for r in refs.split(",")] and self.settings.auth_url \
                    and fa.get("address") == self.settings.auth_url and fa.get("trustForwardHeader") is False:
                return True
        return False


class ServiceOnlyBackend:
    """No routing objects at all: only the workspace Service is created.

    For the Cloudflare Tunnel API mode (bot/cluster/cloudflare.py), where the tunnel's own rules
    route each preview host, and the IDE's rule must point at the bot's auth proxy
    (:meth:`bot.cluster.cloudflare.CloudflareTunnelRoutes.apply` enforces that). A Service alone
    is reachable only inside the cluster, so there is nothing for :func:`assert_protected` to check.
    """

    kinds: tuple[Kind, ...] = ()

    def __init__(self, settings: ExposureSettings | None = None):
        self.settings = settings

    def objects(self, ws: ExposedWorkspace) -> list[dict[str, Any]]:
        return []

    def is_protected(self, ingress: dict[str, Any], objects: list[dict[str, Any]]) -> bool:
        return False


def backend_for(settings: ExposureSettings) -> RouterBackend:
    backends: dict[str, type[NginxIngressBackend | TraefikBackend]] = {
        "ingress-nginx": NginxIngressBackend, "traefik": TraefikBackend}
    return backends[settings.router](settings)


def assert_protected(settings: ExposureSettings, ws: ExposedWorkspace, objects: list[dict[str, Any]],
                     backend: RouterBackend) -> None:
    """The hard invariant: every Ingress that reaches the workspace Service is behind forward
    auth, the IDE is exposed, and the one unauthenticated Ingress only routes ``/_devenv/`` to the bot."""
    require_auth(settings)
    code_routed = False
    for obj in objects:
        if obj["kind"] != "Ingress":
            continue
        backends = [(path.get("path"), path["backend"]["service"]["name"])
                    for rule in obj["spec"].get("rules") or [] for path in rule["http"]["paths"]]
        reaches_workspace = any(svc == ws.service_name for _, svc in backends)
        if reaches_workspace and not backend.is_protected(obj, objects):
            raise ExposureError(f"Ingress {obj['metadata']['name']} would reach the workspace without forward auth")
        if not backend.is_protected(obj, objects) and any(
                p != HANDOFF_PATH or svc != settings.bot_service for p, svc in backends):
            raise ExposureError(f"unauthenticated Ingress {obj['metadata']['name']} routes more than "
                                f"{HANDOFF_PATH} to the bot")
        if obj["metadata"]["name"] == ws.ingress_name(CODE_PORT_NAME) and backend.is_protected(obj, objects):
            code_routed = True
    if not code_routed:
        raise ExposureError("no protected route to the IDE")


def manifests(settings: ExposureSettings, ws: ExposedWorkspace,
              backend: RouterBackend | None = None) -> list[dict[str, Any]]:
    """All objects for ``ws`` in creation order (Service, router objects), checked by :func:`assert_protected`."""
    backend = backend or backend_for(settings)
    objects = [service_manifest(settings, ws), *backend.objects(ws)]
    if isinstance(backend, ServiceOnlyBackend):
        if any(obj["kind"] != "Service" for obj in objects):  # pragma: no cover - defensive
            raise ExposureError("the Service-only backend must not create routes")
    else:
        assert_protected(settings, ws, objects, backend)
    return [stamp(settings, obj) for obj in objects]
