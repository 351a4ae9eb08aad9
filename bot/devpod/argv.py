"""Pure argv builders for the DevPod CLI: what to run, never running it.

Each function returns one argv list for :func:`bot.devpod.process.run` (never a shell
string) and validates what it puts there: workspace ids, option names, label keys, the
``--source``. The flags follow ``../shared/devpod/CONTRACT.md`` for the pinned release
:data:`DEVPOD_VERSION`: boolean flags always carry ``=`` (pflag reads ``--open-ide false`` as
"on" plus a stray positional; §1.1), every command but ``ssh`` logs JSON lines, and ``ssh``
keeps the remote stderr verbatim. The exit-status marker pair lives here too: DevPod's
``ssh`` exits 1 for any remote failure, so a command that needs its real status is wrapped
with :func:`wrap_with_exit_marker` and its stdout read back with :func:`parse_exit_marker`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from bot.devpod.ids import LABEL_KEY, check_id, label_value
from bot.settings.devpod import DevPodSettings

__all__ = [
    "DEVPOD_VERSION",
    "build_argv",
    "docker_provider_argv",
    "version_argv",
    "HARDENED_CONTEXT_OPTIONS",
    "context_harden_argv",
    "delete_argv",
    "ide_options",
    "list_argv",
    "parse_exit_marker",
    "provider_add_argv",
    "provider_list_argv",
    "provider_options",
    "provider_set_options_argv",
    "ssh_command_argv",
    "ssh_config_path",
    "status_argv",
    "stop_argv",
    "up_argv",
    "wrap_with_exit_marker",
]

#: The DevPod release the driver and the stand-in follow: the newest non-prerelease (upstream is
#: mostly unmaintained since April 2025). Where v0.7 alphas differ (``delete`` exits 0 on
#: failure, ``list`` sort order) the callers must not depend on the difference.
DEVPOD_VERSION = "v0.6.15-hotfix.2"


def ssh_config_path(settings: DevPodSettings, ws_id: str) -> Path:
    """The per-workspace ssh config file (keeps the bot's ``~/.ssh/config`` untouched; §7)."""
    return settings.ssh_dir / f"{ws_id}.config"


def _option_args(flag: str, options: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in options.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"invalid option name {key!r}")
        out += [flag, f"{key.upper()}={value}"]
    return out


#: Options only the Kubernetes provider defines; another provider warns about each (CONTRACT §9).
KUBERNETES_ONLY = frozenset({
    "KUBERNETES_NAMESPACE", "KUBERNETES_CONTEXT", "KUBERNETES_CONFIG", "DISK_SIZE", "STORAGE_CLASS", "RESOURCES",
    "NODE_SELECTOR", "SERVICE_ACCOUNT", "POD_TIMEOUT", "ARCHITECTURE", "LABELS",
})  # fmt: skip


def provider_options(settings: DevPodSettings) -> dict[str, str]:
    """Provider options (CONTRACT §5.1) derived from the settings; unset ones are omitted.

    They are all the Kubernetes provider's: another provider only warns about each (CONTRACT §9),
    so none are passed to it.
    """
    if settings.provider != "kubernetes":
        return {}
    pairs = {
        "KUBERNETES_NAMESPACE": settings.namespace,
        "KUBERNETES_CONTEXT": settings.kube_context,
        "KUBERNETES_CONFIG": str(settings.kubeconfig) if settings.kubeconfig else None,
        "DISK_SIZE": settings.disk_size,
        "STORAGE_CLASS": settings.storage_class,
        "RESOURCES": settings.resources,
        "NODE_SELECTOR": settings.node_selector,
        "SERVICE_ACCOUNT": settings.service_account,
        "POD_TIMEOUT": settings.pod_timeout,
        "ARCHITECTURE": settings.architecture,
    }
    return {k: v for k, v in pairs.items() if v}


def ide_options(settings: DevPodSettings, ide: str) -> dict[str, str]:
    """IDE options for ``up --ide-option`` (CONTRACT §1.1, §6): openvscode-server's download mirror.

    openvscode-server is downloaded by the workspace during ``up`` (from github.com unless
    ``DOWNLOAD_AMD64``/``DOWNLOAD_ARM64`` say otherwise), so air-gapped clusters need a mirror.
    Passed on each ``up`` rather than stored once with ``devpod ide use``: nothing in DevPod's
    ``config.yaml`` to keep in step (it is rewritten without a lock, §4.5, and ``ide use`` also
    changes the context's default IDE), a changed setting takes effect at the next ``up``, and
    DevPod keeps the options in the workspace, so a start through ``ssh`` installs from the mirror
    too. Only for ``openvscode``: DevPod refuses options an IDE does not define (``none`` has none).
    """
    if ide != "openvscode":
        return {}
    pairs = {"DOWNLOAD_AMD64": settings.ide_download_amd64, "DOWNLOAD_ARM64": settings.ide_download_arm64}
    return {k: v for k, v in pairs.items() if v}


def _labels_option(settings: DevPodSettings, ws_id: str, labels: Mapping[str, str] | None) -> str:
    merged: dict[str, str] = {f"{settings.label_prefix}/workspace": ws_id}
    for key, value in (labels or {}).items():
        full = key if "/" in key else f"{settings.label_prefix}/{key}"
        if not LABEL_KEY.match(full):
            raise ValueError(f"invalid Kubernetes label key {full!r}")
        merged[full] = label_value(str(value))
    return ",".join(f"{k}={v}" for k, v in merged.items())


def _common(settings: DevPodSettings) -> list[str]:
    return ["--context", settings.context, "--log-output", "json"]


def up_argv(
    settings: DevPodSettings,
    ws_id: str,
    source: str,
    *,
    ide: str = "openvscode",
    recreate: bool = False,
    reset: bool = False,
    devcontainer_path: str | None = None,
    labels: Mapping[str, str] | None = None,
    provider_options: Mapping[str, str] | None = None,
    prebuild_repositories: tuple[str, ...] = (),
    clone_strategy: str | None = None,
) -> list[str]:
    """argv for ``devpod up`` (CONTRACT "Recommended invocation").

    ``prebuild_repositories``: where DevPod looks for ``<repo>:<prebuild hash>`` before building
    (``--prebuild-repository``, repeatable; CONTRACT §10); ``clone_strategy``: ``--git-clone-strategy``.

    The positional argument is the id itself, so DevPod skips its ``ls-remote`` and image
    probes and a repeated ``up`` is idempotent. Boolean flags carry ``=``: pflag reads
    ``--open-ide false`` as "on" plus a stray positional (§1.1). ``--open-ide=false``
    matters: with openvscode, ``--open-ide=true`` blocks forever (§6).
    """
    check_id(ws_id)
    if not re.match(r"^(git|local|image|container):", source):
        raise ValueError(f"source must start with git:, local:, image: or container:, got {source!r}")
    argv = [
        settings.binary, "up", ws_id,
        "--id", ws_id,
        "--source", source,
        "--provider", settings.provider,
        "--ide", ide,
        "--open-ide=false",
        "--configure-ssh=true",
        "--ssh-config", str(ssh_config_path(settings, ws_id)),
        *_common(settings),
    ]  # fmt: skip
    if reset:
        argv.append("--reset=true")
    elif recreate:
        argv.append("--recreate=true")
    if devcontainer_path:
        argv += ["--devcontainer-path", devcontainer_path]
    argv += _prebuild_args(prebuild_repositories, clone_strategy)
    options = {**_provider_options_of(settings), **(provider_options or {})}
    if settings.provider != "kubernetes":
        options = {k: v for k, v in options.items() if k.upper() not in KUBERNETES_ONLY}
    if settings.provider == "kubernetes":  # LABELS is the Kubernetes provider's (CONTRACT §9)
        options["LABELS"] = _labels_option(settings, ws_id, labels)
    argv += _option_args("--provider-option", options)
    argv += _option_args("--ide-option", ide_options(settings, ide))
    return argv


_provider_options_of = provider_options  # ``up_argv`` shadows the name with a parameter

#: ``--git-clone-strategy`` values DevPod accepts (CONTRACT §10).
CLONE_STRATEGIES = frozenset({"full", "blobless", "treeless", "shallow"})
#: An image repository as Docker names it (host[:port]/path, lower case); never a flag.
_IMAGE_REPOSITORY = re.compile(r"[a-z0-9][a-z0-9.\-]*(:[0-9]+)?(/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+")


def _prebuild_args(repositories: tuple[str, ...], clone_strategy: str | None) -> list[str]:
    out: list[str] = []
    for repository in repositories:
        if not _IMAGE_REPOSITORY.fullmatch(repository):
            raise ValueError(f"invalid image repository {repository!r}")
        out += ["--prebuild-repository", repository]
    if clone_strategy is not None:
        if clone_strategy not in CLONE_STRATEGIES:
            raise ValueError(f"invalid clone strategy {clone_strategy!r}")
        out += ["--git-clone-strategy", clone_strategy]
    return out


def docker_provider_argv(settings: DevPodSettings, docker_host: str | None, *, exists: bool) -> list[str] | None:
    """argv that adds (or updates) the ``docker`` provider ``devpod build`` needs (DevPod finds a provider only
    once it was added to the context: "couldn't find provider with name docker"); None: nothing to do.

    Added with ``--use`` (DevPod's default): a provider added without it is "not initialized" and cannot
    build. That makes ``docker`` the context's default provider; every ``up`` names its provider, so the
    workspaces are not affected.
    """
    options = _option_args("-o", {"DOCKER_HOST": docker_host} if docker_host else {})
    if exists:
        return [settings.binary, "provider", "set-options", "docker", *_common(settings), *options] if options \
            else None
    return [settings.binary, "provider", "add", "docker", *_common(settings), *options]


def build_argv(settings: DevPodSettings, source: str, repository: str, *, clone_strategy: str | None = None,
               devcontainer_path: str | None = None, platform: str | None = None) -> list[str]:
    """argv for ``devpod build <source> --provider docker --repository <repo>`` (CONTRACT §10).

    Building works only with a Docker driver, so the provider is always ``docker`` (on the builder:
    ``DOCKER_HOST`` says which daemon), whatever the workspaces' provider. The image is pushed as
    ``<repository>:<prebuild hash>``; DevPod logs ``Successfully build and pushed image <ref>``.
    ``source`` is a bare ``<repo url>@<branch>`` or ``@sha256:<commit>`` (never a flag).
    """
    if source.startswith("-") or not re.match(r"^(https?|ssh)://|^git@", source):
        raise ValueError(f"build source must be a repository URL, got {source!r}")
    argv = [settings.binary, "build", source, "--provider", "docker", "--context", settings.context,
            "--log-output", "json", *_prebuild_args((), clone_strategy)]
    if not _IMAGE_REPOSITORY.fullmatch(repository):
        raise ValueError(f"invalid image repository {repository!r}")
    argv += ["--repository", repository]
    if devcontainer_path:
        argv += ["--devcontainer-path", devcontainer_path]
    if platform:
        if not re.fullmatch(r"linux/(amd64|arm64)", platform):
            raise ValueError(f"invalid platform {platform!r}")
        argv += ["--platform", platform]
    return argv


def stop_argv(settings: DevPodSettings, ws_id: str) -> list[str]:
    """argv for ``devpod stop`` (deletes the pod, keeps the PVC; §4.1)."""
    check_id(ws_id)
    return [settings.binary, "stop", ws_id, *_common(settings)]


def delete_argv(
    settings: DevPodSettings, ws_id: str, *, force: bool = False, ignore_not_found: bool = True
) -> list[str]:
    """argv for ``devpod delete`` (§4.2).

    ``--ignore-not-found`` makes a repeated delete succeed. ``--force`` drops local state
    even when the remote delete fails, which can orphan the PVC: use it only as a last
    resort. In v0.7 alphas the exit code is 0 even on failure, so confirm with ``list``.
    """
    check_id(ws_id)
    argv = [settings.binary, "delete", ws_id, *_common(settings)]
    if ignore_not_found:
        argv.append("--ignore-not-found=true")
    if force:
        argv.append("--force=true")
    return argv


def status_argv(settings: DevPodSettings, ws_id: str) -> list[str]:
    """argv for ``devpod status --output json`` (stdout JSON without newline; §2.2)."""
    check_id(ws_id)
    return [settings.binary, "status", ws_id, "--output", "json", *_common(settings)]


def list_argv(settings: DevPodSettings) -> list[str]:
    """argv for ``devpod list --output json`` (local state only; §2.1)."""
    return [settings.binary, "list", "--output", "json", *_common(settings)]


def version_argv(settings: DevPodSettings) -> list[str]:
    """argv for ``devpod version``: prints ``v<version>`` (the readiness check compares it with the pin)."""
    return [settings.binary, "version"]


def provider_list_argv(settings: DevPodSettings) -> list[str]:
    """argv for ``devpod provider list --output json`` (§4.4)."""
    return [settings.binary, "provider", "list", "--output", "json", *_common(settings)]


def provider_add_argv(settings: DevPodSettings, options: Mapping[str, str] | None = None) -> list[str]:
    """argv for ``devpod provider add`` (not idempotent: check ``provider list`` first)."""
    opts = provider_options(settings) if options is None else options
    return [settings.binary, "provider", "add", settings.provider, *_common(settings), *_option_args("-o", opts)]


def provider_set_options_argv(settings: DevPodSettings, options: Mapping[str, str] | None = None) -> list[str]:
    """argv for ``devpod provider set-options`` (fails without any ``-o``; §4.4)."""
    opts = provider_options(settings) if options is None else options
    if not opts:
        raise ValueError("provider set-options needs at least one option")
    return [
        settings.binary, "provider", "set-options", settings.provider, *_common(settings), *_option_args("-o", opts)
    ]  # fmt: skip


#: Context options that keep the bot's own credentials out of untrusted workspaces (§4.4).
HARDENED_CONTEXT_OPTIONS: dict[str, str] = {
    "SSH_ADD_PRIVATE_KEYS": "false",
    "SSH_AGENT_FORWARDING": "false",
    "SSH_INJECT_GIT_CREDENTIALS": "false",
    "SSH_INJECT_DOCKER_CREDENTIALS": "false",
    "GIT_SSH_SIGNATURE_FORWARDING": "false",
    "TELEMETRY": "false",
}


def context_harden_argv(settings: DevPodSettings) -> list[str]:
    """argv for ``devpod context set-options`` with :data:`HARDENED_CONTEXT_OPTIONS`.

    ``context set-options`` takes the context as its positional argument and ignores
    ``--context``; with no argument it uses the default context.
    """
    argv = [settings.binary, "context", "set-options"]
    if settings.context != "default":
        argv.append(settings.context)
    return argv + ["--log-output", "json", *_option_args("-o", HARDENED_CONTEXT_OPTIONS)]


def ssh_command_argv(
    settings: DevPodSettings, ws_id: str, command: str, *, user: str | None = None, workdir: str | None = None
) -> list[str]:
    """argv for ``devpod ssh <id> --command CMD`` (§3).

    ``--log-output raw`` keeps remote stderr verbatim; never ``--silent`` (it drops remote
    stderr). The CLI exits 1 on any remote failure, whatever the remote code: wrap the
    command with :func:`wrap_with_exit_marker` when the code matters.
    """
    check_id(ws_id)
    argv = [
        settings.binary, "ssh", ws_id, "--command", command,
        "--agent-forwarding=false", "--start-services=false",
        "--context", settings.context, "--log-output", "raw",
    ]  # fmt: skip
    if user:
        argv += ["--user", user]
    if workdir:
        argv += ["--workdir", workdir]
    return argv


_EXIT_MARKER = "__DEVENV_RC="


def wrap_with_exit_marker(command: str) -> str:
    """Append a line that prints the command's exit status on stdout."""
    return f'{command}\necho "{_EXIT_MARKER}$?"'


def parse_exit_marker(stdout: str) -> tuple[int | None, str]:
    """Split the marker from :func:`wrap_with_exit_marker` off ``stdout``: (code, rest)."""
    lines = stdout.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        m = re.fullmatch(re.escape(_EXIT_MARKER) + r"(\d+)\r?", lines[i])
        if m:
            return int(m.group(1)), "\n".join(lines[:i] + lines[i + 1 :])
    return None, stdout
