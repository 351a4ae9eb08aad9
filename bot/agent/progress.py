"""The rolling view of an agent run: :class:`Progress` follows the events, :func:`render_progress` shows it.

A run can last half an hour and print megabytes; what a check run or comment shows must
stay small. :class:`Progress` keeps counters, the files the agent changed, the tool calls
it was refused, the last few messages and raw lines (all bounded, all masked) and the
final result. :func:`render_progress` turns it into Markdown that fits a byte budget,
with everything the agent or the user wrote escaped or fenced.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Literal

from bot.agent.stream import AgentEvent, Denial, FinalResult, one_line
from bot.text.markdown import escape, fenced, inline_code, truncate_bytes

__all__ = ["Activity", "Progress", "render_progress"]

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
        return one_line(self.mask(text), limit)

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
        """Take one event into the view."""
        self.events += 1
        if event.kind == "raw":
            self.add_raw(event.text)
        elif event.kind == "init":
            self.info = dict(event.info)
        elif event.kind == "assistant":
            self._assistant(event)
        elif event.kind == "user":
            self._user(event)
        elif event.kind == "permission_denied":
            summary = self._tool_summaries.get(event.tool_use_id or "") or self._short(event.text, 200)
            self.denials.append(Denial(event.tool_name or "?", summary, event.tool_use_id))
            self.recent.append(Activity("denied", f"{event.tool_name}: {self._short(event.text, 200)}"))
        elif event.kind == "system" and event.subtype == "api_retry":
            self.recent.append(Activity("note", self._short(event.text)))
        elif event.kind == "result" and event.final is not None:
            self.final = self._masked(event.final)

    def _assistant(self, event: AgentEvent) -> None:
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

    def _user(self, event: AgentEvent) -> None:
        for res in event.tool_results:
            files = self._pending_files.pop(res.tool_use_id, ())
            if not res.is_error:  # only a write that succeeded touched the file
                for f in files:
                    shown = self._file(f)
                    if shown not in self.files_touched:
                        self.files_touched.append(shown)
            name = self._tool_names.get(res.tool_use_id, "tool")
            self.recent.append(Activity("error" if res.is_error else "ok", f"{name}: {self._short(res.text, 200)}"))
        for text in event.texts:
            self.recent.append(Activity("note", self._short(text)))

    def _masked(self, final: FinalResult) -> FinalResult:
        return dataclasses.replace(
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
