"""One way for a test to wait for something the bot does in the background.

Tests never sleep a fixed time to let work happen: they wait until a condition holds,
polling briefly, and fail with what they were waiting for when it never does.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(predicate: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05,
                     what: str = "the condition") -> Any:
    """Wait until ``predicate()`` (a plain or async callable) returns something truthy; return it.

    Raises AssertionError naming ``what`` after ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def eventually_async(predicate: Callable[[], Awaitable[Any]], **kwargs: Any) -> Any:
    """The same, for a coroutine function (kept for readability at call sites)."""
    return await eventually(predicate, **kwargs)
