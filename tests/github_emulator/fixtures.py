"""The ``github`` fixture: import it into ``tests/conftest.py``.

    from tests.github_emulator.fixtures import github  # noqa: F401

It starts a fresh emulator per test and, at teardown, closes it and fails the
test if any request the bot sent (or any response the emulator served) did not
match GitHub's OpenAPI description, or needed an App permission its installation
token lacked (installations hold app.yml's permissions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .server import GitHubEmulator


@pytest_asyncio.fixture
async def github() -> AsyncIterator[GitHubEmulator]:
    emu = GitHubEmulator()
    await emu.start()
    try:
        yield emu
    finally:
        await emu.close()
    emu.assert_valid()
