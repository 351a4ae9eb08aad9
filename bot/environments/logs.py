"""``/devenv logs [lines]``: the reply with the end of the last DevPod operation's output and of the
workspace container's log.

Design.  Both logs are masked here with the bot's :class:`~bot.devpod.Masker` (the one that knows
the tokens the bot minted, plus the shapes of GitHub tokens and credentials in URLs and headers):
DevPod's lines were masked as they were read, the pod's log never was, and a workspace runs the
PR's code, which may print anything.  The reply is one comment with each log in a collapsed
``<details>`` block, bounded: GitHub refuses a comment body over 65,536 characters, so each line
is cut at :data:`MAX_LINE` characters and each log keeps its newest lines within its share of
:data:`MAX_BODY`, saying how many older lines were cut.  Nothing here writes to GitHub.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from bot.cluster.podlog import PodLog, workspace_log
from bot.environments.journal import EnvRecord
from bot.environments.oplog import OperationLog
from bot.environments.states import State
from bot.text.templating import render

__all__ = ["MAX_BODY", "MAX_LINE", "Section", "logs_reply"]

#: GitHub's limit on a comment body is 65,536 characters; the reply stays below it with room to spare.
MAX_BODY = 60_000
#: A longer line is cut (its end replaced by ``…``), so one line cannot take a whole log's room.
MAX_LINE = 1_000


@dataclasses.dataclass(frozen=True)
class Section:
    """One log as the reply shows it: its newest lines, and how many older ones were left out to fit."""

    lines: tuple[str, ...]
    cut: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def fit(lines: Sequence[str], room: int) -> Section:
    """The newest of ``lines`` (each cut to :data:`MAX_LINE`) whose total length stays within ``room``."""
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        line = line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"
        if used + len(line) + 1 > room:
            break
        kept.append(line)
        used += len(line) + 1
    return Section(tuple(reversed(kept)), len(lines) - len(kept))


def masked(mask: Callable[[], Callable[[str], str]], text: str) -> list[str]:
    """``text``'s lines through one line masker (which also hides a secret split across two lines)."""
    mask_line = mask()
    return [mask_line(line) for line in text.splitlines()]


async def logs_reply(*, login: str, prefix: str, lines: int, record: EnvRecord | None, op_log: OperationLog | None,
                     kube: Any, label_prefix: str, mask: Callable[[], Callable[[str], str]]) -> str:
    """The reply's Markdown.  ``record`` None (or never built, or deleted, with no output kept): the PR has no
    environment.  ``kube``: a
    :class:`~bot.cluster.kube.KubeApi` on the workspaces' namespace, or None without cluster access."""
    values: dict[str, Any] = {"login": login, "prefix": prefix, "lines": lines, "record": record, "op_log": op_log,
                              "no_environment": False}
    if op_log is None and (record is None or record.state in (State.NONE, State.DELETED)):
        return render("logs_reply.md.j2", **{**values, "no_environment": True})
    pod = await workspace_log(kube, label_prefix, record.ws_id, lines) if record is not None \
        else PodLog(None, None, "the pull request has no environment")
    op_lines = masked(mask, "\n".join(list(op_log.lines)[-lines:])) if op_log is not None else []
    pod_lines = masked(mask, pod.text)[-lines:] if pod.text is not None else []
    frame = len(render("logs_reply.md.j2", **values, op=Section(()), pod=pod, pod_section=Section(())))
    room = (MAX_BODY - frame) // 2 - 2 * (MAX_LINE + 1)  # the fences may grow with the backticks a log holds
    return render("logs_reply.md.j2", **values, op=fit(op_lines, room), pod=pod, pod_section=fit(pod_lines, room))
