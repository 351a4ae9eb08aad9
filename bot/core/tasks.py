"""Background work that the webhook endpoint hands off, tracked so shutdown can drain it; and the
shutdown's deadline, which blocking calls (the synchronous Kubernetes client's, in threads) bound
their timeouts by, so none of them keeps the process alive past its grace."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class ShutdownClock:
    """When the process began to shut down and how long it may take (:data:`SHUTDOWN`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._deadline: float | None = None

    def begin(self, grace: float) -> None:
        """Shutdown begins now and must be over in ``grace`` seconds (the first call counts)."""
        if self._deadline is None:
            self._deadline = self._clock() + grace

    def reset(self) -> None:
        """Serving again in the same process (``devenv-bot serve`` restarts itself after setup)."""
        self._deadline = None

    def remaining(self) -> float | None:
        """Seconds left before the process must be gone; None while it is not shutting down."""
        return None if self._deadline is None else max(0.0, self._deadline - self._clock())


#: The process's shutdown: ``devenv-bot serve`` begins it on SIGTERM (tests that run the app in
#: their own process never do, so they share nothing through it).
SHUTDOWN = ShutdownClock()


class TaskTracker:
    """Starts tasks, keeps a reference to each until it ends, and drains them on shutdown."""

    def __init__(self, on_change=None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_change = on_change
        self.accepting = True

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        self._changed()
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._changed()
        if not task.cancelled() and task.exception() is not None:
            # Handlers log their own errors; this is the last line of defence.
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(len(self._tasks))

    async def drain(self, grace: float) -> bool:
        """Stop accepting, wait up to ``grace`` seconds, cancel what is left. True if all finished."""
        self.accepting = False
        pending = set(self._tasks)
        if pending:
            log.info("draining %d background task(s), up to %.0fs", len(pending), grace)
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("cancelled %d task(s) still running after the grace period", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)
        return not pending

    async def join(self) -> None:
        """Wait for every task, including those started while waiting (tests, `receive`)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def every(interval: float, step: Callable[[], object], what: str) -> None:
    """Run ``step`` every ``interval`` seconds until cancelled; a failed round is logged, not fatal."""
    while True:
        await asyncio.sleep(interval)
        try:
            step()
        except Exception:
            log.exception("%s failed; trying again in %.0f s", what, interval)
