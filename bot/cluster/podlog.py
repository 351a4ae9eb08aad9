"""The workspace container's log, read from Kubernetes for ``/devenv logs``.

Design.  DevPod names the pod after a random UID (``devpod-<uid>``, CONTRACT §5), so the bot
finds it by the label it passes DevPod (``LABELS``: ``<prefix>/workspace=<id>``, which the
driver puts on the pod) and reads the ``devpod`` container's log through the official client
(:meth:`bot.cluster.kube.KubeApi.pod_log`; RBAC: ``pods`` list and ``pods/log`` get in the
workspaces' namespace).  Every failure becomes a :class:`PodLog` that says why there is no log,
never an exception: the reply tells the reader instead of failing.  The text is returned as read;
the caller masks it.
"""

from __future__ import annotations

import dataclasses
import logging

from bot.cluster.kube import POD_KIND, KubeApi

log = logging.getLogger(__name__)

__all__ = ["CONTAINER", "PodLog", "workspace_log"]

#: The workspace's own container in DevPod's pod (CONTRACT §5: the template's container ``devpod``).
CONTAINER = "devpod"
#: The most bytes asked of the API server; the reply is cut to its own bound afterwards.
LIMIT_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class PodLog:
    """The log's text, or (``text`` None) why there is none, in words for the reply."""

    pod: str | None
    text: str | None
    why: str | None = None


async def workspace_log(kube: KubeApi | None, label_prefix: str, ws_id: str, lines: int) -> PodLog:
    """The last ``lines`` lines of ``ws_id``'s workspace container log."""
    if kube is None:
        return PodLog(None, None, "the bot has no access to the cluster (preview links are off)")
    try:
        pods = await kube.list(POD_KIND, f"{label_prefix}/workspace={ws_id}")
    except Exception as exc:  # the API's reason is shown without its text, which names accounts
        log.warning("listing the pods of %s failed: %s", ws_id, exc)
        return PodLog(None, None, f"the cluster did not list the pods ({_reason(exc)})")
    if not pods:
        return PodLog(None, None, "no workspace pod is running (the environment is stopped, deleted or not built)")
    name = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")[-1]["metadata"]["name"]
    try:
        text = await kube.pod_log(name, container=CONTAINER, tail_lines=lines, limit_bytes=LIMIT_BYTES)
    except Exception as exc:
        log.warning("reading the log of pod %s failed: %s", name, exc)
        return PodLog(name, None, f"the cluster did not give the log ({_reason(exc)})")
    return PodLog(name, text)


def _reason(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"HTTP {status}" if status else exc.__class__.__name__
