"""How to run DevPod: binary, state directory, provider options and timeouts.

:class:`DevPodSettings` is what :mod:`bot.devpod` builds argv lists and child
environments from; it is read from the table here (:func:`read_devpod`) and never looks at
the environment itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from bot.settings import variables as var
from bot.settings.reader import Reader


@dataclasses.dataclass(frozen=True, kw_only=True)
class DevPodSettings:
    """How to run DevPod: binary, state directory, provider options and timeouts (seconds)."""

    home: Path
    binary: str = var.DEVPOD_BIN.preset()
    provider: str = var.PROVIDER.preset()
    context: str = var.DEVPOD_CONTEXT.preset()
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
    label_prefix: str = var.LABEL_PREFIX.preset()
    #: One ssh config file per workspace lives here; default ``<home>/ssh``.
    ssh_config_dir: Path | None = None
    #: HOME given to DevPod. Deliberately not the bot's own HOME, so the bot's
    #: ``~/.docker/config.json``, ``~/.ssh`` and ``~/.gitconfig`` are never picked up and
    #: copied into pull secrets or workspaces. Default ``<home>/user-home``.
    user_home: Path | None = None
    #: PATH for the child (DevPod runs ``git`` on the bot host; CONTRACT §1.2).
    path: str = var.PATH.preset()
    up_timeout: float = var.UP_TIMEOUT.preset()
    #: ``stop`` waits up to 2 min for the pod to go (CONTRACT §4.1).
    stop_timeout: float = var.STOP_TIMEOUT.preset()
    delete_timeout: float = var.DELETE_TIMEOUT.preset()
    status_timeout: float = var.STATUS_TIMEOUT.preset()
    ssh_timeout: float = var.SSH_TIMEOUT.preset()
    provider_timeout: float = var.PROVIDER_TIMEOUT.preset()
    #: Seconds between SIGTERM and SIGKILL.
    kill_grace: float = var.KILL_GRACE.preset()
    #: Where openvscode-server is downloaded from by the workspace, per architecture (the IDE options
    #: ``DOWNLOAD_AMD64``/``DOWNLOAD_ARM64``, CONTRACT §6); None: DevPod's default on github.com.
    ide_download_amd64: str | None = None
    ide_download_arm64: str | None = None
    #: The 0700 directory of the git askpass socket and helper; default ``<home>/askpass``.
    askpass_dir: Path | None = None

    @property
    def ssh_dir(self) -> Path:
        return self.ssh_config_dir if self.ssh_config_dir is not None else self.home / "ssh"

    @property
    def askpass_directory(self) -> Path:
        return self.askpass_dir if self.askpass_dir is not None else self.home / "askpass"

    @property
    def child_home(self) -> Path:
        return self.user_home if self.user_home is not None else self.home / "user-home"

    @classmethod
    def from_env(cls, env: Mapping[str, str], state_dir: Path) -> DevPodSettings:
        """Read the DevPod variables of the table; ValueError lists every bad one."""
        r = Reader(env)
        settings = read_devpod(r, state_dir)
        r.check()
        return settings


def read_devpod(r: Reader, state_dir: Path) -> DevPodSettings:
    """DevPod's section; ``DEVPOD_HOME`` defaults to ``<state_dir>/devpod``, the askpass socket lives in
    ``<state_dir>/askpass``."""
    return DevPodSettings(
        home=r.get(var.DEVPOD_HOME) or Path(state_dir) / "devpod",
        binary=r.value(var.DEVPOD_BIN),
        provider=r.value(var.PROVIDER),
        context=r.value(var.DEVPOD_CONTEXT),
        namespace=r.get(var.NAMESPACE),
        kube_context=r.get(var.KUBE_CONTEXT),
        kubeconfig=r.get(var.KUBECONFIG),
        disk_size=r.get(var.DISK_SIZE),
        storage_class=r.get(var.STORAGE_CLASS),
        resources=r.get(var.RESOURCES),
        node_selector=r.get(var.NODE_SELECTOR),
        service_account=r.get(var.SERVICE_ACCOUNT),
        pod_timeout=r.get(var.POD_TIMEOUT),
        architecture=r.get(var.ARCHITECTURE),
        label_prefix=r.value(var.LABEL_PREFIX),
        ssh_config_dir=r.get(var.SSH_CONFIG_DIR),
        user_home=r.get(var.DEVPOD_USER_HOME),
        path=r.value(var.PATH),
        up_timeout=r.value(var.UP_TIMEOUT),
        stop_timeout=r.value(var.STOP_TIMEOUT),
        delete_timeout=r.value(var.DELETE_TIMEOUT),
        status_timeout=r.value(var.STATUS_TIMEOUT),
        ssh_timeout=r.value(var.SSH_TIMEOUT),
        provider_timeout=r.value(var.PROVIDER_TIMEOUT),
        kill_grace=r.value(var.KILL_GRACE),
        ide_download_amd64=r.get(var.IDE_DOWNLOAD_AMD64),
        ide_download_arm64=r.get(var.IDE_DOWNLOAD_ARM64),
        askpass_dir=Path(state_dir) / "askpass",
    )
