"""The output of each environment's last DevPod operation, kept for ``/devenv logs``.

Design.  The runner (:func:`bot.devpod.run`) masks every line before any callback sees it, and
an operation's ``on_line`` sees them all; :meth:`OperationLogs.watch` wraps that callback and
keeps the last :data:`KEPT_LINES` lines of the operation (up, recreate, reset, sync, stop,
delete: a ``status`` is a read and does not replace them).  They live in memory only: after a
restart the reply says that no output is kept yet.  One small deque per workspace, dropped when
the record is forgotten.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from bot import devpod
from bot.commands.verbs import LOGS_MAX_LINES

__all__ = ["KEPT_LINES", "OperationLog", "OperationLogs"]

T = TypeVar("T")

#: Lines kept per workspace: as many as ``/devenv logs`` may ask for.
KEPT_LINES = LOGS_MAX_LINES


@dataclasses.dataclass
class OperationLog:
    """The last lines (masked, oldest first) of one operation of kind ``kind``, begun at ``began``."""

    kind: str
    began: float
    lines: deque[str] = dataclasses.field(default_factory=lambda: deque(maxlen=KEPT_LINES))
    total: int = 0  # lines seen, kept or not


def shown(line: devpod.LogLine) -> str:
    """One line as a person reads it: ``[level] message`` for DevPod's JSON log records, else the text."""
    return f"[{line.level}] {line.message}" if line.level else (line.text or line.message)


class OperationLogs:
    """The last operation's output of each workspace."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._last: dict[str, OperationLog] = {}

    def watch(self, ws_id: str, kind: str, on_line: Callable[[devpod.LogLine], T]) -> Callable[[devpod.LogLine], T]:
        """``on_line``, also keeping each line as the output of ``ws_id``'s new operation ``kind``.

        What ``on_line`` returns is handed back (the runner awaits it when it is awaitable)."""
        log = self._last[ws_id] = OperationLog(kind, self.clock())

        def keep(line: devpod.LogLine) -> T:
            log.lines.append(shown(line))
            log.total += 1
            return on_line(line)

        return keep

    def last(self, ws_id: str) -> OperationLog | None:
        return self._last.get(ws_id)

    def forget(self, ws_id: str) -> None:
        self._last.pop(ws_id, None)
