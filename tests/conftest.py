"""Fixtures shared by the suite: the GitHub emulator, the real bot on a socket, leak checks."""

from __future__ import annotations

import asyncio

import pytest

from bot import config
from tests.botserver import BotServer, bot_environ
from tests.github_emulator.fixtures import github  # noqa: F401  (the shared emulator fixture)
from tests.payloads import INSTALLATION_ID


@pytest.fixture(autouse=True)
async def no_leaked_tasks():
    """Fail a test that leaves asyncio tasks running behind it."""
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for t in leaked:
        t.cancel()
    assert not leaked, f"tasks left running: {[t.get_name() for t in leaked]}"


@pytest.fixture
def repo(github):  # noqa: F811
    """Codertocat/Hello-World installed as installation 1, as in GitHub's webhook examples."""
    github.add_installation(INSTALLATION_ID, account="Codertocat")
    return github.add_repo("Codertocat", "Hello-World", installation_id=INSTALLATION_ID)


@pytest.fixture
def environ(github, tmp_path):  # noqa: F811
    return bot_environ(github, tmp_path / "state")


@pytest.fixture
def settings(environ):
    return config.load(environ)


@pytest.fixture
async def server(settings, repo):
    srv = await BotServer(settings).start()
    yield srv
    await srv.stop()
