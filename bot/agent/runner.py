"""Agent runs: Claude Code in headless mode inside a PR's workspace, streamed and stoppable.

Design (details and sources in ``docs/agent.md``; facts in ``../shared/links-agent/FACTS.md`` §D).

* **Delivery.** One ``devpod ssh <id> --command <script>`` per run. The script is a fixed
  POSIX ``sh`` text built only from the shell-quoted agent argv (:func:`remote_script`); no
  prompt, no secret and nothing a user typed is ever part of a command line, local or
  remote. Everything variable travels on **stdin** (:func:`stdin_payload`): a header of
  ``NAME=VALUE`` lines (the API key, optional extra secrets such as a push token) ended by
  an empty line, then the prompt bytes. The script ``read``s the header (``read`` takes one
  byte at a time from a pipe, so the rest stays unread), ``export``s each line and hands
  the remaining stdin, the prompt, to the agent untouched. No shell ever parses the prompt.
* **Exit status.** ``devpod ssh`` exits 1 for any remote failure (CONTRACT §3), so the
  script prints markers on stdout: ``__DEVENV_PID=<pid>`` just before the agent starts
  (the PID *is* the agent's: a child ``sh`` prints its ``$$`` and ``exec``s the agent),
  ``__DEVENV_RC=<code>`` after it ends, and ``__DEVENV_AGENT_MISSING=<program>`` when
  the program is not installed. Success is decided by the final ``result`` frame's
  ``is_error`` (auth and API failures end with ``subtype: success``; FACTS §D), never by
  an exit code alone.
* **Stopping.** Signals do not cross ``devpod ssh``; killing it can orphan the remote
  agent. To cancel (or on the time limit) a second ``devpod ssh --command "kill -s INT
  <pid>"`` interrupts the agent, which then writes a clean final result and exits 0;
  after a grace period SIGTERM (exit 143, no result), then SIGKILL, then the local process
  group.
* **Parsing.** :func:`parse_stream_line` turns one stream-json line into an
  :class:`AgentEvent` (pure; tested on the real samples); :class:`Progress` keeps a
  bounded rolling view, and :func:`render_progress` renders it as bounded, escaped
  Markdown. Every line is masked before it is parsed or kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import logging
import re
import shlex
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from bot.devpod import driver as devpod
from bot.devpod.driver import DevPodSettings, LogLine, Masker
from bot.settings.agent import AgentSettings
from bot.text.markdown import escape, fenced, inline_code, truncate_bytes

__all__ = [
    "DEFAULT_AGENT_COMMAND",
    "FILE_TOOLS",
    "MISSING_AGENT_HELP",
    "MISSING_EXIT_CODE",
    "Activity",
    "AgentEvent",
    "AgentPromptError",
    "AgentResult",
    "AgentSettings",
    "Denial",
    "FinalResult",
    "Progress",
    "ToolResult",
    "ToolUse",
    "parse_marker",
    "parse_stream_line",
    "remote_script",
    "render_progress",
    "run_agent",
    "signal_command",
    "stdin_payload",
    "summarize_tool_input",
]

log = logging.getLogger(__name__)

#: ``--output-format stream-json`` needs ``--verbose`` in print mode (FACTS §D).
DEFAULT_AGENT_COMMAND = ["claude", "-p", "--output-format", "stream-json", "--verbose"]

#: Tools whose input names a file the agent writes.
FILE_TOOLS: Mapping[str, str] = {
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "Write": "file_path",
    "NotebookEdit": "notebook_path",
}

MISSING_AGENT_HELP = (
    "The coding agent (`{program}`) is not installed in this environment. Add it to the "
    "repository's `.devcontainer/devcontainer.json`, then recreate the environment:\n\n"
    "* as a dev container feature: "
    '`"features": {{"ghcr.io/anthropics/devcontainer-features/claude-code:1": {{}}}}`, or\n'
    "* with npm in the image or a lifecycle hook: `npm install -g @anthropic-ai/claude-code` "
    "(needs Node.js 22 or newer; on older Node npm silently installs an outdated version)."
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROGRAM = re.compile(r"^[A-Za-z0-9_./+-]+$")
#: Names the stdin header may not set: they would change how the script or the shells run.
_RESERVED_ENV = frozenset(
    {"IFS", "PATH", "ENV", "BASH_ENV", "SHELL", "HOME", "PS4", "LD_PRELOAD", "LD_LIBRARY_PATH", "IS_SANDBOX"}
)

_PID_MARKER = "__DEVENV_PID="
_RC_MARKER = "__DEVENV_RC="
_MISSING_MARKER = "__DEVENV_AGENT_MISSING="
_MARKER = re.compile(r"^(__DEVENV_PID=|__DEVENV_RC=|__DEVENV_AGENT_MISSING=)(\S*)$")

#: Exit status the script reports when the agent program is missing (as a shell would).
MISSING_EXIT_CODE = 127


class AgentPromptError(ValueError):
    """The prompt cannot be sent (empty or too long); the message is fit for the user."""


# --------------------------------------------------------------------------- the remote side (pure)


def remote_script(settings: AgentSettings) -> str:
    """The ``--command`` for ``devpod ssh``: fixed text plus the shell-quoted agent argv.

    It runs under ``sh`` whatever the user's login shell is (devpod runs ``<login shell> -c
    CMD``; CONTRACT §3). Holds no secret and nothing user-supplied.
    """
    program = shlex.quote(settings.command[0])
    agent = shlex.join(settings.command)
    script = f"""set -u
while IFS= read -r __devenv_kv; do
  [ -n "$__devenv_kv" ] || break
  export "$__devenv_kv"
done
unset __devenv_kv
export DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
if [ "$(id -u 2>/dev/null)" = 0 ]; then export IS_SANDBOX=1; fi
if ! command -v {program} >/dev/null 2>&1; then
  echo "{_MISSING_MARKER}"{program}
  echo "{_RC_MARKER}{MISSING_EXIT_CODE}"
  exit 0
fi
sh -c 'echo "{_PID_MARKER}$$"; exec "$@"' devenv-agent {agent}
echo "{_RC_MARKER}$?"
"""
    return "exec sh -c " + shlex.quote(script)


def stdin_payload(prompt: str, settings: AgentSettings, extra_env: Mapping[str, str] | None = None) -> bytes:
    """What the script reads on stdin: ``NAME=VALUE`` lines, an empty line, then the prompt bytes.

    Raises :class:`AgentPromptError` for an empty or too long prompt and ValueError for a
    bad variable (a name the script reserves, or a value with a line break or NUL).
    """
    data = prompt.encode("utf-8")
    if not prompt.strip():
        raise AgentPromptError("The prompt is empty.")
    if len(data) > settings.max_prompt_bytes:
        raise AgentPromptError(
            f"The prompt is {len(data)} bytes long; the limit is {settings.max_prompt_bytes} bytes."
        )
    env: dict[str, str] = {}
    if settings.api_key:
        env[settings.env_name] = settings.api_key
    for name, value in (extra_env or {}).items():
        if not _NAME.match(name) or name in _RESERVED_ENV or name.startswith("__DEVENV"):
            raise ValueError(f"extra_env may not set {name!r}")
        env[name] = value
    lines = []
    for name, value in env.items():
        if "\n" in value or "\r" in value or "\0" in value:
            raise ValueError(f"the value of {name} must be one line")
        lines.append(f"{name}={value}\n")
    return "".join(lines).encode("utf-8") + b"\n" + data


def signal_command(pid: int, sig: Literal["INT", "TERM", "KILL"]) -> str:
    """The ``--command`` that sends ``sig`` to the remote agent."""
    if pid < 2:
        raise ValueError(f"refusing to signal pid {pid}")
    return f"kill -s {sig} {int(pid)}"


def parse_marker(line: str) -> tuple[str, str] | None:
    """``("pid" | "rc" | "missing", value)`` for a marker line from the script, else None."""
    m = _MARKER.match(line.strip())
    if not m:
        return None
    kind = {_PID_MARKER: "pid", _RC_MARKER: "rc", _MISSING_MARKER: "missing"}[m.group(1)]
    if kind in ("pid", "rc") and not m.group(2).isdigit():
        return None
    return kind, m.group(2)


# --------------------------------------------------------------------------- stream parsing (pure)


@dataclasses.dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    #: A one-line description of the input: the command, the file, the pattern ...
    summary: str
    #: Files the tool writes (Edit, Write, MultiEdit, NotebookEdit).
    files: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ToolResult:
    tool_use_id: str
    text: str
    is_error: bool


@dataclasses.dataclass(frozen=True)
class Denial:
    """A tool call the agent was not allowed to make."""

    tool_name: str
    summary: str
    tool_use_id: str | None = None


@dataclasses.dataclass(frozen=True)
class FinalResult:
    """The ``result`` frame, the last line of a run that was not killed."""

    is_error: bool
    subtype: str | None
    result: str | None
    terminal_reason: str | None = None
    errors: tuple[str, ...] = ()
    permission_denials: tuple[Denial, ...] = ()
    num_turns: int | None = None
    total_cost_usd: float | None = None
    duration_ms: int | None = None
    duration_api_ms: int | None = None
    api_error: str | None = None
    session_id: str | None = None

    @property
    def ok(self) -> bool:
        """True only for ``is_error: false`` with subtype success (FACTS §D: never subtype alone)."""
        return not self.is_error and self.subtype in (None, "success")

    @property
    def message(self) -> str:
        """The final text, or what went wrong."""
        if self.result:
            return self.result
        if self.errors:
            return "; ".join(self.errors)
        return f"The agent stopped ({self.terminal_reason or self.subtype or 'no reason given'})."


EventKind = Literal["init", "assistant", "user", "permission_denied", "system", "result", "other", "raw"]


@dataclasses.dataclass(frozen=True)
class AgentEvent:
    """One line of the agent's output.

    ``kind`` is ``init`` (``info`` holds model, cwd, version ...), ``assistant`` (``texts``,
    ``tool_uses``, ``error`` on an API failure), ``user`` (``tool_results``, ``texts`` such
    as "[Request interrupted by user ...]"), ``permission_denied`` (``tool_name``, ``text``),
    ``system`` (other system frames: task, api_retry ...; ``text`` summarises),
    ``result`` (``final``), ``other`` (unknown JSON types, informational) or ``raw``
    (not a JSON object; ``text`` is the line).
    """

    kind: EventKind
    subtype: str | None = None
    texts: tuple[str, ...] = ()
    tool_uses: tuple[ToolUse, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    tool_name: str | None = None
    tool_use_id: str | None = None
    text: str = ""
    error: str | None = None
    info: Mapping[str, object] = dataclasses.field(default_factory=dict)
    final: FinalResult | None = None


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def summarize_tool_input(name: str, tool_input: object) -> tuple[str, tuple[str, ...]]:
    """A one-line summary of a tool call's input, and the files it writes."""
    if not isinstance(tool_input, dict):
        return _one_line(json.dumps(tool_input, ensure_ascii=False)), ()
    files: tuple[str, ...] = ()
    if name in FILE_TOOLS and isinstance(tool_input.get(FILE_TOOLS[name]), str):
        files = (tool_input[FILE_TOOLS[name]],)
    for key in ("command", "file_path", "notebook_path", "path", "pattern", "url", "query", "description", "prompt"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return _one_line(value), files
    if name == "TodoWrite" and isinstance(tool_input.get("todos"), list):
        return f"{len(tool_input['todos'])} to-do items", files
    return _one_line(json.dumps(tool_input, ensure_ascii=False, sort_keys=True)), files


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"
        )  # fmt: skip
    return ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _final(obj: dict) -> FinalResult:
    denials = []
    for d in obj.get("permission_denials") or []:
        if isinstance(d, dict):
            name = str(d.get("tool_name") or "?")
            denials.append(Denial(name, summarize_tool_input(name, d.get("tool_input"))[0], d.get("tool_use_id")))
    cost = obj.get("total_cost_usd")
    return FinalResult(
        is_error=obj.get("is_error") is not False,
        subtype=obj.get("subtype") if isinstance(obj.get("subtype"), str) else None,
        result=obj.get("result") if isinstance(obj.get("result"), str) else None,
        terminal_reason=obj.get("terminal_reason") if isinstance(obj.get("terminal_reason"), str) else None,
        errors=tuple(str(e) for e in obj.get("errors") or [] if e),
        permission_denials=tuple(denials),
        num_turns=_int(obj.get("num_turns")),
        total_cost_usd=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
        duration_ms=_int(obj.get("duration_ms")),
        duration_api_ms=_int(obj.get("duration_api_ms")),
        api_error=obj.get("api_error") if isinstance(obj.get("api_error"), str) else None,
        session_id=obj.get("session_id") if isinstance(obj.get("session_id"), str) else None,
    )


def parse_stream_line(line: str) -> AgentEvent | None:
    """Parse one line of ``--output-format stream-json``; None for a blank line."""
    text = line.strip()
    if not text:
        return None
    obj: object = None
    if text.startswith("{"):
        with contextlib.suppress(ValueError):
            obj = json.loads(text)
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        return AgentEvent("raw", text=text)
    kind, subtype = obj["type"], obj.get("subtype") if isinstance(obj.get("subtype"), str) else None
    if kind == "result":
        return AgentEvent("result", subtype=subtype, final=_final(obj))
    if kind == "system":
        if subtype == "init":
            keys = ("model", "cwd", "claude_code_version", "permissionMode", "apiKeySource", "session_id")
            return AgentEvent("init", subtype, info={k: obj[k] for k in keys if k in obj})
        if subtype == "permission_denied":
            return AgentEvent(
                "permission_denied", subtype, tool_name=str(obj.get("tool_name") or "?"),
                tool_use_id=obj.get("tool_use_id"), text=str(obj.get("message") or ""),
            )  # fmt: skip
        if subtype == "api_retry":
            summary = f"API retry {obj.get('attempt')}/{obj.get('max_retries')} (status {obj.get('error_status')})"
        elif subtype in ("task_started", "task_notification"):
            summary = " ".join(str(obj[k]) for k in ("description", "summary", "status") if obj.get(k))
        else:
            summary = subtype or ""
        return AgentEvent("system", subtype, text=summary, tool_use_id=obj.get("tool_use_id"))
    message = obj.get("message") if isinstance(obj.get("message"), dict) else {}
    content = message.get("content")
    blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    if kind == "assistant":
        texts = tuple(b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str))
        uses = []
        for b in blocks:
            if b.get("type") == "tool_use":
                name = str(b.get("name") or "?")
                summary, files = summarize_tool_input(name, b.get("input"))
                uses.append(ToolUse(str(b.get("id") or ""), name, summary, files))
        error = obj.get("error") if obj.get("is_api_error_message") or obj.get("error") else None
        return AgentEvent("assistant", texts=texts, tool_uses=tuple(uses), error=str(error) if error else None)
    if kind == "user":
        if isinstance(content, str):
            return AgentEvent("user", texts=(content,))
        results = tuple(
            ToolResult(str(b.get("tool_use_id") or ""), _content_text(b.get("content")), b.get("is_error") is True)
            for b in blocks
            if b.get("type") == "tool_result"
        )
        texts = tuple(b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str))
        return AgentEvent("user", texts=texts, tool_results=results)
    return AgentEvent("other", subtype=kind)


# --------------------------------------------------------------------------- the rolling view


@dataclasses.dataclass(frozen=True)
class Activity:
    """One entry of the rolling view: ``say`` (agent text), ``tool``, ``ok``/``error`` (a tool's
    result), ``denied``, ``note`` (interruptions, retries, API errors)."""

    kind: Literal["say", "tool", "ok", "error", "denied", "note"]
    text: str


class Progress:
    """What the agent has done so far, bounded: feed it events, render it with :func:`render_progress`."""

    def __init__(self, *, max_messages: int = 8, max_tail_lines: int = 40, mask: Callable[[str], str] = str) -> None:
        self.mask = mask
        self.info: dict[str, object] = {}
        self.recent: deque[Activity] = deque(maxlen=max_messages)
        self.tail: deque[str] = deque(maxlen=max_tail_lines)
        self.tool_calls = 0
        self.files_touched: list[str] = []
        self.denials: list[Denial] = []
        self.final: FinalResult | None = None
        self.last_text: str | None = None
        self.api_error: str | None = None
        self.events = 0
        self._pending_files: dict[str, tuple[str, ...]] = {}
        self._tool_names: dict[str, str] = {}
        self._tool_summaries: dict[str, str] = {}

    def _short(self, text: str, limit: int = 300) -> str:
        return _one_line(self.mask(text), limit)

    def _file(self, path: str) -> str:
        cwd = self.info.get("cwd")
        if isinstance(cwd, str) and cwd and path.startswith(cwd.rstrip("/") + "/"):
            path = path[len(cwd.rstrip("/")) + 1 :]
        return self.mask(path)

    def add_raw(self, line: str) -> None:
        """Keep a line that is not part of the stream (stderr, non-JSON stdout)."""
        if line.strip():
            self.tail.append(self.mask(line)[:1000])

    def feed(self, event: AgentEvent) -> None:
        self.events += 1
        if event.kind == "raw":
            self.add_raw(event.text)
        elif event.kind == "init":
            self.info = dict(event.info)
        elif event.kind == "assistant":
            for text in event.texts:
                if text.strip():
                    self.last_text = self.mask(text)
                    self.recent.append(Activity("say", self._short(text)))
            for use in event.tool_uses:
                self.tool_calls += 1
                self._tool_names[use.id] = use.name
                self._tool_summaries[use.id] = self._short(use.summary, 200)
                if use.files:
                    self._pending_files[use.id] = use.files
                self.recent.append(Activity("tool", f"{use.name}: {self._short(use.summary, 200)}"))
            if event.error:
                self.api_error = event.error
                self.recent.append(Activity("note", f"API error: {event.error}"))
        elif event.kind == "user":
            for res in event.tool_results:
                files = self._pending_files.pop(res.tool_use_id, ())
                if not res.is_error:
                    for f in files:
                        shown = self._file(f)
                        if shown not in self.files_touched:
                            self.files_touched.append(shown)
                name = self._tool_names.get(res.tool_use_id, "tool")
                self.recent.append(Activity("error" if res.is_error else "ok", f"{name}: {self._short(res.text, 200)}"))
            for text in event.texts:
                self.recent.append(Activity("note", self._short(text)))
        elif event.kind == "permission_denied":
            summary = self._tool_summaries.get(event.tool_use_id or "") or self._short(event.text, 200)
            self.denials.append(Denial(event.tool_name or "?", summary, event.tool_use_id))
            self.recent.append(Activity("denied", f"{event.tool_name}: {self._short(event.text, 200)}"))
        elif event.kind == "system" and event.subtype == "api_retry":
            self.recent.append(Activity("note", self._short(event.text)))
        elif event.kind == "result" and event.final is not None:
            final = event.final
            self.final = dataclasses.replace(
                final,
                result=self.mask(final.result) if final.result is not None else None,
                errors=tuple(self.mask(e) for e in final.errors),
                permission_denials=tuple(
                    dataclasses.replace(d, summary=self.mask(d.summary)) for d in final.permission_denials
                ),
            )

    @property
    def permission_denials(self) -> list[Denial]:
        """The result's list when there is one (it has the tool input), else the denials seen so far."""
        if self.final is not None and self.final.permission_denials:
            return list(self.final.permission_denials)
        return list(self.denials)


_ICONS = {"say": "💬", "tool": "🔧", "ok": "✔️", "error": "✖️", "denied": "⛔", "note": "ℹ️"}


def _stats(progress: Progress) -> str:
    parts = [f"{progress.tool_calls} tool call{'s' if progress.tool_calls != 1 else ''}"]
    parts.append(f"{len(progress.files_touched)} file{'s' if len(progress.files_touched) != 1 else ''} changed")
    final = progress.final
    if final is not None:
        if final.num_turns is not None:
            parts.append(f"{final.num_turns} turns")
        if final.duration_ms is not None:
            parts.append(f"{final.duration_ms / 1000:.1f} s")
        if final.total_cost_usd is not None:
            parts.append(f"about ${final.total_cost_usd:.4f}")
    return " · ".join(parts)


def render_progress(progress: Progress, *, status: str | None = None, limit_bytes: int = 8000) -> str:
    """Markdown for a check run or comment: stats, files, denials, recent activity, final message.

    Everything the agent or the user produced is escaped or fenced. Oldest activity is
    dropped first to stay within ``limit_bytes`` (UTF-8); the final message gets at most
    half of the budget.
    """
    head = []
    if status:
        head.append(f"**{escape(status)}** · {escape(_stats(progress))}")
    else:
        head.append(escape(_stats(progress)))
    if progress.files_touched:
        shown = progress.files_touched[:20]
        more = len(progress.files_touched) - len(shown)
        head.append(
            "**Files changed:** " + ", ".join(inline_code(f) for f in shown) + (f" and {more} more" if more else "")
        )
    denials = progress.permission_denials
    if denials:
        listed = [f"- {escape(d.tool_name)}: {inline_code(d.summary)}" for d in denials[:10]]
        head.append("**Not allowed:**\n" + "\n".join(listed))
    tail_parts: list[str] = []
    if progress.final is not None:
        budget = max(200, limit_bytes // 2)
        tail_parts.append("**Result:**\n" + fenced(truncate_bytes(progress.final.message, budget)))
    head_text = "\n\n".join(head)
    tail_text = "\n\n".join(tail_parts)
    items = [f"- {_ICONS[a.kind]} {escape(a.text)}" for a in progress.recent]
    while True:
        body = [head_text]
        if items:
            body.append("**Recent activity:**\n" + "\n".join(items))
        if tail_text:
            body.append(tail_text)
        text = "\n\n".join(body)
        if len(text.encode("utf-8")) <= limit_bytes or not items:
            break
        items.pop(0)
    if len(text.encode("utf-8")) > limit_bytes:  # only with a tiny limit: a plain cut, no open fence
        text = truncate_bytes(escape(_stats(progress)), limit_bytes)
    return text


# --------------------------------------------------------------------------- the runner


Outcome = Literal["success", "failure", "cancelled", "timed_out", "missing_agent"]


@dataclasses.dataclass(frozen=True)
class AgentResult:
    outcome: Outcome
    #: The agent's exit status as the remote script saw it; None if it never reported one.
    exit_code: int | None
    #: The agent's final text, or an explanation of what went wrong (masked, not escaped).
    final_message: str
    permission_denials: list[Denial]
    progress: Progress
    #: The last raw output lines (stderr, non-JSON stdout, DevPod errors), masked.
    tail: list[str]
    #: ``devpod ssh``'s own exit code (1 for any remote failure; CONTRACT §3).
    ssh_exit_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


async def _call(callback: Callable[[Progress], Awaitable[None] | None] | None, progress: Progress) -> None:
    if callback is None:
        return
    try:
        result = callback(progress)
        if inspect.isawaitable(result):
            await result
    except Exception:  # a failing progress update must not kill (or orphan) the agent
        log.exception("agent progress callback failed")


async def run_agent(
    dp: DevPodSettings,
    ws_id: str,
    prompt: str,
    *,
    settings: AgentSettings,
    masker: Masker,
    on_progress: Callable[[Progress], Awaitable[None] | None] | None = None,
    cancel: asyncio.Event | None = None,
    extra_env: Mapping[str, str] | None = None,
    user: str | None = None,
    workdir: str | None = None,
) -> AgentResult:
    """Run the agent in workspace ``ws_id`` with ``prompt`` and follow it to the end.

    ``on_progress(progress)`` (sync or async) runs after every stream event; throttle
    expensive updates in it. Setting ``cancel`` stops the agent (SIGINT, then SIGTERM,
    then SIGKILL); so does the time limit. Raises :class:`AgentPromptError` for a prompt
    that cannot be sent. ``extra_env`` values are secrets: they travel like the API key
    and are masked everywhere.
    """
    payload = stdin_payload(prompt, settings, extra_env)
    masker.add(settings.api_key)
    for value in (extra_env or {}).values():
        masker.add(value)
    argv = devpod.ssh_command_argv(dp, ws_id, remote_script(settings), user=user, workdir=workdir)
    progress = Progress(max_messages=settings.max_messages, max_tail_lines=settings.max_tail_lines, mask=masker.mask)
    pid: int | None = None
    rc: int | None = None
    missing: str | None = None

    async def on_line(line: LogLine) -> None:
        nonlocal pid, rc, missing
        if line.stream != "stdout":
            progress.add_raw(line.text or line.message)
            return
        marker = parse_marker(line.text)
        if marker is not None:
            kind, value = marker
            if kind == "pid" and pid is None:  # the first one is the script's; the agent comes after it
                pid = int(value)
            elif kind == "rc":
                rc = int(value)  # the last one wins: the script prints it after the agent ended
            elif kind == "missing" and pid is None:  # only the script speaks before the agent starts
                missing = settings.command[0]
            return
        event = parse_stream_line(line.text)
        if event is None:
            return
        progress.feed(event)
        await _call(on_progress, progress)

    # The runner's own limit is a backstop; the agent's time limit is enforced below so the
    # remote process can be stopped cleanly first.
    backstop = settings.timeout + settings.interrupt_grace + 3 * settings.term_grace + 3 * settings.signal_timeout
    main = asyncio.ensure_future(
        devpod.run(
            argv, settings=dp, timeout=backstop, masker=masker, on_line=on_line, stdin_data=payload,
            max_lines=20, max_line_bytes=settings.max_line_bytes, max_stdout_bytes=0,
        )
    )  # fmt: skip

    async def send(sig: Literal["INT", "TERM", "KILL"]) -> None:
        assert pid is not None
        try:
            res = await devpod.run(
                devpod.ssh_command_argv(dp, ws_id, signal_command(pid, sig), user=user, workdir=workdir),
                settings=dp, timeout=settings.signal_timeout, masker=masker,
            )  # fmt: skip
            if not res.ok:
                log.info("signal %s to agent pid %s in %s: %s", sig, pid, ws_id, "; ".join(res.errors(3)))
        except Exception:
            log.exception("could not signal the agent in %s", ws_id)

    async def stop() -> None:
        """SIGINT (the agent writes its final result), SIGTERM, SIGKILL, then the local side."""
        if pid is not None:  # else the agent has not started: dropping the connection is enough
            steps: list[tuple[Literal["INT", "TERM", "KILL"], float]] = [
                ("INT", settings.interrupt_grace), ("TERM", settings.term_grace), ("KILL", settings.term_grace),
            ]  # fmt: skip
            for sig, grace in steps:
                await send(sig)
                done, _ = await asyncio.wait({main}, timeout=grace)
                if done:
                    return
        main.cancel()

    stop_reason: Literal["cancelled", "timed_out"] | None = None
    cancel_wait = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    try:
        waiting = {main} | ({cancel_wait} if cancel_wait is not None else set())
        done, _ = await asyncio.wait(waiting, timeout=settings.timeout, return_when=asyncio.FIRST_COMPLETED)
        if main not in done:
            stop_reason = "cancelled" if cancel is not None and cancel.is_set() else "timed_out"
            await stop()
        try:
            run_result = await asyncio.shield(main)  # shielded: our own cancellation must not look like stop()'s
            ssh_exit: int | None = run_result.exit_code
            for ln in run_result.errors(5):
                if ln not in progress.tail:
                    progress.add_raw(ln)
        except asyncio.CancelledError:
            if not main.cancelled():
                raise
            ssh_exit = None
    except BaseException:
        # The caller was cancelled (shutdown): interrupt the agent so it is not orphaned, then go.
        if pid is not None and not main.done():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(send("INT")), settings.signal_timeout)
        main.cancel()
        with contextlib.suppress(BaseException):
            await main
        raise
    finally:
        if cancel_wait is not None:
            cancel_wait.cancel()
            with contextlib.suppress(BaseException):
                await cancel_wait

    final = progress.final
    tail = list(progress.tail)
    denials = progress.permission_denials
    if missing is not None:
        message = MISSING_AGENT_HELP.format(program=missing)
        return AgentResult("missing_agent", rc, message, denials, progress, tail, ssh_exit)
    if stop_reason == "cancelled":
        message = "The agent run was cancelled."
        if final is not None:
            message += f" It stopped cleanly ({final.terminal_reason or final.subtype})."
        elif rc is not None:
            message += f" It was stopped with exit code {rc}."
        return AgentResult("cancelled", rc, message, denials, progress, tail, ssh_exit)
    if stop_reason == "timed_out":
        message = f"The agent did not finish within {_duration(settings.timeout)} and was stopped."
        return AgentResult("timed_out", rc, message, denials, progress, tail, ssh_exit)
    if final is not None:
        return AgentResult("success" if final.ok else "failure", rc, final.message, denials, progress, tail, ssh_exit)
    if rc is not None:
        message = f"The agent exited with code {rc} without a final result."
    else:
        message = f"The connection to the environment failed (devpod ssh exited with {ssh_exit})."
    return AgentResult("failure", rc, message, denials, progress, tail, ssh_exit)


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"
