"""Browser links of environments: exposing a running workspace, removing them, sweeping orphans.

The cluster side lives in :mod:`bot.cluster.exposure` (a Service, and Ingresses or routes per port)
and :mod:`bot.cluster.cloudflare` (the Cloudflare Tunnel API mode: the tunnel's rules and DNS
records route the preview hosts; ``exposure`` then creates the Service only).  This module is what
the environment service asks of them, and it never fails an operation: an environment whose links
could not be made still works over SSH, so a failure becomes a note in the sticky comment (in
words that name no account, namespace or service account) and a warning in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from bot.cluster.cloudflare_api import CloudflareError
from bot.cluster.tunnel_rules import tunnel_routes
from bot.cluster.workspace import ExposureError, exposed_workspace
from bot.devpod import DevPodSettings
from bot.environments import report
from bot.environments.journal import EnvRecord

log = logging.getLogger(__name__)

#: Seconds the start-up sweep of orphaned browser links may take before it is left for the next start.
ORPHAN_SWEEP_TIMEOUT = 60.0


def exposure_reason(exc: BaseException, *, detail: bool = True) -> str:
    """A short, human reason for a failed Kubernetes call (no tracebacks). ``detail=False`` leaves out
    the API server's message (it names service accounts and namespaces): for the public PR comment."""
    if isinstance(exc, CloudflareError):
        return str(exc) if detail else "the Cloudflare API answered: " + "; ".join(exc.messages)
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        message = ""
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(getattr(exc, "body", None) or "{}").get("message") or "")
        reason = getattr(exc, "reason", None) or ""
        text = f"the Kubernetes API answered {status} {reason}".rstrip()
        return f"{text} ({message[:200]})" if message and detail else text
    if isinstance(exc, asyncio.TimeoutError):
        return "the Kubernetes API did not answer in time"
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def public_reason(exc: BaseException) -> str:
    """The reason shown in the public comment: the status, or the bot's own manifest error, never the
    API's text (Cloudflare's error messages are generic and name no account or zone, so they are shown)."""
    if isinstance(exc, ExposureError):
        return str(exc)
    if getattr(exc, "status", None) or isinstance(exc, (asyncio.TimeoutError, CloudflareError)):
        return exposure_reason(exc, detail=False)
    return f"{exc.__class__.__name__} (see the bot's log)"


class Links:
    """The browser links of every environment; does nothing while links are not configured."""

    def __init__(self, dp: DevPodSettings, where: report.Where, *, exposure: Any = None, tunnel: Any = None) -> None:
        self.dp = dp
        self.where = where
        self.exposure = exposure  # bot.cluster.exposure.Exposure when DEVENV_PREVIEW_DOMAIN is set
        #: bot.cluster.cloudflare.CloudflareTunnelRoutes in the Cloudflare Tunnel API mode (docs/cloudflare.md).
        self.tunnel = tunnel

    async def remove_orphans(self, live: list[str]) -> None:
        """Delete the cluster objects of workspaces the bot no longer knows (deleted while it was down).

        Runs before any webhook is handled, so a workspace created meanwhile cannot be mistaken
        for an orphan.  A failure only means the orphans stay until the next start."""
        if self.exposure is None:
            return
        for what, owner in (("browser links", self.exposure), ("tunnel routes", self.tunnel)):
            if owner is None:
                continue
            try:
                gone = await asyncio.wait_for(owner.remove_orphans(live), ORPHAN_SWEEP_TIMEOUT)
            except Exception as exc:
                log.warning("could not remove the %s of deleted environments: %s", what, exposure_reason(exc))
            else:
                if gone:
                    log.info("removed the %s of %d deleted environment(s): %s", what, len(gone), sorted(gone))

    def _servable(self, record: EnvRecord) -> tuple[dict[str, int], list[str]]:
        """The ports the router can serve, and why the others cannot (one must not cost the rest their links)."""
        ports: dict[str, int] = {}
        refused: list[str] = []
        for p in record.ports:
            try:
                exposed_workspace(self.exposure.settings, record.ws_id, None, {**ports, p["name"]: p["port"]})
            except ExposureError as exc:
                refused.append(str(exc))
            else:
                ports[p["name"]] = p["port"]
        return ports, refused

    async def expose(self, record: EnvRecord) -> None:
        """Create or update the browser links of a running environment; a failure is told, not fatal."""
        if self.exposure is None:
            return
        ports, refused = self._servable(record)
        folder = self.workspace_folder(record.ws_id)
        try:
            links = await self.exposure.apply(
                record.ws_id, {"repo": f"{record.owner}.{record.repo}", "pr": str(record.number)},
                ports=ports, folder=folder)
            if self.tunnel is not None:  # Cloudflare Tunnel API mode: the Service exists, now route to it
                ws = exposed_workspace(self.exposure.settings, record.ws_id, None, ports, folder=folder)
                await self.tunnel.apply(record.ws_id, tunnel_routes(self.exposure.settings, self.tunnel.settings, ws))
        except Exception as exc:
            log.warning("browser links of %s could not be created: %s", record.ws_id, exposure_reason(exc))
            record.links = []
            record.note = report.links_failed_note(public_reason(exc), self.where)
            return
        declared = {p["name"]: p.get("permission") for p in record.ports}
        record.links = [{"name": link.name, "url": link.url,
                         "permission": declared.get(link.name) or link.permission} for link in links]
        if refused:
            log.warning("ports of %s got no link: %s", record.ws_id, "; ".join(refused))
            record.note = report.links_refused_note(refused)

    async def unexpose(self, record: EnvRecord) -> None:
        record.links = []
        if self.exposure is None:
            return
        if self.tunnel is not None:  # the routes first: no host may point at a Service that is gone
            try:
                await self.tunnel.remove(record.ws_id)
            except Exception as exc:  # the next start sweeps them as orphans
                log.warning("tunnel routes of %s could not be removed: %s", record.ws_id, exposure_reason(exc))
        try:
            await self.exposure.remove(record.ws_id)
        except Exception as exc:  # the next start sweeps them as orphans
            log.warning("browser links of %s could not be removed: %s", record.ws_id, exposure_reason(exc))

    def workspace_folder(self, ws_id: str) -> str | None:
        """Where DevPod put the sources in the container (``workspace_result.json``), if it says."""
        path = self.dp.home / "contexts" / self.dp.context / "workspaces" / ws_id / "workspace_result.json"
        try:
            folder = json.loads(path.read_text())["SubstitutionContext"]["ContainerWorkspaceFolder"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return folder if isinstance(folder, str) and folder.startswith("/") else None
