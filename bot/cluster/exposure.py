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
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from bot.cluster import reconcile
from bot.cluster.kube import Kind, KubeApi
from bot.cluster.links import Link, links_of, live_links
from bot.cluster.manifests import INGRESS_KIND, SERVICE_KIND, kind_of
from bot.cluster.routers import RouterBackend, backend_for, manifests
from bot.cluster.workspace import MANAGED_BY, ExposureError, exposed_workspace
from bot.settings.exposure import ExposureSettings

log = logging.getLogger(__name__)

__all__ = ["Exposure", "ExposureSettings"]

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

    async def reachable(self) -> str | None:
        """Can the bot list its Services (the API answers, the credentials and RBAC hold)? None if so,
        else a short reason: the readiness check."""
        try:
            await self.kube.list(SERVICE_KIND, self._selector())
        except Exception as exc:  # any failure is the reason shown on /readyz
            status = getattr(exc, "status", None)
            return f"listing Services in {self.settings.namespace} got {status}" if status else exc.__class__.__name__
        return None

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
