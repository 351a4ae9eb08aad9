"""What counts as use of an environment, and when it was last used: the idle reaper's clock.

Design.  Every kind of use goes through :meth:`Activity.note` with its :class:`Source`:

* ``ide`` / ``preview``: a browser request that passed the access check of the IDE's or an app
  port's link (forward auth sees every HTTP request but only the handshake of a WebSocket; the
  bot's own preview proxy also notes a WebSocket whose browser sends frames, at most once a minute);
* ``ssh``: a session through the bot's SSH gateway (at open, every minute while open, at close);
* ``agent``: an agent run, at its start and at its end (while it runs the reaper leaves it alone);
* ``command``: a command or button that acts (:data:`ACTING`: up, recreate, reset, extend), when
  asked and when it ends; ``push``: a push that syncs the environment (``sync``);
* ``stopped``: the end of a stop.  It does not keep anything running (a stopped environment has
  no idle stop); it starts the clock of ``delete_after``, which counts from the stop or from a
  later use, whichever is later.

Read-only commands (``status``, ``logs``, ``help``) and the bot's own stops and deletes note
nothing, so reading an environment's state never keeps it alive.

The last use is kept in the record (``active_at``, ``active_via``), so it survives a restart.
The in-memory record is always current (the next save of the record for any reason writes it);
a save *because of* activity happens at most once per workspace per ``save_every`` seconds
(60 by default), so a busy IDE never causes a write storm.  At most that much activity is lost
when the bot is killed; a clean shutdown saves what is unsaved (:meth:`Activity.flush`).

:func:`last_active` is the one answer to "when was this environment last used": the reaper and
the countdown read it.  A record written before activity was kept (``active_at`` 0) falls back
to its last action's time, as the bot did before.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from typing import Protocol

from bot.environments.journal import EnvRecord

log = logging.getLogger(__name__)

__all__ = ["ACTING", "Activity", "Source", "last_active", "source_of"]


class Source(enum.StrEnum):
    IDE = "ide"
    PREVIEW = "preview"
    SSH = "ssh"
    AGENT = "agent"
    COMMAND = "command"
    PUSH = "push"
    STOPPED = "stopped"


#: Operations that act on an environment for someone: asking for one (and its end) is use.
ACTING = frozenset({"up", "recreate", "reset", "extend"})


def source_of(kind: str) -> Source | None:
    """The source an operation of ``kind`` counts as, or None (``status``, ``stop``, ``delete``: no use)."""
    if kind == "sync":
        return Source.PUSH
    return Source.COMMAND if kind in ACTING else None


def last_active(record: EnvRecord, also: float | None = None) -> float:
    """When ``record``'s environment was last used (``also``: one more time to take into account)."""
    seen = record.active_at
    if not seen:  # a record from before activity was kept: its last action, as before
        seen = record.updated_at if record.last_action is None else record.last_action.at
    return max(seen, also or 0.0)


class RecordStore(Protocol):
    """What :class:`Activity` needs of :class:`~bot.environments.journal.Records`."""

    def get(self, ws_id: str) -> EnvRecord | None: ...

    def save(self, record: EnvRecord) -> None: ...


class Activity:
    """Notes the use of environments in their records, saving them at most once per ``save_every`` s each."""

    def __init__(self, records: RecordStore, clock: Callable[[], float] = time.time, *,
                 save_every: float = 60.0) -> None:
        self.records = records
        self.clock = clock
        self.save_every = save_every
        self._saved: dict[str, float] = {}  # ws id -> when activity last caused a save
        self._unsaved: set[str] = set()

    def note(self, ws_id: str, source: Source | str, when: float | None = None) -> None:
        """``ws_id`` was used just now (or at ``when``) through ``source``.  Cheap: call it freely."""
        record = self.records.get(ws_id)
        if record is None:
            return
        when = self.clock() if when is None else when
        if when < record.active_at:
            return
        record.active_at, record.active_via = when, str(source)
        now = self.clock()
        if now - self._saved.get(ws_id, float("-inf")) < self.save_every:
            self._unsaved.add(ws_id)
            return
        self._save(record, now)

    def _save(self, record: EnvRecord, now: float) -> None:
        self._saved[record.ws_id] = now
        self._unsaved.discard(record.ws_id)
        try:
            self.records.save(record)
        except OSError:
            log.exception("could not save the activity of %s; kept in memory", record.ws_id)

    def flush(self) -> None:
        """Save every record whose last activity is not saved yet (at shutdown)."""
        now = self.clock()
        for ws_id in sorted(self._unsaved):
            record = self.records.get(ws_id)
            if record is not None:
                self._save(record, now)
        self._unsaved.clear()

    def last(self, ws_id: str) -> tuple[float, str] | None:
        """When and through what ``ws_id`` was last used, as far as noted (None: never)."""
        record = self.records.get(ws_id)
        if record is None or not record.active_at:
            return None
        return record.active_at, record.active_via

    def forget(self, ws_id: str) -> None:
        self._saved.pop(ws_id, None)
        self._unsaved.discard(ws_id)
