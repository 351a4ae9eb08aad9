"""The DevPod driver: pure argv builders and output parsers around one async runner.

Design. Everything that decides *what* to run or *what the output means* is a pure
function of its arguments (``up_argv``, ``parse_status``, ``meaningful_errors`` ...), so it
is tested with tables and literals taken from ``../shared/devpod/CONTRACT.md``. The only
I/O is :func:`run`, which executes one argv list (never a shell string) with:

* a minimal environment built from scratch (``DEVPOD_FLAGS_UP`` and friends from the bot's
  own environment would silently change ``up``; CONTRACT §1.1);
* stdin from ``/dev/null`` (DevPod only prompts when it has a TTY; CONTRACT §1.4);
* stdout and stderr read concurrently, line by line, with bounded line length, every line
  masked by a :class:`Masker` before anything stores or logs it;
* a wall-clock timeout: SIGTERM to the child's process group, SIGKILL after a grace
  period. Cancelling the awaiting task does the same, so a ``delete`` can cancel an
  in-flight ``up`` (the per-workspace flock is released when the process dies).

Pinned DevPod version: ``v0.6.15-hotfix.2`` (the newest non-prerelease; upstream is
mostly unmaintained since April 2025). Where v0.7 alphas differ (``delete`` exits 0 on
failure, ``list`` sort order) the callers must not depend on the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import hashlib
import inspect
import json
import os
import re
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path

from bot.settings.devpod import DevPodSettings

__all__ = [
    "DEVPOD_VERSION",
    "GIT_TOKEN_ENV",
    "DevPodSettings",
    "LogLine",
    "Masker",
    "RunResult",
    "WorkspaceState",
    "WorkspaceStatus",
    "build_env",
    "context_harden_argv",
    "delete_argv",
    "git_credential_env",
    "label_value",
    "list_argv",
    "meaningful_errors",
    "parse_exit_marker",
    "parse_list",
    "parse_log_line",
    "parse_provider_list",
    "parse_status",
    "phase_of",
    "pr_source",
    "prepare_dirs",
    "provider_add_argv",
    "provider_list_argv",
    "provider_options",
    "provider_set_options_argv",
    "run",
    "ssh_command_argv",
    "ssh_config_path",
    "status_argv",
    "stop_argv",
    "up_argv",
    "workspace_id",
    "workspace_missing",
    "wrap_with_exit_marker",
    "write_askpass",
]

#: The DevPod release the driver and the stand-in follow.
DEVPOD_VERSION = "v0.6.15-hotfix.2"

#: Name of the env var that carries the installation token to the askpass script.
GIT_TOKEN_ENV = "DEVENV_GIT_TOKEN"

#: CONTRACT §1.5: the characters and length ``--id`` accepts.
ID_MAX_LEN = 48
_ID_INVALID = re.compile(r"[^a-z0-9\-]+")

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


def prepare_dirs(settings: DevPodSettings) -> None:
    """Create DEVPOD_HOME, the ssh config directory and the child HOME (mode 0700)."""
    for d in (settings.home, settings.ssh_dir, settings.child_home):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)


# --------------------------------------------------------------------------- naming


def _sanitise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def workspace_id(owner: str, repo: str, number: int) -> str:
    """``<sanitised repo>-pr<N>-<6 hex of sha256("owner/repo")>``, at most 48 characters.

    GitHub names are case-insensitive, so the hash is of the lower-cased full name. The
    hash keeps ids unique when the repo part is truncated or sanitised to the same text.
    """
    if number < 1:
        raise ValueError(f"pull request number must be positive, got {number}")
    digest = hashlib.sha256(f"{owner}/{repo}".lower().encode()).hexdigest()[:6]
    suffix = f"pr{number}-{digest}"
    if len(suffix) > ID_MAX_LEN:
        raise ValueError(f"pull request number {number} is too large for a workspace id")
    room = ID_MAX_LEN - len(suffix) - 1
    head = _sanitise(repo)[:room].strip("-") if room > 0 else ""
    return f"{head}-{suffix}" if head else suffix


_GH_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def pr_source(github_web_url: str, owner: str, repo: str, number: int) -> str:
    """The ``--source`` for a PR: ``git:https://HOST/owner/repo@pull/N/head`` (CONTRACT §1.2)."""
    base = github_web_url.rstrip("/")
    if not re.match(r"^https?://[^/@\s]+(/[^@\s]*)?$", base):
        raise ValueError(f"not a GitHub web URL: {github_web_url!r}")
    for part in (owner, repo):
        if not _GH_NAME.match(part) or part in (".", ".."):
            raise ValueError(f"not a GitHub owner or repository name: {part!r}")
    if number < 1:
        raise ValueError(f"pull request number must be positive, got {number}")
    return f"git:{base}/{owner}/{repo}@pull/{number}/head"


def label_value(text: str) -> str:
    """Make ``text`` a valid Kubernetes label value: ``[A-Za-z0-9._-]``, ≤ 63, alnum at both ends."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def ssh_config_path(settings: DevPodSettings, ws_id: str) -> Path:
    """The per-workspace ssh config file (keeps the bot's ``~/.ssh/config`` untouched; §7)."""
    return settings.ssh_dir / f"{ws_id}.config"


# --------------------------------------------------------------------------- argv builders


def _check_id(ws_id: str) -> None:
    if not ws_id or _ID_INVALID.search(ws_id) or len(ws_id) > ID_MAX_LEN:
        raise ValueError(f"invalid workspace id {ws_id!r}")


def _option_args(flag: str, options: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in options.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"invalid option name {key!r}")
        out += [flag, f"{key.upper()}={value}"]
    return out


def provider_options(settings: DevPodSettings) -> dict[str, str]:
    """Provider options (CONTRACT §5.1) derived from the settings; unset ones are omitted."""
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


def _labels_option(settings: DevPodSettings, ws_id: str, labels: Mapping[str, str] | None) -> str:
    merged: dict[str, str] = {f"{settings.label_prefix}/workspace": ws_id}
    for key, value in (labels or {}).items():
        full = key if "/" in key else f"{settings.label_prefix}/{key}"
        if not _LABEL_KEY.match(full):
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
) -> list[str]:
    """argv for ``devpod up`` (CONTRACT "Recommended invocation").

    The positional argument is the id itself, so DevPod skips its ``ls-remote`` and image
    probes and a repeated ``up`` is idempotent. Boolean flags carry ``=``: pflag reads
    ``--open-ide false`` as "on" plus a stray positional (§1.1). ``--open-ide=false``
    matters: with openvscode, ``--open-ide=true`` blocks forever (§6).
    """
    _check_id(ws_id)
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
    options = {**_provider_options_of(settings), **(provider_options or {})}
    options["LABELS"] = _labels_option(settings, ws_id, labels)
    argv += _option_args("--provider-option", options)
    return argv


_provider_options_of = provider_options  # ``up_argv`` shadows the name with a parameter


def stop_argv(settings: DevPodSettings, ws_id: str) -> list[str]:
    """argv for ``devpod stop`` (deletes the pod, keeps the PVC; §4.1)."""
    _check_id(ws_id)
    return [settings.binary, "stop", ws_id, *_common(settings)]


def delete_argv(
    settings: DevPodSettings, ws_id: str, *, force: bool = False, ignore_not_found: bool = True
) -> list[str]:
    """argv for ``devpod delete`` (§4.2).

    ``--ignore-not-found`` makes a repeated delete succeed. ``--force`` drops local state
    even when the remote delete fails, which can orphan the PVC: use it only as a last
    resort. In v0.7 alphas the exit code is 0 even on failure, so confirm with ``list``.
    """
    _check_id(ws_id)
    argv = [settings.binary, "delete", ws_id, *_common(settings)]
    if ignore_not_found:
        argv.append("--ignore-not-found=true")
    if force:
        argv.append("--force=true")
    return argv


def status_argv(settings: DevPodSettings, ws_id: str) -> list[str]:
    """argv for ``devpod status --output json`` (stdout JSON without newline; §2.2)."""
    _check_id(ws_id)
    return [settings.binary, "status", ws_id, "--output", "json", *_common(settings)]


def list_argv(settings: DevPodSettings) -> list[str]:
    """argv for ``devpod list --output json`` (local state only; §2.1)."""
    return [settings.binary, "list", "--output", "json", *_common(settings)]


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
    _check_id(ws_id)
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


# --------------------------------------------------------------------------- parsers

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PLAIN = re.compile(r"^(\d\d:\d\d:\d\d) (debug|info|warn|error|fatal|done) (.*)$", re.S)
_LEVELS = {"warn": "warning", "done": "info"}


@dataclasses.dataclass(frozen=True)
class LogLine:
    """One line of DevPod output; ``level`` is None for lines that are not log records."""

    message: str
    level: str | None = None
    time: str | None = None
    stream: str = "stdout"
    #: The line as read (masked, ANSI codes stripped).
    text: str = ""
    #: A JSON object that is not a log record, e.g. ``{"url": ..., "done": "true"}``.
    data: dict | None = None


def parse_log_line(line: str, stream: str = "stdout") -> LogLine | None:
    """Parse one ``--log-output json`` line; tolerate plain (ANSI) and raw lines. None if blank."""
    text = _ANSI.sub("", line.rstrip("\r\n"))
    if not text.strip():
        return None
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            if isinstance(obj.get("message"), str) and isinstance(obj.get("level"), str):
                level = _LEVELS.get(obj["level"], obj["level"])
                return LogLine(obj["message"], level, obj.get("time"), stream, text)
            return LogLine(stripped, None, None, stream, text, obj)
    m = _PLAIN.match(text)
    if m:
        return LogLine(m.group(3).strip(), _LEVELS.get(m.group(2), m.group(2)), m.group(1), stream, text)
    return LogLine(text, None, None, stream, text)


class WorkspaceState(enum.StrEnum):
    RUNNING = "Running"
    STOPPED = "Stopped"
    BUSY = "Busy"
    NOT_FOUND = "NotFound"


@dataclasses.dataclass(frozen=True)
class WorkspaceStatus:
    id: str
    state: WorkspaceState
    context: str | None = None
    provider: str | None = None


def parse_status(stdout: str) -> WorkspaceStatus:
    """Parse ``status --output json``: ``{"id":..,"context":..,"provider":..,"state":..}``.

    A workspace missing from local state is *not* ``NotFound``: the command exits 1 with
    "workspace X doesn't exist" (§2.2); see :func:`workspace_missing`.
    """
    try:
        obj = json.loads(stdout.strip())
    except ValueError as exc:
        raise ValueError(f"status output is not JSON: {stdout[:200]!r}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("state"), str):
        raise ValueError(f"status output has no state: {stdout[:200]!r}")
    try:
        state = WorkspaceState(obj["state"])
    except ValueError as exc:
        raise ValueError(f"unknown workspace state {obj['state']!r}") from exc
    return WorkspaceStatus(id=obj.get("id", ""), state=state, context=obj.get("context"), provider=obj.get("provider"))


def parse_list(stdout: str) -> list[dict]:
    """Parse ``list --output json`` (``[]`` when empty, no trailing newline)."""
    text = stdout.strip()
    if not text:
        return []
    obj = json.loads(text)
    if obj is None:
        return []
    if not isinstance(obj, list) or not all(isinstance(w, dict) for w in obj):
        raise ValueError("list output is not a JSON array of objects")
    return obj


def parse_provider_list(stdout: str) -> set[str]:
    """Provider names from ``provider list --output json`` (a map name → {config,state,default})."""
    text = stdout.strip()
    if not text:
        return set()
    obj = json.loads(text)
    if obj is None:
        return set()
    if not isinstance(obj, dict):
        raise ValueError("provider list output is not a JSON object")
    return set(obj)


_NOISE = [
    # Printed after successful ssh commands (loft-sh/devpod#1927, #1894, #1947).
    re.compile(r"remote command exited without exit status or exit signal"),
    re.compile(r"Try using the --debug flag"),
    re.compile(r"^\s*$"),
]
_SEVERE = ("fatal", "error", "warning")


def meaningful_errors(lines: Iterable[LogLine], n: int = 10) -> list[str]:
    """The last ``n`` warning/error/fatal messages worth showing a human, oldest first.

    Error-level lines are not failure by themselves (lifecycle hook output containing
    "error" is logged at error level; §1.4): use this only to explain a non-zero exit.
    ``fatal`` lines are the cause and are always kept. If there are no leveled lines
    (e.g. a crash printing raw text), raw stderr lines are used instead.
    """
    items = [ln for ln in lines if ln.level in _SEVERE and not any(p.search(ln.message) for p in _NOISE)]
    if not items:
        items = [
            ln for ln in lines
            if ln.level is None and ln.stream == "stderr" and not any(p.search(ln.message) for p in _NOISE)
        ]  # fmt: skip
    out: list[tuple[bool, str]] = []
    for ln in items:
        entry = (ln.level == "fatal", ln.message)
        if out and out[-1][1] == ln.message:
            continue
        out.append(entry)
    if len(out) <= n:
        return [m for _, m in out]
    fatal = [i for i, (f, _) in enumerate(out) if f]
    keep = set(fatal[-n:])
    for i in range(len(out) - 1, -1, -1):
        if len(keep) >= n:
            break
        keep.add(i)
    return [out[i][1] for i in sorted(keep)]


_PHASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Trying to lock workspace"), "Waiting for another operation"),
    (re.compile(r"^Clone repository|^URL: |^PR: |git clone", re.I), "Cloning repository"),
    (re.compile(r"Create Persistent Volume Claim"), "Creating volume"),
    (re.compile(r"^Create Pod|Delete pod .* recreat", re.I), "Creating pod"),
    (re.compile(r"Waiting for DevContainer Pod|Waiting, since pod"), "Waiting for pod"),
    (re.compile(r"^Build|dockerless|kaniko|prebuild", re.I), "Building image"),
    (re.compile(r"^Creating devcontainer|^Starting devcontainer", re.I), "Creating devcontainer"),
    (re.compile(r"onCreateCommand|updateContentCommand|postCreateCommand|postStartCommand|postAttachCommand"),
     "Running lifecycle hooks"),
    (re.compile(r"openvscode", re.I), "Installing OpenVSCode"),
    (re.compile(r"^Setup container|^Setting up container", re.I), "Setting up container"),
    (re.compile(r"^Run 'ssh .*\.devpod'"), "Ready"),
    (re.compile(r"^Stopping container|^Successfully stopped"), "Stopping"),
    (re.compile(r"^Delet(e|ing) "), "Deleting"),
]  # fmt: skip


def phase_of(message: str) -> str | None:
    """Map a DevPod progress message to a short human phase, or None if it is not one."""
    for pattern, phase in _PHASES:
        if pattern.search(message):
            return phase
    return None


_MISSING = re.compile(r"workspace \S+ doesn't exist|couldn't find workspace")


def workspace_missing(lines: Iterable[LogLine]) -> bool:
    """True if DevPod failed because the workspace is not in local state (§2.2, §4.6)."""
    return any(ln.level == "fatal" and _MISSING.search(ln.message) for ln in lines)


# --------------------------------------------------------------------------- masking

_TOKEN_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"github_pat_[A-Za-z0-9_]{20,}"), "***"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), "***"),
    (re.compile(r"(x-access-token:)[^@\s/]+(@)"), r"\1***\2"),
    (re.compile(r"(://[^/@\s:]+:)[^/@\s]+(@)"), r"\1***\2"),
    (re.compile(r"(\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (re.compile(r"(\b[Tt]oken\s+)[A-Za-z0-9._~+/=-]{20,}"), r"\1***"),
]


class Masker:
    """Replaces known secrets and GitHub token shapes with ``***``."""

    MIN_SECRET_LEN = 6

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        """Remember a secret (too-short values are ignored: they would mask ordinary text)."""
        if secret and len(secret) >= self.MIN_SECRET_LEN and secret not in self._secrets:
            self._secrets.add(secret)
            alternatives = sorted(self._secrets, key=len, reverse=True)
            self._regex = re.compile("|".join(re.escape(s) for s in alternatives))

    def mask(self, text: str) -> str:
        if self._regex is not None:
            text = self._regex.sub("***", text)
        for pattern, repl in _TOKEN_PATTERNS:
            text = pattern.sub(repl, text)
        return text

    __call__ = mask


# --------------------------------------------------------------------------- git credentials

_ASKPASS = f"""#!/bin/sh
# git askpass helper written by devenv-bot. It holds no secret: the token comes from
# the environment of the one DevPod process that needs it.
case "$1" in
  Username*) printf '%s\\n' x-access-token ;;
  *) printf '%s\\n' "${GIT_TOKEN_ENV}" ;;
esac
"""


def write_askpass(directory: Path) -> Path:
    """Write the askpass script into ``directory`` (mode 0700) unless it is already there."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "git-askpass.sh"
    try:
        if path.read_text() == _ASKPASS and (path.stat().st_mode & 0o777) == 0o700:
            return path
    except OSError:
        pass
    tmp = directory / f".git-askpass.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
    with os.fdopen(fd, "w") as f:
        f.write(_ASKPASS)
    os.chmod(tmp, 0o700)
    os.replace(tmp, path)
    return path


def git_credential_env(token: str, askpass_path: Path) -> dict[str, str]:
    """env_extra that lets git (run by DevPod on the bot host; §1.2) fetch a private repo.

    The token travels only in the environment of that one subprocess: never in argv,
    never on disk. Pair it with ``SSH_INJECT_GIT_CREDENTIALS=false`` so it is not
    forwarded into the workspace (§4.4).
    """
    if not token:
        raise ValueError("empty token")
    return {"GIT_ASKPASS": str(askpass_path), "GIT_TERMINAL_PROMPT": "0", GIT_TOKEN_ENV: token}


# --------------------------------------------------------------------------- runner


@dataclasses.dataclass(frozen=True)
class RunResult:
    argv: list[str]
    exit_code: int
    #: The last lines of stdout and stderr (masked), oldest first.
    lines: list[LogLine]
    timed_out: bool
    duration: float
    #: All of stdout (masked), up to a size cap; what ``parse_status`` and friends read.
    stdout: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def errors(self, n: int = 10) -> list[str]:
        return meaningful_errors(self.lines, n)


_FORBIDDEN_EXTRA = re.compile(r"^DEVPOD_FLAGS_|^DEVPOD_DEBUG$|^DEVPOD_CONFIG$")


def build_env(settings: DevPodSettings, env_extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's whole environment; nothing is inherited from ``os.environ``."""
    env = {
        "PATH": settings.path,
        "HOME": str(settings.child_home),
        "DEVPOD_HOME": str(settings.home),
        "DEVPOD_DISABLE_TELEMETRY": "true",
    }
    if settings.kubeconfig is not None:
        env["KUBECONFIG"] = str(settings.kubeconfig)
    for key, value in (env_extra or {}).items():
        if _FORBIDDEN_EXTRA.match(key):
            raise ValueError(f"{key} must not be passed to DevPod")
        env[key] = value
    return env


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _read_lines(
    stream: asyncio.StreamReader, max_line: int, emit: Callable[[str], Awaitable[None]]
) -> None:
    """Emit each line of ``stream``, cut to ``max_line`` bytes (the rest of a long line is dropped)."""

    async def emit_cut(data: bytes, cut: bool) -> None:
        text = data[:max_line].decode("utf-8", "replace")
        await emit(text + " …[truncated]" if cut or len(data) > max_line else text)

    buf = b""
    dropping = False  # inside an overlong line whose head was already emitted
    while chunk := await stream.read(65536):
        buf += chunk
        while (nl := buf.find(b"\n")) >= 0:
            line, buf = buf[:nl], buf[nl + 1 :]
            if dropping:
                dropping = False
            else:
                await emit_cut(line, False)
        if len(buf) > max_line:
            if not dropping:
                await emit_cut(buf, True)
            dropping = True
            buf = b""
    if buf and not dropping:
        await emit_cut(buf, False)


async def run(
    argv: list[str],
    *,
    settings: DevPodSettings,
    timeout: float,
    masker: Masker,
    env_extra: Mapping[str, str] | None = None,
    on_line: Callable[[LogLine], Awaitable[None] | None] | None = None,
    max_lines: int = 200,
    max_line_bytes: int = 16 * 1024,
    max_stdout_bytes: int = 4 * 1024 * 1024,
    stdin_data: bytes | None = None,
) -> RunResult:
    """Run one DevPod argv and collect its masked output.

    ``stdin_data``, when given, is written to the child's stdin, which is then closed
    (``devpod ssh`` forwards it to the remote command); otherwise stdin is ``/dev/null``.

    Timeout and cancellation both stop the child's whole process group: SIGTERM (DevPod
    cancels its context and exits 1), then SIGKILL after ``settings.kill_grace``.
    ``on_line`` (sync or async) sees every non-blank line as it arrives; an exception in
    it is not swallowed by the runner, it terminates the child and propagates.
    """
    env = build_env(settings, env_extra)
    ring: deque[LogLine] = deque(maxlen=max_lines)
    stdout_parts: list[str] = []
    stdout_size = 0
    started = time.monotonic()

    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL if stdin_data is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,  # own process group: signals reach git/agent children too
    )

    def emitter(stream_name: str) -> Callable[[str], Awaitable[None]]:
        async def emit(raw: str) -> None:
            nonlocal stdout_size
            masked = masker.mask(raw)
            if stream_name == "stdout" and stdout_size < max_stdout_bytes:
                stdout_parts.append(masked)
                stdout_size += len(masked) + 1
            line = parse_log_line(masked, stream_name)
            if line is None:
                return
            if line.message != masker.mask(line.message):  # e.g. a secret hidden by JSON escapes
                line = dataclasses.replace(line, message=masker.mask(line.message))
            ring.append(line)
            if on_line is not None:
                result = on_line(line)
                if inspect.isawaitable(result):
                    await result

        return emit

    assert proc.stdout is not None and proc.stderr is not None
    readers = asyncio.gather(
        _read_lines(proc.stdout, max_line_bytes, emitter("stdout")),
        _read_lines(proc.stderr, max_line_bytes, emitter("stderr")),
    )
    timed_out = False

    async def terminate() -> None:
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), settings.kill_grace)
        # Whatever is left in the group (including a child that ignored SIGTERM) is killed.
        _signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def feed(data: bytes) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the child exited without reading everything; its exit code tells the story
        finally:
            proc.stdin.close()

    feeder = asyncio.ensure_future(feed(stdin_data)) if stdin_data is not None else None
    waiter = asyncio.ensure_future(proc.wait())
    try:
        try:
            async with asyncio.timeout(timeout):
                done, _ = await asyncio.wait({readers, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if readers in done:
                    readers.result()  # re-raise an exception from on_line
                await waiter
        except TimeoutError:
            timed_out = True
            await terminate()
        # The child is gone. Give a grandchild still holding the pipes a moment, then kill the group.
        try:
            await asyncio.wait_for(asyncio.shield(readers), 1.0)
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(readers), 1.0)
    except BaseException:
        try:
            await terminate()
        finally:
            if proc.returncode is None:
                _signal_group(proc.pid, signal.SIGKILL)
        raise
    finally:
        waiter.cancel()
        if feeder is not None:
            feeder.cancel()
            with contextlib.suppress(BaseException):
                await feeder
        if not readers.done():
            readers.cancel()
        with contextlib.suppress(BaseException):
            await readers

    assert proc.returncode is not None
    return RunResult(
        argv=[masker.mask(a) for a in argv],
        exit_code=proc.returncode,
        lines=list(ring),
        timed_out=timed_out,
        duration=time.monotonic() - started,
        stdout="\n".join(stdout_parts),
    )
