"""Exposure: browser links to a workspace through the cluster's ingress controller.

Design. DevPod creates the workspace pod and nothing else (CONTRACT §5.2): no Service, no
Ingress. OpenVSCode listens on ``0.0.0.0:10800`` inside the pod **without any token**
(CONTRACT §6), so whoever reaches that port owns a shell in the workspace. This module
puts it, and the app ports a PR declares, behind the bot's forward-auth endpoint.

Three layers, as elsewhere in the bot (sans-I/O first):

* :class:`ExposureSettings`, read once from the environment and validated;
* pure builders returning plain dicts (Kubernetes manifests): :func:`service_manifest`
  and a :class:`RouterBackend` per ingress controller (:class:`NginxIngressBackend`,
  :class:`TraefikBackend`; a Gateway API ``HTTPRoute`` backend can follow the same
  protocol). :func:`manifests` composes them and then *checks* the result with
  :func:`assert_protected`: every route to the workspace Service carries forward auth,
  and the only unauthenticated route is ``/_devenv/`` to the bot's own Service. A missing
  ``DEVENV_AUTH_URL`` raises :class:`ExposureError` instead of producing an open IDE;
* :class:`Exposure`, the applier, which talks to the API server with the official
  ``kubernetes`` client (synchronous, so every call runs in ``asyncio.to_thread``).

Naming (ids are ≤ 48 characters; CONTRACT §1.5):

* Service ``devenv-<id>`` (≤ 55, a DNS-1035 label even when the id starts with a digit);
* one Ingress per port, ``devenv-<id>-<port>``, with one host ``<port>-<id>.<domain>``
  (the default ``DEVENV_HOST_TEMPLATE``). Hosts stay **one label deep** under the preview
  domain because Cloudflare's Universal SSL certificate covers ``*.<domain>`` only
  (docs/links.md);
* ``devenv-<id>--handoff``: the ``/_devenv/`` path of every host, to the bot, with no auth;
* Traefik only: Middleware ``devenv-<id>--auth`` (forwardAuth).

Port names contain no ``-`` (``[a-z][a-z0-9]*``), so ``--`` never comes from a port and a
host splits back into ``(port, id)`` unambiguously (:meth:`ExposureSettings.parse_host`).

Everything is labelled ``app.kubernetes.io/managed-by=devenv-bot`` and
``<prefix>/workspace=<id>`` (plus ``repo`` and ``pr``), which is how :meth:`Exposure.remove`
and :meth:`Exposure.remove_orphans` find what to delete. One bot per namespace: two bots
sharing a namespace would sweep each other's objects as orphans.

Idempotency. Each object carries the annotation ``<prefix>/applied`` (a hash of the
manifest the bot built, like DevPod's ``devpod.sh/last-applied-configuration``). An object
is rewritten only when that hash differs or a field the bot sets was changed by someone
else; the API server's own defaults (a Service's ``clusterIP`` ...) never cause a write.
Writes are ``PUT`` with the live ``resourceVersion`` (optimistic concurrency; a 409
re-reads and tries again), keeping labels and annotations the bot does not own.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

from bot.devpod.driver import label_value
from bot.settings.exposure import ExposureSettings
from bot.settings.kube import KubeSettings

log = logging.getLogger(__name__)

__all__ = [
    "CODE_PORT",
    "CODE_PORT_NAME",
    "HANDOFF_PATH",
    "AUTH_RESPONSE_HEADERS",
    "USER_HEADER",
    "Exposure",
    "ExposureError",
    "ExposureSettings",
    "ExposedWorkspace",
    "Link",
    "NginxIngressBackend",
    "RouterBackend",
    "ServiceOnlyBackend",
    "TraefikBackend",
    "assert_protected",
    "backend_for",
    "exposed_workspace",
    "kube_api_client",
    "manifests",
    "service_manifest",
]

#: OpenVSCode's hard-coded port inside the workspace pod (CONTRACT §6).
CODE_PORT = 10800
CODE_PORT_NAME = "code"
#: Path on every preview host served by the bot itself, without auth (one-time-code handoff).
HANDOFF_PATH = "/_devenv/"
#: Header the auth endpoint returns (GitHub login); the router copies it to the upstream
#: request, overwriting any value the browser sent.
USER_HEADER = "X-Devenv-User"
#: Every header the auth endpoint (bot/access.py ``check``) returns on a 2xx; all are copied
#: upstream so the PR's app can never be handed a forged one by the browser.
AUTH_RESPONSE_HEADERS = (USER_HEADER, "X-Devenv-User-Id", "X-Devenv-Permission")
#: ingress-nginx's default timeout is 60 s; an idle IDE WebSocket must survive longer.
WEBSOCKET_TIMEOUT = "3600"
MANAGED_BY = ("app.kubernetes.io/managed-by", "devenv-bot")
ROUTERS = ("ingress-nginx", "traefik")
DEFAULT_INGRESS_CLASS = {"ingress-nginx": "nginx", "traefik": "traefik"}
PERMISSIONS = ("read", "triage", "write", "maintain", "admin")
ID_MAX_LEN = 48
DNS_LABEL_MAX = 63
PORT_NAME_MAX = 15  # IANA service names, as Kubernetes container port names

NGINX = "nginx.ingress.kubernetes.io/"
TRAEFIK = "traefik.ingress.kubernetes.io/"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z][a-z0-9]*$")
_WS_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ID_RE = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_PORT_RE = r"[a-z][a-z0-9]*"
#: Characters that must never reach an annotation value (the ingress-nginx annotation
#: injection CVEs, e.g. CVE-2025-24514 through ``auth-url``, used quotes, braces, ``;``
#: and newlines). The bot uses no nginx variables, so ``$`` is refused too.
_UNSAFE_URL_CHARS = re.compile(r"[\s\"'`\\;{}$<>|^]")


class ExposureError(Exception):
    """The manifests would be wrong or unsafe (e.g. an IDE without forward auth)."""


@dataclasses.dataclass(frozen=True)
class Link:
    """A browser link to one port of a workspace; ``permission`` is the GitHub role it needs."""

    name: str
    url: str
    permission: str


# --------------------------------------------------------------------------- pure builders


@dataclasses.dataclass(frozen=True)
class ExposedWorkspace:
    """What one workspace exposes: validated ports (``code`` first) and the labels of its objects."""

    id: str
    ports: tuple[tuple[str, int], ...]
    labels: Mapping[str, str]
    folder: str

    @property
    def service_name(self) -> str:
        return f"devenv-{self.id}"

    def ingress_name(self, port_name: str) -> str:
        return f"devenv-{self.id}-{port_name}"

    @property
    def handoff_name(self) -> str:
        return f"devenv-{self.id}--handoff"

    @property
    def middleware_name(self) -> str:
        return f"devenv-{self.id}--auth"


def _owned_labels(settings: ExposureSettings, ws_id: str, labels: Mapping[str, str] | None) -> dict[str, str]:
    out = {MANAGED_BY[0]: MANAGED_BY[1]}
    for key, value in (labels or {}).items():
        full = key if "/" in key else f"{settings.label_prefix}/{key}"
        out[full] = label_value(str(value))
    out[f"{settings.label_prefix}/workspace"] = ws_id
    return out


def exposed_workspace(settings: ExposureSettings, ws_id: str, labels: Mapping[str, str] | None = None,
                      ports: Mapping[str, int] | None = None, *, folder: str | None = None) -> ExposedWorkspace:
    """Validate what to expose. ``ports`` are the app ports (name → container port); the IDE
    (``code`` → 10800) is always added. ``labels`` are e.g. ``{"repo": "owner.repo", "pr": "12"}``
    (keys without ``/`` get the label prefix)."""
    if not ws_id or len(ws_id) > ID_MAX_LEN or not _WS_ID.match(ws_id):
        raise ExposureError(f"invalid workspace id {ws_id!r}")
    room = settings.max_port_name_len
    seen_numbers = {CODE_PORT: CODE_PORT_NAME}
    app: list[tuple[str, int]] = []
    for name, number in sorted((ports or {}).items()):
        if name == CODE_PORT_NAME:
            raise ExposureError(f"port name {CODE_PORT_NAME!r} is reserved for the IDE")
        if not _PORT_NAME.match(name) or len(name) > room:
            raise ExposureError(f"port name {name!r} must be a lower-case letter then letters or digits, "
                                f"at most {room} characters")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            raise ExposureError(f"port {name!r} must be a number 1-65535, got {number!r}")
        if number in seen_numbers:
            raise ExposureError(f"port {number} is exposed twice ({seen_numbers[number]!r} and {name!r})")
        seen_numbers[number] = name
        app.append((name, number))
    folder = folder or f"/workspaces/{ws_id}"
    if not folder.startswith("/") or _UNSAFE_URL_CHARS.search(folder):
        raise ExposureError(f"invalid workspace folder {folder!r}")
    return ExposedWorkspace(ws_id, ((CODE_PORT_NAME, CODE_PORT), *app), _owned_labels(settings, ws_id, labels),
                            folder)


def _meta(settings: ExposureSettings, ws: ExposedWorkspace, name: str, role: str,
          extra_labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None) -> dict:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": settings.namespace,
        "labels": {**ws.labels, f"{settings.label_prefix}/role": role, **(extra_labels or {})},
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def service_manifest(settings: ExposureSettings, ws: ExposedWorkspace) -> dict[str, Any]:
    """The workspace's Service: selects the DevPod pod by ``<prefix>/workspace=<id>``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(settings, ws, ws.service_name, "service"),
        "spec": {
            "type": "ClusterIP",
            "selector": {f"{settings.label_prefix}/workspace": ws.id},
            "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in ws.ports],
        },
    }


def _link_of(settings: ExposureSettings, ws: ExposedWorkspace, port_name: str) -> Link:
    base = f"{settings.scheme}://{settings.host(port_name, ws.id)}/"
    if port_name == CODE_PORT_NAME:
        # The folder comes from the PR's devcontainer.json: percent-encode it so the URL stays one
        # opaque token wherever it is shown (a ``)`` would end a Markdown link).
        return Link(port_name, f"{base}?folder={quote(ws.folder, safe='/')}", settings.ide_permission)
    return Link(port_name, base, settings.app_permission)


def _ingress(settings: ExposureSettings, ws: ExposedWorkspace, name: str, hosts: list[str], path: str,
             backend: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"ingressClassName": settings.effective_ingress_class}
    if settings.tls_secret:
        spec["tls"] = [{"hosts": list(hosts), "secretName": settings.tls_secret}]
    spec["rules"] = [
        {"host": h, "http": {"paths": [{"path": path, "pathType": "Prefix", "backend": {"service": backend}}]}}
        for h in hosts
    ]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def _port_ingress(settings: ExposureSettings, ws: ExposedWorkspace, port_name: str, number: int,
                  router_annotations: Mapping[str, str]) -> dict[str, Any]:
    link = _link_of(settings, ws, port_name)
    p = settings.label_prefix
    meta = _meta(settings, ws, ws.ingress_name(port_name), "route", {f"{p}/port": port_name},
                 {**router_annotations, f"{p}/url": link.url, f"{p}/permission": link.permission})
    return _ingress(settings, ws, ws.ingress_name(port_name), [settings.host(port_name, ws.id)], "/",
                    {"name": ws.service_name, "port": {"number": number}}, meta)


def _handoff_ingress(settings: ExposureSettings, ws: ExposedWorkspace) -> dict[str, Any]:
    """``/_devenv/`` on every host of the workspace, to the bot, deliberately without auth:
    the access-control part sets its host-only cookie there (one-time-code handoff).
    A separate object because annotations (and Traefik middlewares) are per Ingress."""
    hosts = [settings.host(n, ws.id) for n, _ in ws.ports]
    return _ingress(settings, ws, ws.handoff_name, hosts, HANDOFF_PATH,
                    {"name": settings.bot_service, "port": {"number": settings.bot_port}},
                    _meta(settings, ws, ws.handoff_name, "handoff"))


def _require_auth(settings: ExposureSettings) -> str:
    if not settings.auth_url:
        raise ExposureError("refusing to expose a workspace without forward auth (OpenVSCode has no "
                            "authentication of its own): set DEVENV_AUTH_URL")
    return settings.auth_url


class RouterBackend(Protocol):
    """Builds the routing objects of one ingress controller for a workspace."""

    #: (apiVersion, kind, plural) of every kind it creates, in creation order.
    kinds: tuple[tuple[str, str, str], ...]

    def objects(self, ws: ExposedWorkspace) -> list[dict[str, Any]]: ...

    def is_protected(self, ingress: dict[str, Any], objects: list[dict[str, Any]]) -> bool:
        """Does this Ingress (one of ``objects``) pass through the bot's forward auth?"""
        ...


INGRESS_KIND = ("networking.k8s.io/v1", "Ingress", "ingresses")
MIDDLEWARE_KIND = ("traefik.io/v1alpha1", "Middleware", "middlewares")
SERVICE_KIND = ("v1", "Service", "services")


class NginxIngressBackend:
    """ingress-nginx: ``auth-url``/``auth-signin`` annotations on each port's Ingress.

    nginx calls ``auth-url`` before every request (no body) with ``X-Original-URL``
    (scheme, host and URI), ``X-Original-Method`` and the browser's cookies; the bot reads
    the host and path from ``X-Original-URL``, so no ``$host`` variables are put in the URL.
    A 401 turns into a 302 to ``auth-signin`` with ``rd=<original URL>`` appended by nginx;
    a 403 is shown as is. (FACTS §A1; ingress-nginx nginx.tmpl at controller-v1.15.1.)
    """

    kinds = (INGRESS_KIND,)

    def __init__(self, settings: ExposureSettings):
        self.settings = settings

    def annotations(self) -> dict[str, str]:
        s = self.settings
        if not s.auth_signin:
            raise ExposureError("ingress-nginx needs DEVENV_AUTH_SIGNIN (where a 401 sends the browser)")
        return {
            NGINX + "auth-url": _require_auth(s),
            NGINX + "auth-signin": s.auth_signin,
            NGINX + "auth-response-headers": ",".join(AUTH_RESPONSE_HEADERS),
            NGINX + "proxy-read-timeout": WEBSOCKET_TIMEOUT,
            NGINX + "proxy-send-timeout": WEBSOCKET_TIMEOUT,
        }

    def objects(self, ws: ExposedWorkspace) -> list[dict[str, Any]]:
        annotations = self.annotations()
        out = [_port_ingress(self.settings, ws, n, p, annotations) for n, p in ws.ports]
        return [*out, _handoff_ingress(self.settings, ws)]

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

    kinds = (MIDDLEWARE_KIND, INGRESS_KIND)

    def __init__(self, settings: ExposureSettings):
        self.settings = settings

    def middleware_ref(self, ws: ExposedWorkspace) -> str:
        return f"{self.settings.namespace}-{ws.middleware_name}@kubernetescrd"

    def middleware(self, ws: ExposedWorkspace) -> dict[str, Any]:
        return {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": _meta(self.settings, ws, ws.middleware_name, "auth"),
            "spec": {"forwardAuth": {"address": _require_auth(self.settings), "trustForwardHeader": False,
                                     "authResponseHeaders": list(AUTH_RESPONSE_HEADERS)}},
        }

    def objects(self, ws: ExposedWorkspace) -> list[dict[str, Any]]:
        mw = self.middleware(ws)
        annotations = {TRAEFIK + "router.middlewares": self.middleware_ref(ws)}
        out = [_port_ingress(self.settings, ws, n, p, annotations) for n, p in ws.ports]
        return [mw, *out, _handoff_ingress(self.settings, ws)]

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

    For the Cloudflare Tunnel API mode (bot/cloudflare.py), where the tunnel's own rules route
    each preview host, and the IDE's rule must point at the bot's auth proxy
    (:meth:`bot.cloudflare.CloudflareTunnelRoutes.apply` enforces that). A Service alone is
    reachable only inside the cluster, so there is nothing for :func:`assert_protected` to check.
    """

    kinds: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, settings: ExposureSettings | None = None):
        self.settings = settings

    def objects(self, ws: ExposedWorkspace) -> list[dict[str, Any]]:
        return []

    def is_protected(self, ingress: dict[str, Any], objects: list[dict[str, Any]]) -> bool:
        return False


def backend_for(settings: ExposureSettings) -> RouterBackend:
    return {"ingress-nginx": NginxIngressBackend, "traefik": TraefikBackend}[settings.router](settings)


def assert_protected(settings: ExposureSettings, ws: ExposedWorkspace, objects: list[dict[str, Any]],
                     backend: RouterBackend) -> None:
    """The hard invariant: every Ingress that reaches the workspace Service is behind forward
    auth, the IDE is exposed, and the one unauthenticated Ingress only routes ``/_devenv/`` to the bot."""
    _require_auth(settings)
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
    for obj in objects:
        ann = obj["metadata"].setdefault("annotations", {})
        ann[f"{settings.label_prefix}/applied"] = _digest(obj)
    return objects


def links_of(settings: ExposureSettings, ws: ExposedWorkspace) -> list[Link]:
    return [_link_of(settings, ws, n) for n, _ in ws.ports]


def _digest(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:20]


# --------------------------------------------------------------------------- applier


def kube_api_client(kube: KubeSettings) -> Any:
    """An ``ApiClient``: in-cluster service account if there is one, else ``KUBECONFIG``
    (``DEVENV_KUBE_CONTEXT`` picks the context). The in-cluster loader re-reads the
    projected token before it expires."""
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        config.load_kube_config(config_file=str(kube.kubeconfig) if kube.kubeconfig is not None else None,
                                context=kube.context, client_configuration=cfg)
    return client.ApiClient(cfg)


def _path(kind: tuple[str, str, str], namespace: str, name: str | None = None) -> str:
    api_version, _, plural = kind
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{base}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def _kind_of(obj: dict[str, Any]) -> tuple[str, str, str]:
    for k in (SERVICE_KIND, INGRESS_KIND, MIDDLEWARE_KIND):
        if (obj["apiVersion"], obj["kind"]) == k[:2]:
            return k
    raise ExposureError(f"unknown kind {obj['apiVersion']} {obj['kind']}")


def _subset(want: Any, have: Any) -> bool:
    """Is everything in ``want`` also in ``have`` (server defaults in ``have`` are ignored)?"""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and _subset(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(_subset, want, have))
    return want == have


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
        self.api = api_client
        self.backend = backend or backend_for(settings)
        self.kinds: tuple[tuple[str, str, str], ...] = (SERVICE_KIND, *self.backend.kinds)
        self._retries, self._backoff, self._timeout, self._sleep = retries, backoff, request_timeout, sleep
        self._locks: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
        await asyncio.to_thread(self.api.close)

    # ------------------------------------------------------------------ HTTP

    def _call(self, method: str, path: str, query: list[tuple[str, str]] | None, body: Any) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        method, url, headers, body, _ = self.api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"])
        resp = self.api.call_api(method, url, headers, body, _request_timeout=self._timeout)
        resp.read()
        if not 200 <= resp.status < 300:
            raise ApiException.from_response(http_resp=resp, body=resp.data.decode("utf-8", "replace"), data=None)
        return json.loads(resp.data or b"{}")

    async def _request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                       body: Any = None) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return await asyncio.to_thread(self._call, method, path, query, body)
            except ApiException as e:
                if not (e.status == 429 or (e.status or 0) >= 500) or attempt == self._retries:
                    raise
                log.warning("kubernetes %s %s: %s, retrying", method, path, e.status)
            except HTTPError as e:
                if attempt == self._retries:
                    raise
                log.warning("kubernetes %s %s: %s, retrying", method, path, e)
            await self._sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def _list(self, kind: tuple[str, str, str], selector: str) -> list[dict[str, Any]]:
        result = await self._request("GET", _path(kind, self.settings.namespace), query=[("labelSelector", selector)])
        items = result.get("items") or []
        for item in items:  # list items carry no kind/apiVersion
            item["apiVersion"], item["kind"] = kind[0], kind[1]
        return items

    async def _delete(self, kind: tuple[str, str, str], name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            await self._request("DELETE", _path(kind, self.settings.namespace, name))
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    def _selector(self, ws_id: str | None = None) -> str:
        sel = f"{MANAGED_BY[0]}={MANAGED_BY[1]}"
        return sel + (f",{self.settings.label_prefix}/workspace={ws_id}" if ws_id else "")

    def _ours(self, key: str) -> bool:
        return key.startswith((NGINX, TRAEFIK, self.settings.label_prefix + "/")) or key == MANAGED_BY[0]

    def _differs(self, want: dict[str, Any], live: dict[str, Any]) -> bool:
        key = f"{self.settings.label_prefix}/applied"
        meta, live_meta = want["metadata"], live.get("metadata") or {}
        live_ann = live_meta.get("annotations") or {}
        owned_live = {k: v for k, v in live_ann.items() if self._ours(k)}
        return (live_ann.get(key) != meta["annotations"][key]
                or owned_live != meta.get("annotations", {})
                or not _subset(meta.get("labels", {}), live_meta.get("labels") or {})
                or not _subset(want.get("spec"), live.get("spec")))

    def _replacement(self, want: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(want)
        live_meta, meta = live.get("metadata") or {}, body["metadata"]
        meta["resourceVersion"] = live_meta["resourceVersion"]
        for field in ("labels", "annotations"):  # keep what others put there
            foreign = {k: v for k, v in (live_meta.get(field) or {}).items() if not self._ours(k)}
            meta[field] = {**foreign, **meta.get(field, {})}
        if want["kind"] == "Service":  # allocated, immutable
            for f in ("clusterIP", "clusterIPs"):
                if f in (live.get("spec") or {}):
                    body["spec"][f] = live["spec"][f]
        return body

    async def _ensure(self, want: dict[str, Any], live: dict[str, Any] | None) -> bool:
        """Create or update one object; True when something was written."""
        from kubernetes.client.exceptions import ApiException

        kind, ns, name = _kind_of(want), self.settings.namespace, want["metadata"]["name"]
        for _ in range(4):
            if live is None:
                try:
                    await self._request("POST", _path(kind, ns), body=want)
                    return True
                except ApiException as e:
                    if e.status != 409:
                        raise
                # AlreadyExists (created meanwhile, or present without our labels): adopt it
                live = await self._request("GET", _path(kind, ns, name))
            if not self._differs(want, live):
                return False
            try:
                await self._request("PUT", _path(kind, ns, name), body=self._replacement(want, live))
                return True
            except ApiException as e:
                if e.status not in (404, 409):
                    raise
                # Conflict: someone wrote in between; NotFound: deleted in between
                try:
                    live = await self._request("GET", _path(kind, ns, name))
                except ApiException as e2:
                    if e2.status != 404:
                        raise
                    live = None
        raise ExposureError(f"{kind[1]} {name} kept changing under the bot; giving up")

    # ------------------------------------------------------------------ verbs

    def _lock(self, ws_id: str) -> asyncio.Lock:
        return self._locks.setdefault(ws_id, asyncio.Lock())

    async def apply(self, ws_id: str, labels: Mapping[str, str] | None, ports: Mapping[str, int] | None,
                    *, folder: str | None = None) -> list[Link]:
        """Make the cluster match: create what is missing, rewrite what differs, delete what is
        no longer wanted (a port that went away). Returns the links, IDE first."""
        ws = exposed_workspace(self.settings, ws_id, labels, ports, folder=folder)
        wanted = manifests(self.settings, ws, self.backend)
        async with self._lock(ws_id):
            live: dict[tuple[str, str], dict[str, Any]] = {}
            for kind in self.kinds:
                for obj in await self._list(kind, self._selector(ws_id)):
                    live[(kind[1], obj["metadata"]["name"])] = obj
            writes = 0
            for obj in wanted:
                writes += await self._ensure(obj, live.pop((obj["kind"], obj["metadata"]["name"]), None))
            for (kind_name, name) in sorted(live, key=self._deletion_order):
                kind = next(k for k in self.kinds if k[1] == kind_name)
                writes += await self._delete(kind, name)
            if writes:
                log.info("exposure of %s: %d object(s) written", ws_id, writes)
        return links_of(self.settings, ws)

    def _deletion_order(self, key: tuple[str, str]) -> tuple[int, str]:
        order = {"Ingress": 0, "Middleware": 1, "Service": 2}  # routes go before what they point at
        return order.get(key[0], 3), key[1]

    async def remove(self, ws_id: str) -> int:
        """Delete every object labelled with this workspace; returns how many were deleted."""
        async with self._lock(ws_id):
            return await self._remove_selected(self._selector(ws_id))

    async def _remove_selected(self, selector: str, keep: Callable[[dict[str, Any]], bool] = lambda o: False) -> int:
        found: list[tuple[tuple[str, str, str], str]] = []
        for kind in self.kinds:
            found += [(kind, o["metadata"]["name"]) for o in await self._list(kind, selector) if not keep(o)]
        found.sort(key=lambda kn: self._deletion_order((kn[0][1], kn[1])))
        deleted = 0
        for kind, name in found:
            deleted += await self._delete(kind, name)
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
        services = {o["metadata"]["name"] for o in await self._list(SERVICE_KIND, self._selector(ws_id))}
        out: list[Link] = []
        for ing in await self._list(INGRESS_KIND, self._selector(ws_id) + f",{p}/role=route"):
            meta = ing["metadata"]
            ann, port = meta.get("annotations") or {}, (meta.get("labels") or {}).get(f"{p}/port")
            targets = {path["backend"]["service"]["name"] for rule in ing["spec"].get("rules") or []
                       for path in rule["http"]["paths"]}
            if port and ann.get(f"{p}/url") and targets <= services and targets:
                out.append(Link(port, ann[f"{p}/url"], ann.get(f"{p}/permission", "write")))
        out.sort(key=lambda link: (link.name != CODE_PORT_NAME, link.name))
        return out

