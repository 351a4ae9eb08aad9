"""The output of each environment's last DevPod operation, kept for ``/devenv logs``.

Design.  The runner (:func:`bot.devpod.run`) masks every line before any callback sees it, and
an operation's ``on_line`` sees them all; :meth:`OperationLogs.watch` wraps that callback and
keeps the last :data:`KEPT_LINES` lines of the operation (up, recreate, reset, sync, stop,
delete: a ``status`` is a read and does not replace them).  One small deque per workspace.

Durable: with a directory (``<state dir>/oplogs``), each workspace's log is also a small JSON file
there (``<ws id>.json``, mode 0600, at most :data:`KEPT_LINES` lines, each at most
:data:`MAX_LINE_CHARS` characters), replaced atomically (:func:`bot.core.files.write_atomic`):
while an operation runs at most once every ``save_every`` seconds, and always at its end
(:meth:`OperationLogs.save`), so ``/devenv logs`` still answers after a restart, and after a kill
loses at most a few seconds of output.  The lines are stored as masked as they were read.  A file
that cannot be read is ignored (the reply says no output is kept); :meth:`forget` deletes it with
the record.

The runner keeps its own 200-line tail (:attr:`bot.devpod.RunResult.lines`) for the failure
summary of the check run; it is not merged with this buffer: the runner sits below the environment
service and knows no workspace, and its tail is per process run, while this one is per operation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bot import devpod
from bot.commands.verbs import LOGS_MAX_LINES
from bot.core.files import write_atomic

__all__ = ["KEPT_LINES", "OperationLog", "OperationLogs"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Lines kept per workspace: as many as ``/devenv logs`` may ask for.
KEPT_LINES = LOGS_MAX_LINES
#: A line kept on disk is cut to this many characters, so a file stays small (500 lines, under 1 MB).
MAX_LINE_CHARS = 2_000


@dataclasses.dataclass
class OperationLog:
    """The last lines (masked, oldest first) of one operation of kind ``kind``, begun at ``began``."""

    kind: str
    began: float
    lines: deque[str] = dataclasses.field(default_factory=lambda: deque(maxlen=KEPT_LINES))
    total: int = 0  # lines seen, kept or not

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "began": self.began, "total": self.total,
                           "lines": [line[:MAX_LINE_CHARS] for line in self.lines]}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> OperationLog:
        data = json.loads(text)
        lines = [str(line)[:MAX_LINE_CHARS] for line in data["lines"]][-KEPT_LINES:]
        return cls(str(data["kind"]), float(data["began"]), deque(lines, maxlen=KEPT_LINES), int(data["total"]))


def shown(line: devpod.LogLine) -> str:
    """One line as a person reads it: ``[level] message`` for DevPod's JSON log records, else the text."""
    return f"[{line.level}] {line.message}" if line.level else (line.text or line.message)


class OperationLogs:
    """The last operation's output of each workspace; kept in ``directory`` too when given."""

    def __init__(self, clock: Callable[[], float], directory: Path | None = None, *, save_every: float = 5.0) -> None:
        self.clock = clock
        self.directory = directory
        self.save_every = save_every
        self._last: dict[str, OperationLog] = {}
        self._saved_at: dict[str, float] = {}  # ws id -> when its file was last written

    def watch(self, ws_id: str, kind: str, on_line: Callable[[devpod.LogLine], T]) -> Callable[[devpod.LogLine], T]:
        """``on_line``, also keeping each line as the output of ``ws_id``'s new operation ``kind``.

        What ``on_line`` returns is handed back (the runner awaits it when it is awaitable)."""
        log_ = self._last[ws_id] = OperationLog(kind, self.clock())
        self.save(ws_id)  # the new operation replaces the old one's file at once

        def keep(line: devpod.LogLine) -> T:
            log_.lines.append(shown(line))
            log_.total += 1
            if self.clock() - self._saved_at.get(ws_id, 0.0) >= self.save_every:
                self.save(ws_id)
            return on_line(line)

        return keep

    def save(self, ws_id: str) -> None:
        """Write ``ws_id``'s log to its file now (an operation's end; nothing without a directory)."""
        oplog = self._last.get(ws_id)
        if self.directory is None or oplog is None:
            return
        self._saved_at[ws_id] = self.clock()
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(self._path(ws_id), oplog.to_json())
        except OSError as exc:
            log.warning("could not keep the output of %s's %s on disk: %s", ws_id, oplog.kind, exc)

    def last(self, ws_id: str) -> OperationLog | None:
        if ws_id not in self._last and self.directory is not None:
            loaded = self._load(ws_id)
            if loaded is not None:
                self._last[ws_id] = loaded
        return self._last.get(ws_id)

    def _load(self, ws_id: str) -> OperationLog | None:
        try:
            return OperationLog.from_json(self._path(ws_id).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("the kept output of %s cannot be read (%s); ignored", ws_id, exc)
            return None

    def _path(self, ws_id: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{ws_id}.json"

    def forget(self, ws_id: str) -> None:
        self._last.pop(ws_id, None)
        self._saved_at.pop(ws_id, None)
        if self.directory is not None:
            self._path(ws_id).unlink(missing_ok=True)
