"""Queueing, apart from processing: one slot per workspace, coalescing, and the fair DevPod limiter.

Each workspace has one *slot*: the operations waiting for it and at most one running.  A worker
task per busy slot takes them in order and hands each to an injected :class:`Executor`; it
knows nothing of DevPod, GitHub or states.  Requests coalesce: the same kind waiting twice
becomes one (the newest head wins, and every command comment that asked still hears back), so
ten quick pushes cost at most two DevPod runs; a ``delete`` drops whatever waits and cancels
whatever runs.  A ``sync`` waits for a quiet moment (``DEVENV_SYNC_DEBOUNCE``) before it is
taken, on an injected clock and sleeper, so pushes in a burst are built once, at the last head.

The :class:`FairLimiter` caps concurrent DevPod processes over all workspaces
(``DEVENV_MAX_CONCURRENT_OPS``); the executor holds it while DevPod runs, and waiters are served
first come, first served, each told how many wait before it ("queued, 3 ahead").  How many wait
and how long each waited go to the metrics (``devenv_queue_depth``, ``devenv_queue_wait_seconds``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from bot.environments.journal import Op
from bot.environments.telemetry import EnvironmentMetrics

log = logging.getLogger(__name__)


class FairLimiter:
    """A FIFO semaphore that tells each waiter how many are ahead of it.

    ``on_depth`` hears how many wait whenever that changes; ``on_wait`` how long each acquirer
    waited, from asking to getting a slot (0 when one was free), on the monotonic ``timer``.
    """

    def __init__(self, limit: int, *, on_depth: Callable[[int], None] | None = None,
                 on_wait: Callable[[float], None] | None = None,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.running = 0
        self.on_depth = on_depth
        self.on_wait = on_wait
        self.timer = timer
        self._waiters: collections.deque[tuple[asyncio.Future[None], Callable[[int], None]]] = collections.deque()

    async def acquire(self, on_position: Callable[[int], None]) -> None:
        asked = self.timer()
        if self.running < self.limit and not self._waiters:
            self.running += 1
            self._waited(asked)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((fut, on_position))
        self._depth()
        on_position(len(self._waiters) - 1)  # how many wait before it (0: next in line)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed the slot just as we were cancelled: pass it on
            else:
                self._remove(fut)
            raise
        self._waited(asked)

    def _waited(self, asked: float) -> None:
        if self.on_wait is not None:
            self.on_wait(self.timer() - asked)

    def _depth(self) -> None:
        if self.on_depth is not None:
            self.on_depth(len(self._waiters))

    @contextlib.asynccontextmanager
    async def hold(self, on_position: Callable[[int], None]) -> AsyncIterator[None]:
        await self.acquire(on_position)
        try:
            yield
        finally:
            self.release()

    def _remove(self, fut: asyncio.Future[None]) -> None:
        self._waiters = collections.deque((f, cb) for f, cb in self._waiters if f is not fut)
        self._announce()

    def release(self) -> None:
        self.running -= 1
        while self._waiters and self.running < self.limit:
            fut, _ = self._waiters.popleft()
            if not fut.done():
                self.running += 1
                fut.set_result(None)
        self._announce()

    def _announce(self) -> None:
        self._depth()
        for i, (_, cb) in enumerate(self._waiters):
            cb(i)


class Executor(Protocol):
    """What the queue calls; the environment service implements it."""

    def taken(self, ws_id: str, op: Op, pending: list[Op]) -> None:
        """``op`` leaves the queue to run; ``pending`` is what still waits."""

    def dropped(self, ws_id: str, op: Op, why: str) -> None:
        """``op`` will never run (a delete superseded it)."""

    async def execute(self, ws_id: str, op: Op) -> None:
        """Run ``op`` to its conclusion.  Cancelled when a delete supersedes it or on shutdown."""


@dataclasses.dataclass
class _Slot:
    pending: collections.deque[Op] = dataclasses.field(default_factory=collections.deque)
    running: Op | None = None
    task: asyncio.Task[None] | None = None  # the worker draining ``pending``
    op_task: asyncio.Task[Any] | None = None  # the executor's run of ``running``


def _ids(comment_id: int | None) -> list[int]:
    return [] if comment_id is None else [comment_id]


class WorkspaceQueue:
    """Per-workspace slots feeding an :class:`Executor`."""

    def __init__(self, executor: Executor, *, max_concurrent: int = 4, sync_debounce: float = 5.0,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 metrics: EnvironmentMetrics | None = None) -> None:
        self.executor = executor
        self.limiter = FairLimiter(max_concurrent, on_depth=metrics.queue_depth if metrics else None,
                                   on_wait=metrics.queue_waited if metrics else None)
        self.sync_debounce = sync_debounce
        self.clock = clock
        self.sleep = sleep
        self.slots: dict[str, _Slot] = {}
        #: Set by :meth:`drain` when it cancels work: the executor then leaves its op to the journal.
        self.shutting_down = False

    # ------------------------------------------------------------------ asking
    def put(self, ws_id: str, op: Op) -> bool:
        """Queue ``op``; False when it merged into the same operation already running (nothing new waits)."""
        slot = self.slots.setdefault(ws_id, _Slot())
        if op.kind == "delete":
            dropped = list(slot.pending)
            slot.pending.clear()
            for old in dropped:
                self.executor.dropped(ws_id, old, "superseded by a delete")
            if slot.running is not None and slot.running.kind != "delete" and slot.op_task is not None:
                slot.op_task.cancel()  # the delete cancels an in-flight up
        if not self._coalesce(ws_id, slot, op):
            return False
        if slot.task is None or slot.task.done():
            slot.task = asyncio.get_running_loop().create_task(self._worker(ws_id), name=f"env-{ws_id}")
        return True

    def _coalesce(self, ws_id: str, slot: _Slot, op: Op) -> bool:
        for i, waiting in enumerate(slot.pending):
            if waiting.kind == op.kind:
                # The same request is already waiting: keep one, with the newest head; every
                # command comment that asked for it still gets its reaction.
                op.check_run_id = op.check_run_id or waiting.check_run_id
                op.also_notify = [*waiting.also_notify, *_ids(waiting.comment_id), *op.also_notify]
                slot.pending[i] = op
                return True
        running = slot.running
        if running is not None and running.kind == op.kind and op.kind != "sync" and running.head_sha == op.head_sha:
            log.info("%s of %s is already running; not queueing it twice", op.kind, ws_id)
            running.also_notify.extend(_ids(op.comment_id))
            return False
        slot.pending.append(op)
        return True

    # ------------------------------------------------------------------ looking
    def pending(self, ws_id: str) -> list[Op]:
        slot = self.slots.get(ws_id)
        return list(slot.pending) if slot is not None else []

    def busy(self, ws_id: str) -> bool:
        """Is an operation of this workspace running or waiting?"""
        slot = self.slots.get(ws_id)
        return slot is not None and (slot.running is not None or bool(slot.pending))

    def delete_waiting(self, ws_id: str) -> bool:
        return any(op.kind == "delete" for op in self.pending(ws_id))

    def workers(self) -> list[asyncio.Task[None]]:
        return [s.task for s in self.slots.values() if s.task is not None and not s.task.done()]

    # ------------------------------------------------------------------ the worker
    async def _worker(self, ws_id: str) -> None:
        slot = self.slots[ws_id]
        while slot.pending:
            head = slot.pending[0]
            if head.kind == "sync" and not head.resumed:
                # Pushes often come in bursts: wait for a quiet moment so only the newest head is built.
                quiet = head.requested_at + self.sync_debounce - self.clock()
                if quiet > 0:
                    await self.sleep(quiet)
                    continue  # a newer push may have replaced it meanwhile
            op = slot.pending.popleft()
            slot.running = op
            self.executor.taken(ws_id, op, list(slot.pending))
            slot.op_task = asyncio.get_running_loop().create_task(self.executor.execute(ws_id, op),
                                                                  name=f"op-{op.kind}-{ws_id}")
            try:
                await asyncio.shield(slot.op_task)
            except asyncio.CancelledError:
                if not slot.op_task.done():  # the worker itself is being cancelled (shutdown)
                    slot.op_task.cancel()
                    await asyncio.gather(slot.op_task, return_exceptions=True)
                    raise
            except Exception:
                log.exception("operation %s of %s failed unexpectedly", op.kind, ws_id)
            finally:
                slot.running = None
                slot.op_task = None
        if not slot.pending:
            self.slots.pop(ws_id, None)

    async def drain(self, grace: float) -> None:
        """Let running operations finish within ``grace``; then cancel them (they stay journalled)."""
        workers = self.workers()
        if not workers:
            return
        log.info("waiting up to %.0fs for %d environment operation(s)", grace, len(workers))
        _, pending = await asyncio.wait(workers, timeout=grace)
        if pending:
            self.shutting_down = True
            for slot in self.slots.values():
                for task in (slot.op_task, slot.task):
                    if task is not None and not task.done():
                        task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
