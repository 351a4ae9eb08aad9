"""Fixtures shared by the suite: the GitHub emulator, the real bot on a socket, leak checks."""

from __future__ import annotations

import asyncio

import pytest

from bot.settings import config
from tests import payloads
from tests.botserver import BotServer, bot_environ
from tests.github_emulator.fixtures import github  # noqa: F401  (the shared emulator fixture)
from tests.k8s_fake.fixtures import kube  # noqa: F401  (the shared Kubernetes API fake)
from tests.payloads import INSTALLATION_ID, PR_NUMBER
from tests.standin import DevPodStandIn


@pytest.fixture(autouse=True)
async def no_leaked_tasks():
    """Fail a test that leaves asyncio tasks running behind it."""
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if leaked:  # give tasks that are already finishing (closing connections) a moment
        await asyncio.wait(leaked, timeout=1.0)
    # aiohttp's own per-connection handler may still be unwinding a dropped upload; it is not ours.
    leaked = [t for t in leaked if not t.done() and t.get_coro().__qualname__ != "RequestHandler.start"]
    for t in leaked:
        t.cancel()
    assert not leaked, f"tasks left running: {[t.get_name() for t in leaked]}"


@pytest.fixture
def repo(github):  # noqa: F811
    """Codertocat/Hello-World installed as installation 1, as in GitHub's webhook examples."""
    github.add_installation(INSTALLATION_ID, account="Codertocat")
    repo = github.add_repo("Codertocat", "Hello-World", installation_id=INSTALLATION_ID)
    github.set_permission("Codertocat", "Hello-World", "Codertocat", "admin")  # the owner
    pr = payloads.pull_request("opened")["pull_request"]
    github.add_pull("Codertocat", "Hello-World", PR_NUMBER, head_sha=pr["head"]["sha"], head_ref=pr["head"]["ref"],
                    title=pr["title"])
    return repo


@pytest.fixture
def devpod(tmp_path):
    """The stand-in ``devpod`` executable with its own DEVPOD_HOME."""
    return DevPodStandIn(tmp_path / "devpod-home")


@pytest.fixture
def environ(github, tmp_path, devpod):  # noqa: F811
    return bot_environ(github, tmp_path / "state", **devpod.env())


@pytest.fixture
def settings(environ):
    return config.load(environ)


@pytest.fixture
async def server(settings, repo):
    srv = await BotServer(settings).start()
    yield srv
    await srv.stop()
