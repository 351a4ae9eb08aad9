"""Issue 11 item 10: an operation's end reaches GitHub even when GitHub fails or the bot restarts
between journalling it and writing it (the real bot, the GitHub emulator, the stand-in devpod)."""

from __future__ import annotations

import json

from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.observe import devenv_runs as checks
from tests.observe import sticky

WS = "hello-world-pr2-4d960c"
CHECK_PATCH = r"/check-runs/\d+$"


def failed_patches(github) -> int:
    return len([c for c in github.calls_to("PATCH", CHECK_PATCH) if c.status == 502])


async def test_a_check_run_patch_failing_a_few_times_still_ends_concluded(server, github, devpod):
    tries = server.bot.settings.max_retries + 1  # what the GitHub client itself tries before giving up
    github.inject(method="PATCH", path=CHECK_PATCH, status=502, times=2 * tries)
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    assert failed_patches(github) == 2 * tries  # so the publisher tried again after the client gave up
    [run] = checks(github)
    assert run["status"] == "completed" and run["conclusion"] == "success"
    journal = json.loads((server.bot.settings.state_dir / "environments" / f"{WS}.json").read_text())
    assert journal["unpublished"] is None


async def test_a_conclusion_github_refused_until_a_restart_is_written_on_the_next_start(environ, repo, github,
                                                                                       devpod, tmp_path):
    github.inject(method="PATCH", path=CHECK_PATCH, status=502, times=10_000)
    first = await BotServer(config.load(environ)).start()
    try:
        await first.deliver("pull_request", payloads.pull_request("opened"))
        await first.settle()  # every retry failed: the publisher gave up
    finally:
        await first.stop()
    journal = json.loads((tmp_path / "state" / "environments" / f"{WS}.json").read_text())
    assert journal["op"] is None and journal["unpublished"]["conclusion"] == "success"
    assert journal["unpublished"]["check"] and not journal["unpublished"]["comment"]
    assert checks(github)[0]["status"] != "completed"  # what the outage left behind

    github.faults.clear()
    second = await BotServer(config.load(environ)).start()
    try:
        await second.settle()
    finally:
        await second.stop()
    [run] = checks(github)
    assert run["status"] == "completed" and run["conclusion"] == "success"
    assert "🟢 Running" in sticky(github)
    assert len(devpod.calls("up")) == 1  # published again, not run again
    journal = json.loads((tmp_path / "state" / "environments" / f"{WS}.json").read_text())
    assert journal["unpublished"] is None
