"""Readiness that means ready: named checks that must all pass before ``/readyz`` answers 200.

Liveness (``/healthz``) only says the process answers. Readiness says it can do its work: DevPod is
there at the pinned version with its provider prepared, the App's credentials work against GitHub,
and (when links are on) the Kubernetes API answers. A check that fails is tried again in the
background, sooner at first, so a pod becomes ready by itself once the operator fixes the cause;
passing checks are re-run now and then, so readiness also goes away when a dependency does.
``/readyz`` then answers 503 with every reason, each naming what to fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: A check returns None when all is well, else one sentence saying what is wrong and what to do.
Check = Callable[[], Awaitable[str | None]]


@dataclasses.dataclass
class _Entry:
    check: Check
    problem: str | None = "not checked yet"


class Readiness:
    def __init__(self, *, retry: float = 5.0, recheck: float = 60.0, timeout: float = 20.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.retry, self.recheck, self.timeout = retry, recheck, timeout
        self._sleep = sleep
        self._checks: dict[str, _Entry] = {}
        self._task: asyncio.Task[None] | None = None
        self.started = False  # set once start-up has finished, cleared when shutting down

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = _Entry(check)

    def problems(self) -> dict[str, str]:
        """What keeps the bot from being ready, by check name (empty: ready)."""
        found = {name: e.problem for name, e in self._checks.items() if e.problem is not None}
        if not self.started:
            found["start-up"] = "starting, or shutting down"
        return found

    async def run_once(self) -> dict[str, str]:
        await asyncio.gather(*(self._run(name, entry) for name, entry in self._checks.items()))
        return self.problems()

    async def _run(self, name: str, entry: _Entry) -> None:
        before = entry.problem
        try:
            entry.problem = await asyncio.wait_for(entry.check(), self.timeout)
        except TimeoutError:
            entry.problem = f"the {name} check did not finish within {self.timeout:g} s"
        except Exception as exc:  # a check that crashes is a failed check, never a crashed bot
            log.exception("readiness check %s failed", name)
            entry.problem = f"the {name} check failed ({exc.__class__.__name__})"
        if entry.problem != before:
            if entry.problem is None:
                log.info("ready: %s", name)
            else:
                log.warning("not ready: %s: %s", name, entry.problem)

    def start(self) -> None:
        """Keep checking in the background: every ``retry`` s while something fails, else every ``recheck`` s."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="readiness")

    async def _loop(self) -> None:
        while True:
            failing = any(e.problem is not None for e in self._checks.values())
            await self._sleep(self.retry if failing else self.recheck)
            await self.run_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
