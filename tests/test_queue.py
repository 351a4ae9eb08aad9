"""The per-workspace queue on its own: coalescing, the push debounce on a manual clock, the fair limiter.

The executor here only notes what it is handed (the queue knows nothing else of it), and time moves
only when a test says so: nothing sleeps in real time.
"""

from __future__ import annotations

import asyncio

from bot.environments.journal import Op
from bot.environments.queue import FairLimiter, WorkspaceQueue

A, B = "hello-world-pr2-4d960c", "hello-world-pr3-4d960c"


class ManualClock:
    """``clock()`` and ``sleep()`` for the queue: time stands still until :meth:`advance`."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, fut))
        await fut

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for due, fut in list(self._sleepers):
            if due <= self.now:
                self._sleepers.remove((due, fut))
                if not fut.done():
                    fut.set_result(None)
        await settle()


async def settle() -> None:
    """Let every task that can run, run (a few rounds of the event loop)."""
    for _ in range(20):
        await asyncio.sleep(0)


class Noted:
    """An executor that notes what it is handed; ``hold`` keeps each execution open until set."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, str]] = []
        self.finished: list[tuple[str, str, str]] = []
        self.dropped_ops: list[tuple[str, str, str]] = []
        self.cancelled: list[tuple[str, str]] = []
        self.hold = asyncio.Event()
        self.hold.set()

    def taken(self, ws_id: str, op: Op, pending: list[Op]) -> None:
        pass

    def dropped(self, ws_id: str, op: Op, why: str) -> None:
        self.dropped_ops.append((ws_id, op.kind, why))

    async def execute(self, ws_id: str, op: Op) -> None:
        self.started.append((ws_id, op.kind, op.head_sha))
        try:
            await self.hold.wait()
        except asyncio.CancelledError:
            self.cancelled.append((ws_id, op.kind))
            raise
        self.finished.append((ws_id, op.kind, op.head_sha))


def op(kind: str, head: str, clock: ManualClock, comment_id: int | None = None) -> Op:
    return Op(kind=kind, head_sha=head * 40, requested_by="octo", requested_at=clock(), comment_id=comment_id)


def make(debounce: float = 0.5, limit: int = 4) -> tuple[WorkspaceQueue, Noted, ManualClock]:
    clock, noted = ManualClock(), Noted()
    return WorkspaceQueue(noted, max_concurrent=limit, sync_debounce=debounce, clock=clock, sleep=clock.sleep), \
        noted, clock


async def test_ten_quick_pushes_are_built_once_at_the_last_head():
    queue, noted, clock = make(debounce=0.5)
    heads = [f"{i:x}" for i in range(1, 11)]
    for head in heads:  # a push every 0.15 s: never a quiet half second
        queue.put(A, op("sync", head, clock))
        await clock.advance(0.15)
    assert noted.started == []
    await clock.advance(0.5)
    assert noted.started == [(A, "sync", heads[-1] * 40)]
    assert not queue.busy(A)


async def test_a_push_during_a_build_waits_behind_it_two_runs_at_most():
    queue, noted, clock = make(debounce=0.5)
    noted.hold.clear()
    queue.put(A, op("sync", "1", clock))
    await clock.advance(0.5)
    assert noted.started == [(A, "sync", "1" * 40)]
    for head in "23456":
        queue.put(A, op("sync", head, clock))
        await clock.advance(0.1)
    assert [o.head_sha[0] for o in queue.pending(A)] == ["6"]  # one waits, with the newest head
    noted.hold.set()
    await clock.advance(0.5)
    assert [s[2][0] for s in noted.started] == ["1", "6"]
    assert not queue.busy(A)


async def test_a_resumed_sync_does_not_wait_for_a_quiet_moment():
    queue, noted, clock = make(debounce=5.0)
    resumed = op("sync", "1", clock)
    resumed.resumed = True
    queue.put(A, resumed)
    await settle()
    assert noted.started == [(A, "sync", "1" * 40)]


async def test_the_same_request_twice_is_queued_once_and_both_comments_hear_back():
    queue, noted, clock = make()
    noted.hold.clear()
    assert queue.put(A, op("up", "1", clock, comment_id=10))
    await settle()
    assert not queue.put(A, op("up", "1", clock, comment_id=11))  # already running at that head
    assert queue.put(A, op("stop", "1", clock, comment_id=12))
    assert queue.put(A, op("stop", "1", clock, comment_id=13))
    [waiting] = queue.pending(A)
    assert waiting.comment_id == 13 and waiting.also_notify == [12]
    assert queue.slots[A].running.also_notify == [11]
    noted.hold.set()
    await settle()
    assert [s[1] for s in noted.started] == ["up", "stop"]


async def test_a_delete_drops_what_waits_and_cancels_what_runs():
    queue, noted, clock = make()
    noted.hold.clear()
    queue.put(A, op("up", "1", clock))
    await settle()
    queue.put(A, op("stop", "1", clock))
    queue.put(A, op("delete", "1", clock))
    assert queue.delete_waiting(A)
    await settle()
    assert noted.dropped_ops == [(A, "stop", "superseded by a delete")]
    assert noted.cancelled == [(A, "up")]
    assert noted.started[-1][1] == "delete"
    noted.hold.set()
    await settle()
    assert not queue.busy(A)


async def test_two_workspaces_run_at_the_same_time():
    queue, noted, clock = make()
    noted.hold.clear()
    queue.put(A, op("up", "1", clock))
    queue.put(B, op("up", "2", clock))
    await settle()
    assert {s[0] for s in noted.started} == {A, B} and noted.finished == []  # the second did not wait
    noted.hold.set()
    await settle()
    assert not queue.busy(A) and not queue.busy(B)


async def test_drain_cancels_what_outlives_the_grace_and_says_it_is_shutting_down():
    queue, noted, clock = make()
    noted.hold.clear()
    queue.put(A, op("up", "1", clock))
    await settle()
    await queue.drain(0)
    assert queue.shutting_down and noted.cancelled == [(A, "up")]


async def test_the_fair_limiter_serves_waiters_in_order():
    limiter = FairLimiter(1)
    order: list[str] = []
    positions: dict[str, list[int]] = {"b": [], "c": []}
    await limiter.acquire(lambda n: None)

    async def waiter(name: str) -> None:
        await limiter.acquire(positions[name].append)
        order.append(name)
        limiter.release()

    tasks = [asyncio.create_task(waiter("b")), asyncio.create_task(waiter("c"))]
    await asyncio.sleep(0)
    limiter.release()
    await asyncio.gather(*tasks)
    assert order == ["b", "c"]
    assert positions["b"][0] == 0 and positions["c"][0] == 1 and positions["c"][-1] == 0


async def test_a_waiter_cancelled_in_line_gives_up_its_place():
    limiter = FairLimiter(1)
    await limiter.acquire(lambda n: None)
    seen: list[int] = []
    first = asyncio.create_task(limiter.acquire(lambda n: None))
    second = asyncio.create_task(limiter.acquire(seen.append))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert seen == [1, 0]  # second in line, then next
    limiter.release()
    await second
    assert limiter.running == 1


async def test_the_fair_limiter_reports_how_many_wait_and_how_long_each_waited():
    now = [100.0]
    depths: list[int] = []
    waits: list[float] = []
    limiter = FairLimiter(1, on_depth=depths.append, on_wait=waits.append, timer=lambda: now[0])
    await limiter.acquire(lambda n: None)  # a free slot: waited 0
    first = asyncio.create_task(limiter.acquire(lambda n: None))
    second = asyncio.create_task(limiter.acquire(lambda n: None))
    await asyncio.sleep(0)
    assert depths == [1, 2]
    second.cancel()  # gives up its place: not a wait that ended in a slot
    await asyncio.gather(second, return_exceptions=True)
    now[0] += 7.5
    limiter.release()
    await first
    assert depths == [1, 2, 1, 0]
    assert waits == [0.0, 7.5]
