"""Claude Code's ``--output-format stream-json``, parsed line by line into :class:`AgentEvent`.

All pure, and tested on the real samples in ``../shared/links-agent/claude-stream-samples``
(facts in ``../shared/links-agent/FACTS.md`` §D). :func:`parse_stream_line` never fails: a
line that is not a JSON object with a ``type`` is ``raw``, an unknown type is ``other``.
Success is decided by the final ``result`` frame's ``is_error`` (auth and API failures
end with ``subtype: success``), never by an exit code alone: see :attr:`FinalResult.ok`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal

__all__ = [
    "FILE_TOOLS",
    "AgentEvent",
    "Denial",
    "EventKind",
    "FinalResult",
    "ToolResult",
    "ToolUse",
    "one_line",
    "parse_stream_line",
    "summarize_tool_input",
]

#: Tools whose input names a file the agent writes.
FILE_TOOLS: Mapping[str, str] = {
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "Write": "file_path",
    "NotebookEdit": "notebook_path",
}


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


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line (runs of white space become one space), cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def summarize_tool_input(name: str, tool_input: object) -> tuple[str, tuple[str, ...]]:
    """A one-line summary of a tool call's input, and the files it writes."""
    if not isinstance(tool_input, dict):
        return one_line(json.dumps(tool_input, ensure_ascii=False)), ()
    files: tuple[str, ...] = ()
    if name in FILE_TOOLS and isinstance(tool_input.get(FILE_TOOLS[name]), str):
        files = (tool_input[FILE_TOOLS[name]],)
    for key in ("command", "file_path", "notebook_path", "path", "pattern", "url", "query", "description", "prompt"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return one_line(value), files
    if name == "TodoWrite" and isinstance(tool_input.get("todos"), list):
        return f"{len(tool_input['todos'])} to-do items", files
    return one_line(json.dumps(tool_input, ensure_ascii=False, sort_keys=True)), files


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
        return _system_event(obj, subtype)
    raw_message = obj.get("message")
    content = raw_message.get("content") if isinstance(raw_message, dict) else None
    blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    if kind == "assistant":
        return _assistant_event(obj, blocks)
    if kind == "user":
        return _user_event(content, blocks)
    return AgentEvent("other", subtype=kind)


def _system_event(obj: dict[str, Any], subtype: str | None) -> AgentEvent:
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


def _texts(blocks: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str))


def _assistant_event(obj: dict[str, Any], blocks: list[dict[str, Any]]) -> AgentEvent:
    uses = []
    for b in blocks:
        if b.get("type") == "tool_use":
            name = str(b.get("name") or "?")
            summary, files = summarize_tool_input(name, b.get("input"))
            uses.append(ToolUse(str(b.get("id") or ""), name, summary, files))
    error = obj.get("error") if obj.get("is_api_error_message") or obj.get("error") else None
    return AgentEvent("assistant", texts=_texts(blocks), tool_uses=tuple(uses), error=str(error) if error else None)


def _user_event(content: object, blocks: list[dict[str, Any]]) -> AgentEvent:
    if isinstance(content, str):
        return AgentEvent("user", texts=(content,))
    results = tuple(
        ToolResult(str(b.get("tool_use_id") or ""), _content_text(b.get("content")), b.get("is_error") is True)
        for b in blocks
        if b.get("type") == "tool_result"
    )
    return AgentEvent("user", texts=_texts(blocks), tool_results=results)
