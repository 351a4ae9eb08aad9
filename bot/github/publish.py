"""Latest-state-wins publishing of check runs and comments.

GitHub writes are scarce (about 80 content-creating requests a minute per
installation), and an environment changes phase faster than that.  So nobody
writes "the check run is now X" directly: they *mark* the check run or
comment as changed, and one writer per target renders the newest state when it
gets to write.  Ten phase changes while a write is in flight become one write.
A target is written at most once per ``min_interval`` seconds unless someone
asks for a :meth:`flush` (final states are flushed at once).

A write that fails (GitHub down after the client's own retries) is tried again after
``retry_delays`` (bounded: then it is logged and dropped, and whoever needs it durably keeps it
elsewhere, e.g. the journal's unpublished outcome).  A newer mark replaces the pending retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

Write = Callable[[], Awaitable[None]]
Sleep = Callable[[float], Awaitable[object]]

#: waits before the 2nd … 5th try of a failed write: about a minute in all
RETRY_DELAYS = (4.0, 8.0, 16.0, 32.0)


class _Target:
    def __init__(self) -> None:
        self.write: Write | None = None
        self.dirty = False
        self.task: asyncio.Task[None] | None = None
        self.urgent = asyncio.Event()
        self.last = 0.0
        self.not_before = 0.0


class Publisher:
    def __init__(self, *, min_interval: float = 3.0, clock: Callable[[], float] | None = None,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS, sleep: Sleep = asyncio.sleep) -> None:
        self.min_interval = min_interval
        self.retry_delays = retry_delays
        self._sleep = sleep
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._targets: dict[Hashable, _Target] = {}
        # When each key was last written; kept after its writer ends, or a write after a quiet
        # spell would not wait for the interval (pruned once older than the interval).
        self._last: dict[Hashable, float] = {}
        self.writes = 0

    def note_write(self, key: Hashable) -> None:
        """Count a write made elsewhere (e.g. the check run's creation) against ``key``'s interval."""
        self._last[key] = self._clock()

    def mark(self, key: Hashable, write: Write, *, urgent: bool = False, delay: float = 0.0) -> None:
        """Ask for ``write`` to run soon; it replaces any write still waiting for ``key``.

        ``delay``: write no sooner than this many seconds from now, unless a later mark is urgent
        or the key is flushed (a state that may well be replaced soon need not be written at all).
        """
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = _Target()
            target.last = self._last.get(key, 0.0)
            self._prune()
        target.write = write
        if delay > 0 and not target.dirty:
            target.not_before = self._clock() + delay
        target.dirty = True
        if urgent:
            target.urgent.set()
        if target.task is None or target.task.done():
            target.task = asyncio.get_running_loop().create_task(self._run(key, target), name=f"publish-{key}")

    async def _run(self, key: Hashable, target: _Target) -> None:
        failed: Write | None = None  # the write that failed last, and how many times in a row
        failures = 0
        while target.dirty:
            wait = max(target.last + self.min_interval, target.not_before) - self._clock()
            if wait > 0 and not target.urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(target.urgent.wait(), wait)
            target.urgent.clear()
            target.dirty = False
            target.not_before = 0.0
            write = target.write
            target.last = self._last[key] = self._clock()
            if write is None:
                continue
            try:
                await write()
                self.writes += 1
            except Exception:
                failures = failures + 1 if write is failed else 1
                failed = write
                await self._retry_later(key, target, write, failures)
        if self._targets.get(key) is target and not target.dirty:
            del self._targets[key]

    async def _retry_later(self, key: Hashable, target: _Target, write: Write, failures: int) -> None:
        """Wait, then let the loop try ``write`` again, unless a newer state came (it goes instead)."""
        if failures > len(self.retry_delays):
            log.exception("publishing %s failed %d times; giving up", key, failures)
            return
        delay = self.retry_delays[failures - 1]
        log.warning("publishing %s failed (try %d), retrying in %.1fs", key, failures, delay, exc_info=True)
        await self._sleep(delay)
        if not target.dirty:  # no newer state meanwhile: the failed one is still the newest
            target.write = write
            target.dirty = True
        target.urgent.set()  # the back-off was the wait

    def _prune(self) -> None:
        if len(self._last) > 1024:
            horizon = self._clock() - self.min_interval
            self._last = {k: t for k, t in self._last.items() if t > horizon or k in self._targets}

    async def flush(self, key: Hashable) -> None:
        """Write the newest state of ``key`` now and wait until it is written."""
        target = self._targets.get(key)
        if target is None or target.task is None:
            return
        target.urgent.set()
        await asyncio.shield(target.task)

    def tasks(self) -> list[asyncio.Task[None]]:
        return [t.task for t in self._targets.values() if t.task is not None and not t.task.done()]

    async def close(self, timeout: float = 10.0) -> None:
        tasks = [t.task for t in self._targets.values() if t.task is not None]
        for t in self._targets.values():
            t.urgent.set()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
