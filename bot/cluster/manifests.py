"""Pure builders of the Kubernetes objects of a workspace: its Service and its Ingresses.

Design. Plain dicts in, plain dicts out, no API calls: the router backends
(:mod:`bot.cluster.routers`) compose these pieces per ingress controller, and the applier
(:mod:`bot.cluster.exposure`) only sends them. Hosts stay **one label deep** under the preview
domain (``<port>-<id>.<domain>`` with the default ``DEVENV_HOST_TEMPLATE``) because
Cloudflare's Universal SSL certificate covers ``*.<domain>`` only (docs/links.md).

Each object the bot builds carries the annotation ``<prefix>/applied``, a hash of the object
as built (like DevPod's ``devpod.sh/last-applied-configuration``); :mod:`bot.cluster.reconcile`
compares it with the live object's to decide whether to write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from bot.cluster.kube import Kind
from bot.cluster.links import link_of
from bot.cluster.workspace import HANDOFF_PATH, ExposedWorkspace, ExposureError
from bot.settings.exposure import ExposureSettings

__all__ = [
    "INGRESS_KIND",
    "MIDDLEWARE_KIND",
    "SERVICE_KIND",
    "applied_key",
    "handoff_ingress",
    "kind_of",
    "meta",
    "port_ingress",
    "require_auth",
    "service_manifest",
    "stamp",
]

SERVICE_KIND = Kind("v1", "Service", "services")
INGRESS_KIND = Kind("networking.k8s.io/v1", "Ingress", "ingresses")
MIDDLEWARE_KIND = Kind("traefik.io/v1alpha1", "Middleware", "middlewares")


def kind_of(obj: Mapping[str, Any]) -> Kind:
    for k in (SERVICE_KIND, INGRESS_KIND, MIDDLEWARE_KIND):
        if (obj["apiVersion"], obj["kind"]) == k[:2]:
            return k
    raise ExposureError(f"unknown kind {obj['apiVersion']} {obj['kind']}")


def meta(settings: ExposureSettings, ws: ExposedWorkspace, name: str, role: str,
         extra_labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None) -> dict:
    """``metadata`` of one object: the workspace's labels plus ``<prefix>/role``."""
    out: dict[str, Any] = {
        "name": name,
        "namespace": settings.namespace,
        "labels": {**ws.labels, f"{settings.label_prefix}/role": role, **(extra_labels or {})},
    }
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def service_manifest(settings: ExposureSettings, ws: ExposedWorkspace) -> dict[str, Any]:
    """The workspace's Service: selects the DevPod pod by ``<prefix>/workspace=<id>``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(settings, ws, ws.service_name, "service"),
        "spec": {
            "type": "ClusterIP",
            "selector": {f"{settings.label_prefix}/workspace": ws.id},
            "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in ws.ports],
        },
    }


def _ingress(settings: ExposureSettings, hosts: list[str], path: str, backend: dict[str, Any],
             metadata: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"ingressClassName": settings.effective_ingress_class}
    if settings.tls_secret:
        spec["tls"] = [{"hosts": list(hosts), "secretName": settings.tls_secret}]
    spec["rules"] = [
        {"host": h, "http": {"paths": [{"path": path, "pathType": "Prefix", "backend": {"service": backend}}]}}
        for h in hosts
    ]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}


def port_ingress(settings: ExposureSettings, ws: ExposedWorkspace, port_name: str, number: int,
                 router_annotations: Mapping[str, str]) -> dict[str, Any]:
    """The Ingress of one port: its host, to the workspace Service, with the router's annotations
    (forward auth) and the link's URL and permission (read back by :func:`bot.cluster.links.live_links`)."""
    link = link_of(settings, ws, port_name)
    p = settings.label_prefix
    metadata = meta(settings, ws, ws.ingress_name(port_name), "route", {f"{p}/port": port_name},
                    {**router_annotations, f"{p}/url": link.url, f"{p}/permission": link.permission})
    return _ingress(settings, [settings.host(port_name, ws.id)], "/",
                    {"name": ws.service_name, "port": {"number": number}}, metadata)


def handoff_ingress(settings: ExposureSettings, ws: ExposedWorkspace) -> dict[str, Any]:
    """``/_devenv/`` on every host of the workspace, to the bot, deliberately without auth:
    the access-control part sets its host-only cookie there (one-time-code handoff).
    A separate object because annotations (and Traefik middlewares) are per Ingress."""
    hosts = [settings.host(n, ws.id) for n, _ in ws.ports]
    return _ingress(settings, hosts, HANDOFF_PATH,
                    {"name": settings.bot_service, "port": {"number": settings.bot_port}},
                    meta(settings, ws, ws.handoff_name, "handoff"))


def require_auth(settings: ExposureSettings) -> str:
    """The forward-auth URL; raises :class:`ExposureError` rather than build an open IDE."""
    if not settings.auth_url:
        raise ExposureError("refusing to expose a workspace without forward auth (OpenVSCode has no "
                            "authentication of its own): set DEVENV_AUTH_URL")
    return settings.auth_url


def applied_key(label_prefix: str) -> str:
    """The annotation holding the hash of the object as the bot built it."""
    return f"{label_prefix}/applied"


def stamp(settings: ExposureSettings, obj: dict[str, Any]) -> dict[str, Any]:
    """Add the ``<prefix>/applied`` hash of ``obj`` (as it is before the annotation) to it."""
    ann = obj["metadata"].setdefault("annotations", {})
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:20]
    ann[applied_key(settings.label_prefix)] = digest
    return obj
