"""The ``cloudflare`` fixture: a fresh emulator per test.

    from tests.cloudflare_emulator.fixtures import cloudflare  # noqa: F401

At teardown it stops the server and fails the test if the emulator rejected a request as
invalid (``CloudflareEmulator.rejections``) that the test did not expect (tests that send
bad requests on purpose clear the list).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .server import CloudflareEmulator


@pytest_asyncio.fixture
async def cloudflare() -> AsyncIterator[CloudflareEmulator]:
    emu = CloudflareEmulator()
    await emu.start()
    try:
        yield emu
    finally:
        await emu.close()
    emu.assert_valid()
