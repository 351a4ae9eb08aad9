"""Pure parsers of DevPod's output: log lines, ``status`` and ``list`` JSON, errors, phases.

With ``--log-output json`` every DevPod command writes one JSON object per line; plain
(ANSI-coloured) log lines and raw text from a crash or a remote command are tolerated, so
:func:`parse_log_line` never fails. What the lines mean is decided here too, from
literals in ``../shared/devpod/CONTRACT.md``: the short human phase of a progress message
(:func:`phase_of`), the errors worth showing after a failure (:func:`meaningful_errors`)
and whether a workspace is missing from DevPod's local state (:func:`workspace_missing`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Iterable

__all__ = [
    "LogLine",
    "WorkspaceState",
    "likely_cause",
    "WorkspaceStatus",
    "meaningful_errors",
    "parse_list",
    "parse_log_line",
    "parse_provider_list",
    "parse_status",
    "phase_of",
    "workspace_missing",
]

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
    ``fatal`` lines are always kept. DevPod v0.6.15 logs the real cause of a failed ``up`` at
    ``info`` before one generic ``fatal`` ("run agent command: Process exited with status 1",
    CONTRACT §9), so info lines that read like a failure just before such a fatal are kept
    too. If there are no leveled lines
    (e.g. a crash printing raw text), raw stderr lines are used instead.
    """
    lines = list(lines)
    items = [ln for i, ln in enumerate(lines)
             if (ln.level in _SEVERE or _informative(lines, i)) and not any(p.search(ln.message) for p in _NOISE)]
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


#: The one ``fatal`` line a failed agent command ends with, whatever went wrong (CONTRACT §9).
_GENERIC_FATAL = re.compile(r"run agent command|Process exited with status \d+")
#: Info lines that read like the failure's cause: "clone repository: exit status 128",
#: "extract vscode: decompress: tar reader next: unexpected EOF".
_FAILURE_WORDS = re.compile(
    r"exit status \d+|unexpected EOF|error|fail|denied|not found|no such|unable|cannot|can't|timed? ?out|refused",
    re.I)
_CAUSE_WINDOW = 8


def _informative(lines: list[LogLine], i: int) -> bool:
    """True if ``lines[i]`` is an info line explaining a generic fatal shortly after it."""
    ln = lines[i]
    if ln.level != "info" or not _FAILURE_WORDS.search(ln.message):
        return False
    after = lines[i + 1:i + 1 + _CAUSE_WINDOW]
    return any(x.level == "fatal" and _GENERIC_FATAL.search(x.message) for x in after)


_CAUSES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"exceeded quota|Insufficient (cpu|memory)|no space left on device|ResourceQuota", re.I), "quota"),
    (re.compile(r"clone repository|git clone|Repository not found|Authentication failed|Could not resolve host",
                re.I), "clone"),
    # A download from a mirror (DEVENV_IDE_DOWNLOAD_*) fails as Go's bare 'Get "<url>": …' (CONTRACT §6).
    (re.compile(r"extract vscode|openvscode|vscode server|install (the )?ide|download .*vscode|"
                r"Get \"https?://[^\"]*\.tar\.gz\"", re.I), "ide"),
    (re.compile(r"pull(ing)? image|ImagePullBackOff|ErrImagePull|manifest unknown|build image|dockerfile|kaniko",
                re.I), "image"),
    (re.compile(r"onCreateCommand|updateContentCommand|postCreateCommand|postStartCommand|postAttachCommand|"
                r"lifecycle hook|^Run command ?:", re.I), "hooks"),
]  # fmt: skip


def likely_cause(errors: Iterable[str]) -> str | None:
    """The likely cause of a failure from its messages: clone, ide, image, hooks or quota (None: unknown)."""
    errors = list(errors)
    for pattern, cause in _CAUSES:
        if any(pattern.search(e) for e in errors):
            return cause
    return None


_PHASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Trying to lock workspace"), "Waiting for another operation"),
    (re.compile(r"^Clone repository|^URL: |^PR: |git clone", re.I), "Cloning repository"),
    (re.compile(r"Create Persistent Volume Claim"), "Creating volume"),
    (re.compile(r"^Create Pod|Delete pod .* recreat", re.I), "Creating pod"),
    (re.compile(r"Waiting for DevContainer Pod|Waiting, since pod"), "Waiting for pod"),
    (re.compile(r"^Build|dockerless|kaniko|prebuild", re.I), "Building image"),
    (re.compile(r"^Creating devcontainer|^Starting devcontainer", re.I), "Creating devcontainer"),
    # v0.6.15 prints hooks as "Run command : <cmd>..." without the hook's name (CONTRACT §9).
    (re.compile(r"^Run command ?:|onCreateCommand|updateContentCommand|postCreateCommand|postStartCommand|"
                r"postAttachCommand"), "Running lifecycle hooks"),
    (re.compile(r"openvscode", re.I), "Installing OpenVSCode"),
    (re.compile(r"^Setup container|^Setting up container", re.I), "Setting up container"),
    (re.compile(r"^Run 'ssh .*\.devpod'"), "Ready"),
    (re.compile(r"^Stopping container|^Successfully stopped"), "Stopping"),
    # --reset/--recreate print "Deleting devcontainer..." before the rebuild (CONTRACT §9).
    (re.compile(r"^Deleting devcontainer|^Delete pod "), "Removing the old container"),
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
