"""An agent run is use of its environment: at its start and at its end (issue 13 item 3)."""

from __future__ import annotations

import pytest

from tests.test_activity import HOURS, age
from tests.test_agent_e2e import SAMPLES, command, environ, finish, open_pr  # noqa: F401  (the agent's environ)

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no Claude Code stream samples at {SAMPLES}")


async def test_an_agent_run_counts_as_use_of_its_environment(server, github, devpod):
    await open_pr(server, github)
    record = age(server, 3 * HOURS)  # unused for three hours: the next sweep would stop it
    before = record.active_at
    await server.deliver("issue_comment", command(github, '/devenv agent run "Say hello"'))
    await finish(server)
    assert record.active_via == "agent" and record.active_at > before + 2 * HOURS
    assert server.bot.reaper is not None and server.bot.reaper.sweep() == []
