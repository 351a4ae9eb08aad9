"""Latest-state-wins publishing: bursts collapse, the interval holds, final states go out at once."""

from __future__ import annotations

import asyncio

from bot.github.publish import Publisher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_burst_of_marks_while_a_write_is_in_flight_becomes_one_more_write():
    publisher = Publisher(min_interval=0)
    written: list[int] = []
    gate = asyncio.Event()

    def write_of(n: int):
        async def write() -> None:
            if n == 0:
                await gate.wait()
            written.append(n)
        return write

    publisher.mark("k", write_of(0))
    await asyncio.sleep(0)
    for n in range(1, 10):
        publisher.mark("k", write_of(n))
    gate.set()
    await publisher.flush("k")
    assert written == [0, 9]


async def test_the_interval_holds_after_a_quiet_spell_too():
    clock = Clock()
    publisher = Publisher(min_interval=3.0, clock=clock)
    written: list[str] = []

    async def write() -> None:
        written.append("w")

    publisher.mark("k", write)
    await publisher.flush("k")  # first write: at once
    clock.now += 0.5
    publisher.mark("k", write)  # the writer had ended; the next write must still wait
    await asyncio.sleep(0.05)
    assert written == ["w"]
    await publisher.flush("k")  # a final state is not held back
    assert written == ["w", "w"]
    await publisher.close()


async def test_a_write_made_elsewhere_counts_against_the_interval():
    clock = Clock()
    publisher = Publisher(min_interval=3.0, clock=clock)
    written: list[str] = []

    async def write() -> None:
        written.append("w")

    publisher.note_write("k")
    publisher.mark("k", write)
    await asyncio.sleep(0.05)
    assert written == []
    await publisher.close()
    assert written == ["w"]  # close() writes what is pending instead of dropping it


async def test_a_failing_write_is_logged_and_does_not_stop_later_ones(caplog):
    publisher = Publisher(min_interval=0, retry_delays=())  # given up at once
    written: list[str] = []

    async def boom() -> None:
        raise RuntimeError("GitHub said no")

    async def ok() -> None:
        written.append("ok")

    publisher.mark("k", boom)
    await publisher.flush("k")
    publisher.mark("k", ok)
    await publisher.flush("k")
    assert written == ["ok"]
    assert any("publishing" in r.getMessage() for r in caplog.records)


async def test_a_delayed_state_replaced_before_its_time_is_never_written():
    clock = Clock()
    publisher = Publisher(min_interval=0, clock=clock)
    written: list[str] = []

    def write_of(name: str):
        async def write() -> None:
            written.append(name)
        return write

    publisher.mark("k", write_of("starting"), delay=3.0)
    await asyncio.sleep(0.05)
    assert written == []  # held back
    publisher.mark("k", write_of("done"), urgent=True)  # the outcome arrives first
    await publisher.flush("k")
    assert written == ["done"]


class Sleeps:
    """An injectable sleep that records its waits and lets other tasks run instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.hook = None

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.hook is not None:
            self.hook()
        await asyncio.sleep(0)


async def test_a_failed_write_is_retried_with_backoff_until_it_succeeds():
    sleeps = Sleeps()
    publisher = Publisher(min_interval=0, retry_delays=(1.0, 2.0, 4.0, 8.0), sleep=sleeps)
    tries: list[int] = []

    async def write() -> None:
        tries.append(1)
        if len(tries) < 4:
            raise RuntimeError("502")

    publisher.mark("k", write, urgent=True)
    await publisher.flush("k")
    assert len(tries) == 4 and publisher.writes == 1
    assert sleeps.waits == [1.0, 2.0, 4.0]


async def test_retries_are_bounded():
    sleeps = Sleeps()
    publisher = Publisher(min_interval=0, retry_delays=(1.0, 2.0), sleep=sleeps)
    tries: list[int] = []

    async def write() -> None:
        tries.append(1)
        raise RuntimeError("502")

    publisher.mark("k", write)
    await publisher.flush("k")
    assert len(tries) == 3 and publisher.writes == 0 and sleeps.waits == [1.0, 2.0]


async def test_a_newer_state_replaces_the_pending_retry():
    sleeps = Sleeps()
    publisher = Publisher(min_interval=0, retry_delays=(1.0, 2.0), sleep=sleeps)
    written: list[str] = []

    async def old() -> None:
        written.append("old?")
        raise RuntimeError("502")

    async def new() -> None:
        written.append("new")

    sleeps.hook = lambda: publisher.mark("k", new, urgent=True)  # the newer state comes during the back-off
    publisher.mark("k", old)
    await publisher.flush("k")
    assert written == ["old?", "new"] and publisher.writes == 1
