"""How the bot runs DevPod: :class:`DevPodSettings`, read once from the environment at start-up.

The rest of the DevPod boundary lives next to this module (see :mod:`bot.devpod`): pure
argv builders (``argv``), parsers (``parse``), names (``ids``), masking (``masking``), git
credentials (``credentials``) and the one subprocess runner (``process``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DevPodSettings"]

_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


# --------------------------------------------------------------------------- settings


def _seconds(name: str, raw: str) -> float:
    """Parse ``90``, ``90s``, ``30m`` or ``1h`` into seconds; ValueError names ``name``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", raw)
    if not m:
        raise ValueError(f"{name} must be a number of seconds or a duration like 30m, got {raw!r}")
    value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_RESOURCE_ENTRY = re.compile(r"^(requests|limits)\.[A-Za-z0-9./_-]+=[0-9]+(\.[0-9]+)?[A-Za-z]*$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DevPodSettings:
    """How to run DevPod: binary, state directory, provider options and timeouts (seconds)."""

    home: Path
    binary: str = "devpod"
    provider: str = "kubernetes"
    context: str = "default"
    namespace: str | None = None
    kube_context: str | None = None
    kubeconfig: Path | None = None
    disk_size: str | None = None
    storage_class: str | None = None
    #: ``requests.cpu=500m,limits.memory=4Gi`` (CONTRACT §5.1 ``RESOURCES``).
    resources: str | None = None
    #: ``k=v,k2=v2`` (CONTRACT §5.1 ``NODE_SELECTOR``).
    node_selector: str | None = None
    service_account: str | None = None
    #: Go duration for ``POD_TIMEOUT`` (DevPod's default is 10m).
    pod_timeout: str | None = None
    #: ``amd64``/``arm64``; set it when the bot may not list nodes (CONTRACT §5.0).
    architecture: str | None = None
    label_prefix: str = "devenv-bot.dev"
    #: One ssh config file per workspace lives here; default ``<home>/ssh``.
    ssh_config_dir: Path | None = None
    #: HOME given to DevPod. Deliberately not the bot's own HOME, so the bot's
    #: ``~/.docker/config.json``, ``~/.ssh`` and ``~/.gitconfig`` are never picked up and
    #: copied into pull secrets or workspaces. Default ``<home>/user-home``.
    user_home: Path | None = None
    #: PATH for the child (DevPod runs ``git`` on the bot host; CONTRACT §1.2).
    path: str = _DEFAULT_PATH
    up_timeout: float = 30 * 60
    #: ``stop`` waits up to 2 min for the pod to go (CONTRACT §4.1).
    stop_timeout: float = 5 * 60
    delete_timeout: float = 5 * 60
    status_timeout: float = 60
    ssh_timeout: float = 10 * 60
    provider_timeout: float = 2 * 60
    #: Seconds between SIGTERM and SIGKILL.
    kill_grace: float = 10.0

    @property
    def ssh_dir(self) -> Path:
        return self.ssh_config_dir if self.ssh_config_dir is not None else self.home / "ssh"

    @property
    def child_home(self) -> Path:
        return self.user_home if self.user_home is not None else self.home / "user-home"

    @classmethod
    def from_env(cls, env: Mapping[str, str], state_dir: Path) -> DevPodSettings:
        """Read settings from environment variables; ValueError names the bad variable.

        ``DEVPOD_BIN``, ``DEVPOD_HOME`` (default ``<state_dir>/devpod``), ``DEVENV_PROVIDER``,
        ``DEVENV_DEVPOD_CONTEXT``, ``DEVENV_NAMESPACE``, ``DEVENV_KUBE_CONTEXT``,
        ``KUBECONFIG``, ``DEVENV_DISK_SIZE``, ``DEVENV_STORAGE_CLASS``, ``DEVENV_RESOURCES``,
        ``DEVENV_NODE_SELECTOR``, ``DEVENV_SERVICE_ACCOUNT``, ``DEVENV_POD_TIMEOUT``,
        ``DEVENV_ARCHITECTURE``, ``DEVENV_LABEL_PREFIX``, ``DEVENV_SSH_CONFIG_DIR``,
        ``DEVENV_DEVPOD_USER_HOME``, ``PATH``, ``DEVENV_{UP,STOP,DELETE,STATUS,SSH,PROVIDER}_TIMEOUT``
        and ``DEVENV_KILL_GRACE`` (seconds or ``30m``/``1h``).
        """

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        kw: dict[str, object] = {}
        kw["binary"] = get("DEVPOD_BIN") or "devpod"
        home = get("DEVPOD_HOME")
        kw["home"] = Path(home) if home else Path(state_dir) / "devpod"
        if not Path(kw["home"]).is_absolute():  # type: ignore[arg-type]
            raise ValueError(f"DEVPOD_HOME must be an absolute path, got {home!r}")

        provider = get("DEVENV_PROVIDER") or "kubernetes"
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", provider):
            raise ValueError(f"DEVENV_PROVIDER must be a provider name like 'kubernetes', got {provider!r}")
        kw["provider"] = provider

        context = get("DEVENV_DEVPOD_CONTEXT") or "default"
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", context):
            raise ValueError(f"DEVENV_DEVPOD_CONTEXT must be lower-case letters, digits or '-', got {context!r}")
        kw["context"] = context

        if (ns := get("DEVENV_NAMESPACE")) is not None:
            if not _DNS_LABEL.match(ns):
                raise ValueError(f"DEVENV_NAMESPACE must be a Kubernetes namespace name, got {ns!r}")
            kw["namespace"] = ns
        kw["kube_context"] = get("DEVENV_KUBE_CONTEXT")
        if (kc := get("KUBECONFIG")) is not None:
            if os.pathsep in kc:
                raise ValueError("KUBECONFIG must name a single file for DevPod (no path list)")
            kw["kubeconfig"] = Path(kc)
        if (disk := get("DEVENV_DISK_SIZE")) is not None:
            if not _QUANTITY.match(disk):
                raise ValueError(f"DEVENV_DISK_SIZE must be a Kubernetes quantity like 20Gi, got {disk!r}")
            kw["disk_size"] = disk
        if (sc := get("DEVENV_STORAGE_CLASS")) is not None:
            if not _DNS_SUBDOMAIN.match(sc):
                raise ValueError(f"DEVENV_STORAGE_CLASS must be a storage class name, got {sc!r}")
            kw["storage_class"] = sc
        if (res := get("DEVENV_RESOURCES")) is not None:
            bad = [e for e in res.split(",") if not _RESOURCE_ENTRY.match(e.strip())]
            if bad:
                raise ValueError(
                    "DEVENV_RESOURCES must look like 'requests.cpu=500m,limits.memory=4Gi'; "
                    f"bad entries: {', '.join(bad)}"
                )
            kw["resources"] = ",".join(e.strip() for e in res.split(","))
        if (sel := get("DEVENV_NODE_SELECTOR")) is not None:
            pairs = [p.strip() for p in sel.split(",")]
            for p in pairs:
                k, eq, v = p.partition("=")
                if not eq or not _LABEL_KEY.match(k) or not _LABEL_VALUE.match(v):
                    raise ValueError(f"DEVENV_NODE_SELECTOR must look like 'k=v,k2=v2'; bad entry {p!r}")
            kw["node_selector"] = ",".join(pairs)
        if (sa := get("DEVENV_SERVICE_ACCOUNT")) is not None:
            if not _DNS_SUBDOMAIN.match(sa):
                raise ValueError(f"DEVENV_SERVICE_ACCOUNT must be a service account name, got {sa!r}")
            kw["service_account"] = sa
        if (pt := get("DEVENV_POD_TIMEOUT")) is not None:
            if not _GO_DURATION.match(pt):
                raise ValueError(f"DEVENV_POD_TIMEOUT must be a Go duration like 10m, got {pt!r}")
            kw["pod_timeout"] = pt
        if (arch := get("DEVENV_ARCHITECTURE")) is not None:
            if arch not in ("amd64", "arm64"):
                raise ValueError(f"DEVENV_ARCHITECTURE must be amd64 or arm64, got {arch!r}")
            kw["architecture"] = arch
        if (prefix := get("DEVENV_LABEL_PREFIX")) is not None:
            if not _DNS_SUBDOMAIN.match(prefix) or len(prefix) > 253:
                raise ValueError(f"DEVENV_LABEL_PREFIX must be a DNS subdomain like 'devenv-bot.dev', got {prefix!r}")
            kw["label_prefix"] = prefix
        if (sd := get("DEVENV_SSH_CONFIG_DIR")) is not None:
            kw["ssh_config_dir"] = Path(sd)
        if (uh := get("DEVENV_DEVPOD_USER_HOME")) is not None:
            kw["user_home"] = Path(uh)
        kw["path"] = get("PATH") or _DEFAULT_PATH
        for field, var in [
            ("up_timeout", "DEVENV_UP_TIMEOUT"),
            ("stop_timeout", "DEVENV_STOP_TIMEOUT"),
            ("delete_timeout", "DEVENV_DELETE_TIMEOUT"),
            ("status_timeout", "DEVENV_STATUS_TIMEOUT"),
            ("ssh_timeout", "DEVENV_SSH_TIMEOUT"),
            ("provider_timeout", "DEVENV_PROVIDER_TIMEOUT"),
            ("kill_grace", "DEVENV_KILL_GRACE"),
        ]:
            if (raw := get(var)) is not None:
                kw[field] = _seconds(var, raw)
        return cls(**kw)  # type: ignore[arg-type]
