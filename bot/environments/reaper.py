"""Stopping idle environments, and deleting long-stopped ones.

Each repository sets ``idle_stop`` and ``delete_after`` in ``.github/devenv.yml``
(defaults 2 hours and 7 days; ``never`` turns either off).  An environment's last
activity is :func:`bot.environments.activity.last_active`: what counts (links, IDE
traffic, SSH through the gateway, agent runs, commands that act, pushes; never a
read such as ``status``) is decided there.  SSH sessions through ``devpod ssh`` on
the bot's host are not seen: the comment tells people an idle environment is
stopped and how to wake it.

The reaper never touches an environment that is busy (an operation running or
waiting) or that has an agent at work; it asks the manager for a ``stop`` or
``delete`` like anyone else, so the check run, comment and journal follow.

When to act is :func:`bot.environments.countdown.deadlines` (which also honours ``/devenv extend``),
the same function the sticky comment's countdown shows.  Each sweep also keeps that countdown true
within the write budget: it asks for a comment edit only when a deadline moved materially
(:func:`~bot.environments.countdown.moved_materially`), and once per idle period for the warning
shortly before an idle stop (:func:`~bot.environments.countdown.warning_due`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bot.environments import countdown
from bot.environments.journal import EnvRecord, PullInfo

log = logging.getLogger(__name__)

REAPER = "devenv-bot"


class Environments(Protocol):
    """What the reaper asks of the environment service (:class:`~bot.environments.manager.EnvironmentManager`)."""

    @property
    def records(self) -> Mapping[str, EnvRecord]: ...

    def busy(self, ws_id: str) -> bool: ...

    def request(self, info: PullInfo, kind: str, *, requested_by: str) -> Any: ...

    def show_countdown(self, ws_id: str, *, warn_for: float | None = None) -> None: ...


class IdleReaper:
    def __init__(self, manager: Environments, *, activity: Callable[[str], float | None] = lambda _: None,
                 busy: Callable[[EnvRecord], bool] = lambda _: False, clock: Callable[[], float] = time.time,
                 interval: float = 60.0, leader: Callable[[], bool] = lambda: True) -> None:
        self.manager = manager
        self.leader = leader  # replicas: only the leader sweeps (bot.replicas.leader)
        self.activity = activity
        self.busy = busy
        self.clock = clock
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def last_active(self, record: EnvRecord) -> float:
        return countdown.last_active(record, self.activity(record.ws_id))

    def sweep(self) -> list[tuple[str, str]]:
        """Ask for what is due now; returns [(ws_id, "stop" | "delete")].  Also edits the comment when
        its countdown moved materially, or to warn of a stop coming soon. Nothing on a replica that is not
        the leader."""
        if not self.leader():
            return []
        now = self.clock()
        asked: list[tuple[str, str]] = []
        for record in list(self.manager.records.values()):
            if self.manager.busy(record.ws_id) or self.busy(record):
                continue
            due = countdown.deadlines(record, self.last_active(record))
            if due.stop_at is not None and now > due.stop_at:
                asked.append((record.ws_id, "stop"))
            elif due.delete_at is not None and now > due.delete_at:
                asked.append((record.ws_id, "delete"))
            else:
                self._keep_true(record, due, now)
        for ws_id, kind in asked:
            record = self.manager.records[ws_id]
            log.info("%s of %s: idle for %.0f s", kind, ws_id, now - self.last_active(record))
            self.manager.request(PullInfo.of(record), kind, requested_by=f"{REAPER} (idle)")
        return asked

    def _keep_true(self, record: EnvRecord, due: countdown.Deadlines, now: float) -> None:
        """One comment edit when the warning is due (once per idle period) or a deadline moved materially."""
        if countdown.warning_due(record, due.stop_at, now):
            log.info("warning that %s stops at %.0f unless used", record.ws_id, due.stop_at or 0)
            self.manager.show_countdown(record.ws_id, warn_for=due.stop_at)
        elif record.comment_id is not None and (countdown.moved_materially(record.stop_at, due.stop_at, now)
                                                or countdown.moved_materially(record.delete_at, due.delete_at, now)):
            self.manager.show_countdown(record.ws_id)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="idle-reaper")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.sweep()
            except Exception:
                log.exception("the idle sweep failed; trying again in %.0f s", self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

