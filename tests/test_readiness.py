"""Readiness checks: every reason is reported, a failing check is retried until it passes."""

from __future__ import annotations

import asyncio

from bot.core.readiness import Readiness


async def test_nothing_is_ready_before_the_first_check():
    readiness = Readiness()

    async def fine() -> None:
        return None

    readiness.add("devpod", fine)
    assert readiness.problems() == {"devpod": "not checked yet"}
    assert await readiness.run_once() == {}


async def test_every_failing_check_is_reported_with_its_reason():
    readiness = Readiness()

    async def devpod() -> str:
        return "devpod was not found: install DevPod v0.6.15-hotfix.2 or set DEVPOD_BIN"

    async def github() -> None:
        return None

    async def crashes() -> None:
        raise RuntimeError("boom")

    async def hangs() -> None:
        await asyncio.sleep(60)

    readiness.timeout = 0.05
    for name, check in (("devpod", devpod), ("github", github), ("kubernetes", crashes), ("slow", hangs)):
        readiness.add(name, check)
    problems = await readiness.run_once()
    assert problems == {
        "devpod": "devpod was not found: install DevPod v0.6.15-hotfix.2 or set DEVPOD_BIN",
        "kubernetes": "the kubernetes check failed (RuntimeError)",
        "slow": "the slow check did not finish within 0.05 s",
    }


async def test_a_failing_check_is_retried_in_the_background_until_it_passes():
    waits: list[float] = []
    woken = asyncio.Event()
    answers = ["GitHub answered 401", None]

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 2:
            woken.set()
            await asyncio.Event().wait()  # park the loop once the retry has happened

    async def github() -> str | None:
        return answers.pop(0) if answers else None

    readiness = Readiness(retry=5, recheck=60, sleep=sleep)
    readiness.add("github", github)
    assert await readiness.run_once() == {"github": "GitHub answered 401"}
    readiness.start()
    await asyncio.wait_for(woken.wait(), 5)
    await readiness.stop()
    assert readiness.problems() == {}
    assert waits[:2] == [5, 60]  # soon while failing, then only now and then
