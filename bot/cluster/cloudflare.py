"""Cloudflare Tunnel routes: preview hosts for clusters without an ingress controller.

Design. In this mode the bot owns, per workspace, one public hostname per port on a
*remotely managed* Cloudflare Tunnel (``config_src: cloudflare``), through the Cloudflare
API v4 (docs/cloudflare.md):

* an **ingress rule** in the tunnel's configuration, ``{"hostname": <host>, "service":
  "http://devenv-<id>.<ns>.svc:<port>", "originRequest": {...}}``;
* a **proxied CNAME** ``<host>`` → ``<tunnel-id>.cfargotunnel.com`` in the zone, whose
  ``comment`` is ``devenv-bot:<id>`` so that :meth:`CloudflareTunnelRoutes.remove` and
  :meth:`~CloudflareTunnelRoutes.remove_orphans` find it again.

Hosts are the ones of :class:`bot.cluster.exposure.ExposureSettings` (``<port>-<id>.<domain>``,
one label deep so Universal SSL covers them). Which rules and records a workspace gets, and
which ones are the bot's, is decided by the pure functions of :mod:`bot.cluster.tunnel_rules`
(the IDE only ever through the bot's auth proxy, ``DEVENV_CLOUDFLARE_AUTH_PROXY``); the calls go
through :class:`bot.cluster.cloudflare_api.CloudflareApi` (retries, errors, the token).

The configuration is **one document**: ``PUT .../configurations`` replaces it whole and has
no version precondition (FACTS §B, "No compare-and-swap"), so every read-modify-write is
serialised by one :class:`asyncio.Lock` and, with several replicas (``DEVENV_STATE_BACKEND=kubernetes``),
by a mutex Lease ``devenv-cloudflare-tunnel`` taken around each read-modify-write (``mutex``,
injected). A human editing the tunnel in the dashboard at the same moment is still last-writer-wins.
Nothing is written when nothing changes (the rules the bot wants are compared with the
live ones, ignoring fields Cloudflare may add), so re-running ``apply`` is cheap: one GET
for the configuration, one per hostname and one listing of the workspace's DNS records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp

from bot.cluster import tunnel_rules
from bot.cluster.cloudflare_api import CloudflareApi, CloudflareError
from bot.cluster.reconcile import subset
from bot.cluster.tunnel_rules import COMMENT_PREFIX
from bot.settings.cloudflare import CloudflareSettings
from bot.settings.exposure import ExposureSettings

log = logging.getLogger(__name__)

__all__ = ["CloudflareSettings", "CloudflareTunnelRoutes"]

#: Cloudflare error codes for "a record with that name already exists" (a retried POST
#: whose first attempt went through).
DNS_EXISTS_CODES = frozenset({81053, 81057, 81058})

class CloudflareTunnelRoutes:
    """Publishes, updates and withdraws the tunnel routes and DNS records of workspaces.

    ``session`` is the bot's shared :class:`aiohttp.ClientSession` (not closed here).
    ``sleep`` is injected so tests do not wait for backoff.
    """

    def __init__(self, settings: CloudflareSettings, exposure: ExposureSettings, session: aiohttp.ClientSession,
                 *, retries: int = 3, backoff: float = 1.0, max_delay: float = 30.0, request_timeout: float = 30.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 mutex: Callable[[], contextlib.AbstractAsyncContextManager[None]] = contextlib.nullcontext):
        self.settings = settings
        self.exposure = exposure
        self.api = CloudflareApi(settings.api_url, settings.api_token, session, retries=retries, backoff=backoff,
                                 max_delay=max_delay, request_timeout=request_timeout, sleep=sleep)
        #: One configuration document per tunnel: every read-modify-write goes through this.
        self._lock = asyncio.Lock()
        #: ... and, with replicas, through a Lease shared by all of them (bot.replicas.coordination.mutex).
        self._mutex = mutex
        self._config_path = f"/accounts/{settings.account_id}/cfd_tunnel/{settings.tunnel_id}/configurations"
        self._records_path = f"/zones/{settings.zone_id}/dns_records"

    # ------------------------------------------------------------------ configuration

    async def _get_config(self) -> dict[str, Any]:
        result = (await self.api.request("GET", self._config_path)).get("result") or {}
        if result.get("source") == "local":
            raise CloudflareError("GET", self._config_path, 200, detail=(
                "the tunnel is locally managed (config file); the bot needs a remotely managed tunnel "
                "(created with config_src: cloudflare, or migrated in the dashboard)"))
        config = result.get("config") or {}
        return dict(config)

    async def _rewrite(self, rules: list[dict[str, Any]], drop: Callable[[str], bool]) -> bool:
        """GET, merge, and PUT only if something changed. Call with the lock held."""
        config = await self._get_config()
        live = [r for r in config.get("ingress") or [] if isinstance(r, dict)]
        new = tunnel_rules.merge(self.exposure, live, rules, drop)
        if len(new) == len(live) and all(map(subset, new, live)):
            return False
        await self.api.request("PUT", self._config_path, body={"config": {**config, "ingress": new}})
        return True

    # ------------------------------------------------------------------ DNS

    async def _records(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """All records matching ``params`` (every page)."""
        return await self.api.list_all(self._records_path, params)

    async def _records_named(self, host: str) -> list[dict[str, Any]]:
        return [r for r in await self._records({"name": host}) if r.get("name") == host]

    async def _ensure_record(self, ws_id: str, host: str) -> bool:
        """Create (or correct) the proxied CNAME of ``host``; True when something was written."""
        want = tunnel_rules.record_body(self.settings.cname_target, ws_id, host)
        existing = await self._records_named(host)
        if not existing:
            try:
                await self.api.request("POST", self._records_path, body=want)
                return True
            except CloudflareError as e:
                if not DNS_EXISTS_CODES.intersection(e.codes):
                    raise
                # created by a retried POST that did reach Cloudflare: check it below
                existing = await self._records_named(host)
        foreign = [r for r in existing if not str(r.get("comment") or "").startswith(COMMENT_PREFIX)]
        if foreign:
            raise CloudflareError("POST", self._records_path, None, detail=(
                f"a {foreign[0].get('type')} record for {host} exists that devenv-bot did not create; "
                f"delete it or choose another DEVENV_PREVIEW_DOMAIN"))
        first, *extra = existing
        changed = False
        if not all(first.get(k) == v for k, v in want.items()):
            await self.api.request("PUT", f"{self._records_path}/{first['id']}", body=want)
            changed = True
        for rec in extra:  # duplicates of ours (cannot normally exist for a CNAME)
            changed |= await self._delete_record(rec)
        return changed

    async def _delete_record(self, record: Mapping[str, Any]) -> bool:
        return await self.api.delete(f"{self._records_path}/{record['id']}")

    def _ours(self, record: Mapping[str, Any], ws_ids: Callable[[str], bool]) -> bool:
        return tunnel_rules.is_our_record(self.exposure, self.settings.cname_target, record, ws_ids)

    # ------------------------------------------------------------------ verbs

    async def check(self) -> None:
        """Read the tunnel configuration once (start-up check of the token and ids)."""
        await self._get_config()

    async def apply(self, ws_id: str, routes: Mapping[str, str]) -> None:
        """Make the tunnel route exactly ``routes`` (``{hostname: service URL}``) for ``ws_id``:
        rules and DNS records of hosts no longer wanted are removed. Idempotent."""
        rules = tunnel_rules.ingress_rules(self.exposure, self.settings.auth_proxy, ws_id, routes)
        async with self._lock, self._mutex():
            wrote = await self._rewrite(rules, lambda owner: owner == ws_id)
            written = 0
            for host in sorted(routes):
                written += await self._ensure_record(ws_id, host)
            for rec in await self._records({"comment": COMMENT_PREFIX + ws_id}):
                if self._ours(rec, lambda i: i == ws_id) and rec.get("name") not in routes:
                    written += await self._delete_record(rec)
        if wrote or written:
            log.info("tunnel routes of %s: %d rule(s), configuration %s, %d DNS record(s) written", ws_id,
                     len(rules), "updated" if wrote else "unchanged", written)

    async def remove(self, ws_id: str) -> int:
        """Withdraw every rule and DNS record of ``ws_id``; returns how many records were deleted."""
        async with self._lock, self._mutex():
            await self._rewrite([], lambda owner: owner == ws_id)
            deleted = 0
            for rec in await self._records({"comment": COMMENT_PREFIX + ws_id}):
                if self._ours(rec, lambda i: i == ws_id):
                    deleted += await self._delete_record(rec)
        return deleted

    async def remove_orphans(self, live_ws_ids: Iterable[str]) -> set[str]:
        """Withdraw rules and records of workspaces not in ``live_ws_ids``; returns those ids."""
        live = set(live_ws_ids)
        orphans: set[str] = set()
        async with self._lock, self._mutex():
            config = await self._get_config()
            for rule in config.get("ingress") or []:
                if isinstance(rule, dict) and (owner := tunnel_rules.owner(self.exposure, rule)) is not None \
                        and owner not in live:
                    orphans.add(owner)
            if orphans:
                await self._rewrite([], lambda owner: owner not in live)
            for rec in await self._records({"comment.startswith": COMMENT_PREFIX}):
                if self._ours(rec, lambda i: i not in live):
                    orphans.add(str(rec["comment"])[len(COMMENT_PREFIX):])
                    await self._delete_record(rec)
        if orphans:
            log.info("removed tunnel routes of gone workspaces %s", sorted(orphans))
        return orphans
