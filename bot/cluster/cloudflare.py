"""Cloudflare Tunnel routes: preview hosts for clusters without an ingress controller.

Design. In this mode the bot owns, per workspace, one public hostname per port on a
*remotely managed* Cloudflare Tunnel (``config_src: cloudflare``), through the Cloudflare
API v4 (docs/cloudflare.md):

* an **ingress rule** in the tunnel's configuration, ``{"hostname": <host>, "service":
  "http://devenv-<id>.<ns>.svc:<port>", "originRequest": {...}}``;
* a **proxied CNAME** ``<host>`` → ``<tunnel-id>.cfargotunnel.com`` in the zone, whose
  ``comment`` is ``devenv-bot:<id>`` so that :meth:`CloudflareTunnelRoutes.remove` and
  :meth:`~CloudflareTunnelRoutes.remove_orphans` find it again.

Hosts are the ones of :class:`bot.exposure.ExposureSettings` (``<port>-<id>.<domain>``, one
label deep so Universal SSL covers them). A rule belongs to a workspace when its hostname
parses back (``ExposureSettings.parse_host``) to that workspace id; every other rule (the
bot's own host, an operator's wildcard, the final catch-all) is copied through untouched.

The configuration is **one document**: ``PUT .../configurations`` replaces it whole and has
no version precondition (FACTS §B, "No compare-and-swap"), so every read-modify-write is
serialised by one :class:`asyncio.Lock`. That protects one bot process only; two replicas
(or a human editing the tunnel in the dashboard at the same moment) are last-writer-wins.
Nothing is written when nothing changes (the rules the bot wants are compared with the
live ones, ignoring fields Cloudflare may add), so re-running ``apply`` is cheap: one GET
for the configuration, one per hostname and one listing of the workspace's DNS records.

The IDE. OpenVSCode has no authentication of its own (CONTRACT §6) and in this mode no
ingress controller calls the bot's forward auth. So the ``code`` host, and any rule whose
service is the IDE's port 10800, must point at the bot's own authenticating reverse proxy
(``DEVENV_CLOUDFLARE_AUTH_PROXY``); anything else raises :class:`bot.exposure.ExposureError`
before a single API call is made.

Errors. ``success: false`` or an HTTP error raises :class:`CloudflareError`, carrying the
API's ``errors`` (code and message) for the check run. 429, 5xx and connection errors are
retried a bounded number of times with backoff (``retry-after`` honoured up to a cap:
Cloudflare's rate limit blocks for five minutes, longer than a job should sleep). The API
token is sent only in the ``Authorization`` header, registered with the log redactor, and
never part of an exception or a ``repr``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.cluster.exposure import CODE_PORT, CODE_PORT_NAME, ExposedWorkspace, ExposureError, ExposureSettings
from bot.core import logs
from bot.settings.cloudflare import CloudflareSettings

log = logging.getLogger(__name__)

__all__ = [
    "CATCH_ALL",
    "COMMENT_PREFIX",
    "CloudflareError",
    "CloudflareSettings",
    "CloudflareTunnelRoutes",
    "DEFAULT_API_URL",
    "tunnel_routes",
]

DEFAULT_API_URL = "https://api.cloudflare.com/client/v4"
#: cloudflared requires a last rule without hostname or path (FACTS §B "Catch-all rule").
CATCH_ALL: dict[str, Any] = {"service": "http_status:404"}
#: DNS record comments name the workspace; the orphan sweep and ``remove`` select on it.
COMMENT_PREFIX = "devenv-bot:"
#: originRequest of every rule the bot writes. ``connectTimeout`` is in seconds in the API
#: (cloudflared's default is 30 s): a stopped workspace then answers 502 quickly.
ORIGIN_REQUEST: dict[str, Any] = {"connectTimeout": 10}
#: Cloudflare error codes for "a record with that name already exists" (a retried POST
#: whose first attempt went through).
DNS_EXISTS_CODES = frozenset({81053, 81057, 81058})

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TAG = re.compile(r"^[0-9a-f]{32}$")  # account and zone ids
_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
_WS_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class CloudflareError(Exception):
    """The Cloudflare API refused or failed a request; ``errors`` are the API's own."""

    def __init__(self, method: str, path: str, status: int | None, errors: list[dict[str, Any]] | None = None,
                 detail: str | None = None):
        self.method, self.path, self.status = method, path, status
        self.errors = list(errors or [])
        self.detail = detail
        super().__init__(str(self))

    @property
    def codes(self) -> list[int]:
        return [e.get("code") for e in self.errors if isinstance(e.get("code"), int)]

    @property
    def messages(self) -> list[str]:
        """The API's messages, e.g. ``["[10000] Authentication error"]`` (for the check run)."""
        out = [f"[{e.get('code')}] {e.get('message')}" if e.get("code") is not None else str(e.get("message"))
               for e in self.errors]
        return out or [self.detail or "no error message"]

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        return logs.redactor(f"Cloudflare API {self.method} {self.path}: {status}: {'; '.join(self.messages)}")


def _normal_service(url: str | None) -> str | None:
    return url.rstrip("/") if url else url


def _check_service(var: str, url: str) -> str:
    """A cloudflared origin: http(s)://host[:port], no path (cloudflared refuses one), no credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{var} must be http(s)://host[:port] without a path, got {url!r}")
    parts.port  # noqa: B018  (raises ValueError on a bad port)
    return url


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def tunnel_routes(exposure: ExposureSettings, cloudflare: CloudflareSettings,
                  ws: ExposedWorkspace) -> dict[str, str]:
    """``{hostname: service}`` for a workspace: the IDE through the bot's auth proxy, app ports
    to the workspace Service ``http://devenv-<id>.<ns>.svc:<port>`` (or to the proxy too with
    ``DEVENV_CLOUDFLARE_PROXY_PREVIEWS``). Raises :class:`ExposureError` without a proxy."""
    out: dict[str, str] = {}
    for name, port in ws.ports:
        host = exposure.host(name, ws.id)
        if name == CODE_PORT_NAME or cloudflare.proxy_previews:
            if not cloudflare.auth_proxy:
                raise ExposureError("refusing to publish the IDE through the Cloudflare Tunnel without the bot's "
                                    "auth proxy in front of it (OpenVSCode has no authentication of its own): "
                                    "set DEVENV_CLOUDFLARE_AUTH_PROXY")
            out[host] = cloudflare.auth_proxy
        else:
            out[host] = f"http://{ws.service_name}.{exposure.namespace}.svc:{port}"
    return out


def _subset(want: Any, have: Any) -> bool:
    """Is everything in ``want`` also in ``have`` (fields the API adds in ``have`` are ignored)?"""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and _subset(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(_subset, want, have))
    return want == have


def _is_catch_all(rule: Mapping[str, Any]) -> bool:
    return not rule.get("hostname") and not rule.get("path")


class CloudflareTunnelRoutes:
    """Publishes, updates and withdraws the tunnel routes and DNS records of workspaces.

    ``session`` is the bot's shared :class:`aiohttp.ClientSession` (not closed here).
    ``sleep`` is injected so tests do not wait for backoff.
    """

    def __init__(self, settings: CloudflareSettings, exposure: ExposureSettings, session: aiohttp.ClientSession,
                 *, retries: int = 3, backoff: float = 1.0, max_delay: float = 30.0, request_timeout: float = 30.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.settings = settings
        self.exposure = exposure
        self._session = session
        self._retries, self._backoff, self._max_delay, self._sleep = retries, backoff, max_delay, sleep
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        #: One configuration document per tunnel: every read-modify-write goes through this.
        self._lock = asyncio.Lock()
        logs.redactor.add(settings.api_token)

    # ------------------------------------------------------------------ HTTP

    @property
    def _config_path(self) -> str:
        s = self.settings
        return f"/accounts/{s.account_id}/cfd_tunnel/{s.tunnel_id}/configurations"

    @property
    def _records_path(self) -> str:
        return f"/zones/{self.settings.zone_id}/dns_records"

    async def _request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                       body: Any = None) -> dict[str, Any]:
        """One API call; returns the whole envelope. Retries 429, 5xx and connection errors."""
        headers = {"Authorization": f"Bearer {self.settings.api_token}", "Accept": "application/json"}
        delay = self._backoff
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                async with self._session.request(method, self.settings.api_url + path, params=params, json=body,
                                                 headers=headers, timeout=self._timeout) as resp:
                    text = await resp.text()
                    retry_after = resp.headers.get("Retry-After")
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError) as e:
                if last:
                    raise CloudflareError(method, path, None, detail=f"{type(e).__name__}: {e}") from None
                log.warning("cloudflare %s %s: %s, retrying in %.1fs", method, path, type(e).__name__, delay)
                await self._sleep(delay)
                delay *= 2
                continue
            try:
                envelope = json.loads(text) if text else {}
            except ValueError:
                envelope = {}
            if not isinstance(envelope, dict):
                envelope = {}
            errors = [e for e in envelope.get("errors") or [] if isinstance(e, dict)]
            if (status == 429 or status >= 500) and not last:
                wait = delay
                if retry_after and retry_after.strip().isdigit():
                    wait = float(retry_after.strip())
                wait = min(wait, self._max_delay)
                log.warning("cloudflare %s %s: HTTP %d, retrying in %.1fs", method, path, status, wait)
                await self._sleep(wait)
                delay *= 2
                continue
            if status >= 400 or envelope.get("success") is not True:
                detail = None if errors else (text[:200] if text else None)
                raise CloudflareError(method, path, status, errors, detail=detail)
            return envelope
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ configuration

    async def _get_config(self) -> dict[str, Any]:
        result = (await self._request("GET", self._config_path)).get("result") or {}
        if result.get("source") == "local":
            raise CloudflareError("GET", self._config_path, 200, detail=(
                "the tunnel is locally managed (config file); the bot needs a remotely managed tunnel "
                "(created with config_src: cloudflare, or migrated in the dashboard)"))
        config = result.get("config") or {}
        return dict(config)

    def _owner(self, rule: Mapping[str, Any]) -> str | None:
        """The workspace id a rule belongs to, or None for rules the bot does not own."""
        host = rule.get("hostname")
        if not isinstance(host, str) or host.startswith("*"):
            return None
        parsed = self.exposure.parse_host(host)
        return parsed[1] if parsed else None

    def _merge(self, ingress: list[dict[str, Any]], rules: list[dict[str, Any]],
               drop: Callable[[str], bool]) -> list[dict[str, Any]]:
        """Drop the rules whose owner ``drop`` selects and put ``rules`` where the first dropped
        one was, else before the first wildcard or catch-all rule (first match wins, so a
        ``*.<domain>`` rule must not shadow them); the catch-all stays last."""
        kept: list[dict[str, Any]] = []
        at: int | None = None
        for rule in ingress:
            owner = self._owner(rule)
            if owner is not None and drop(owner):
                at = len(kept) if at is None else at
            else:
                kept.append(rule)
        if at is None:
            at = next((i for i, r in enumerate(kept)
                       if _is_catch_all(r) or str(r.get("hostname", "")).startswith("*")), len(kept))
        out = kept[:at] + rules + kept[at:]
        if not out or not _is_catch_all(out[-1]):
            out.append(dict(CATCH_ALL))
        return out

    async def _rewrite(self, rules: list[dict[str, Any]], drop: Callable[[str], bool]) -> bool:
        """GET, merge, and PUT only if something changed. Call with the lock held."""
        config = await self._get_config()
        live = [r for r in config.get("ingress") or [] if isinstance(r, dict)]
        new = self._merge(live, rules, drop)
        if len(new) == len(live) and all(map(_subset, new, live)):
            return False
        await self._request("PUT", self._config_path, body={"config": {**config, "ingress": new}})
        return True

    # ------------------------------------------------------------------ DNS

    async def _records(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """All records matching ``params`` (every page)."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            envelope = await self._request("GET", self._records_path,
                                           params={**params, "page": str(page), "per_page": "100"})
            out += [r for r in envelope.get("result") or [] if isinstance(r, dict)]
            info = envelope.get("result_info") or {}
            if page >= int(info.get("total_pages") or 1):
                return out
            page += 1

    def _record_body(self, ws_id: str, host: str) -> dict[str, Any]:
        return {"type": "CNAME", "name": host, "content": self.settings.cname_target, "proxied": True, "ttl": 1,
                "comment": COMMENT_PREFIX + ws_id}

    async def _ensure_record(self, ws_id: str, host: str) -> bool:
        """Create (or correct) the proxied CNAME of ``host``; True when something was written."""
        want = self._record_body(ws_id, host)
        existing = [r for r in await self._records({"name": host}) if r.get("name") == host]
        if not existing:
            try:
                await self._request("POST", self._records_path, body=want)
                return True
            except CloudflareError as e:
                if not DNS_EXISTS_CODES.intersection(e.codes):
                    raise
                # created by a retried POST that did reach Cloudflare: check it below
                existing = [r for r in await self._records({"name": host}) if r.get("name") == host]
        foreign = [r for r in existing if not str(r.get("comment") or "").startswith(COMMENT_PREFIX)]
        if foreign:
            raise CloudflareError("POST", self._records_path, None, detail=(
                f"a {foreign[0].get('type')} record for {host} exists that devenv-bot did not create; "
                f"delete it or choose another DEVENV_PREVIEW_DOMAIN"))
        first, *extra = existing
        changed = False
        if not all(first.get(k) == v for k, v in want.items()):
            await self._request("PUT", f"{self._records_path}/{first['id']}", body=want)
            changed = True
        for rec in extra:  # duplicates of ours (cannot normally exist for a CNAME)
            changed |= await self._delete_record(rec)
        return changed

    async def _delete_record(self, record: Mapping[str, Any]) -> bool:
        try:
            await self._request("DELETE", f"{self._records_path}/{record['id']}")
            return True
        except CloudflareError as e:
            if e.status == 404:
                return False
            raise

    def _ours(self, record: Mapping[str, Any], ws_ids: Callable[[str], bool]) -> bool:
        """A record this bot made for a selected workspace: tagged, a host of our domain that
        parses back to the same id, pointing at our tunnel. Anything else is never deleted."""
        comment = str(record.get("comment") or "")
        if not comment.startswith(COMMENT_PREFIX):
            return False
        ws_id = comment[len(COMMENT_PREFIX):]
        parsed = self.exposure.parse_host(str(record.get("name") or ""))
        return (parsed is not None and parsed[1] == ws_id and ws_ids(ws_id)
                and record.get("content") == self.settings.cname_target)

    # ------------------------------------------------------------------ verbs

    def _validate(self, ws_id: str, routes: Mapping[str, str]) -> list[dict[str, Any]]:
        if not ws_id or not _WS_ID.match(ws_id):
            raise ExposureError(f"invalid workspace id {ws_id!r}")
        proxy = _normal_service(self.settings.auth_proxy)
        rules = []
        for host, service in sorted(routes.items()):
            if not isinstance(host, str) or not _HOST.match(host) or len(host) > 253:
                raise ExposureError(f"invalid hostname {host!r} (no ports, no wildcards, lower case)")
            parsed = self.exposure.parse_host(host)
            if parsed is None or parsed[1] != ws_id:
                raise ExposureError(f"{host} is not a preview host of workspace {ws_id} under "
                                    f"{self.exposure.domain}")
            try:
                _check_service("service", service)
            except ValueError as e:
                raise ExposureError(f"{host}: {e}") from None
            service = service.rstrip("/")
            is_ide = parsed[0] == CODE_PORT_NAME or _port_of(service) == CODE_PORT
            if is_ide and service != proxy:
                raise ExposureError(
                    f"refusing to publish the IDE ({host} → {service}) through the tunnel directly: OpenVSCode has "
                    f"no authentication of its own. Route it to the bot's auth proxy, DEVENV_CLOUDFLARE_AUTH_PROXY"
                    + ("" if proxy else " (unset)"))
            rules.append({"hostname": host, "service": service, "originRequest": dict(ORIGIN_REQUEST)})
        return rules

    async def check(self) -> None:
        """Read the tunnel configuration once (start-up check of the token and ids)."""
        await self._get_config()

    async def apply(self, ws_id: str, routes: Mapping[str, str]) -> None:
        """Make the tunnel route exactly ``routes`` (``{hostname: service URL}``) for ``ws_id``:
        rules and DNS records of hosts no longer wanted are removed. Idempotent."""
        rules = self._validate(ws_id, routes)
        async with self._lock:
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
        async with self._lock:
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
        async with self._lock:
            config = await self._get_config()
            for rule in config.get("ingress") or []:
                if isinstance(rule, dict) and (owner := self._owner(rule)) is not None and owner not in live:
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
