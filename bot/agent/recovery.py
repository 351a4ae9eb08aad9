"""Ending what a run left behind: the remote agent, and after a restart the ``devenv agent`` check run.

* :func:`workspace_running`: may a ``devpod ssh`` be sent to the workspace? ``devpod ssh``
  *starts* a stopped workspace, even with ``--start-services=false`` (CONTRACT §9), so a
  signal is sent only when the bot's record does not say the container is gone or going, no
  stop, rebuild or delete waits or runs, and ``devpod status`` says ``Running``.
* :func:`end_remote`: SIGINT, then SIGTERM, to one run's agent by its run id (never waking the
  workspace).
* :func:`restart_update`: the final check-run write of a run the bot died during
  (``cancelled``, saying so and what to do), kept in the ledger and published through the
  run service's durable :class:`~bot.environments.publishing.CheckRuns` (retried; an entry
  whose write never reached GitHub is written again on the next start).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from bot import devpod
from bot.agent.ledger import Ledger, RunEntry
from bot.agent.remote import signal_command
from bot.agent.run import Signal
from bot.agent.view import check_summary, restart_comment, restart_message
from bot.environments.manager import DESTRUCTIVE_OPS, EnvironmentManager
from bot.environments.publishing import CheckRuns, CheckUpdate
from bot.environments.states import State
from bot.github.pulls import PullRequestAPI, check_output
from bot.replicas.devpod_state import restored
from bot.settings.agent import AgentSettings

log = logging.getLogger(__name__)

__all__ = ["DESTRUCTIVE", "end_remote", "recover", "restart_update", "update_of", "workspace_running"]

#: Environment operations that end an agent run first (the container stops or is replaced).
DESTRUCTIVE = DESTRUCTIVE_OPS
#: Record states in which the container is not there, or is going: no ``devpod ssh`` then.
_DOWN = frozenset({State.NONE, State.STOPPING, State.STOPPED, State.DELETING, State.DELETED})
RESTART_TITLE = "The agent run was interrupted by a bot restart"


async def workspace_running(manager: EnvironmentManager, ws_id: str) -> bool:
    """Is the workspace running, so that a ``devpod ssh`` cannot wake it? (False when unsure.)"""
    record = manager.records.get(ws_id)
    if record is None or record.state in _DOWN:
        return False
    if record.op is not None and record.op.kind in DESTRUCTIVE:
        return False
    if any(op.kind in DESTRUCTIVE for op in record.pending):
        return False
    if await restored(manager.operations.state, ws_id) is not None:  # DevPod would not find it here
        return False
    dp = manager.devpod_settings
    try:
        result = await devpod.run(devpod.status_argv(dp, ws_id), settings=dp, timeout=dp.status_timeout,
                                  masker=devpod.Masker())
    except Exception:
        log.exception("could not ask DevPod whether %s is running", ws_id)
        return False
    try:
        return result.ok and devpod.parse_status(result.stdout).state.value == "Running"
    except ValueError:
        return False


async def end_remote(manager: EnvironmentManager, ws_id: str, run_id: str, settings: AgentSettings) -> None:
    """Interrupt run ``run_id``'s agent if it still runs (SIGINT, then SIGTERM after the grace)."""
    dp = manager.devpod_settings
    steps: tuple[tuple[Signal, float], ...] = (("INT", settings.interrupt_grace), ("TERM", 0.0))
    for sig, grace in steps:
        if not await workspace_running(manager, ws_id):
            log.info("agent run %s in %s: the workspace is not running, nothing to stop", run_id, ws_id)
            return
        argv = devpod.ssh_command_argv(dp, ws_id, signal_command(run_id, sig))
        try:
            result = await devpod.run(argv, settings=dp, timeout=settings.signal_timeout, masker=devpod.Masker())
        except Exception:
            log.exception("could not signal agent run %s in %s", run_id, ws_id)
            return
        if "__DEVENV_SIGNALLED=" not in result.stdout:
            return  # not there any more (or never was: a fresh container)
        log.info("sent SIG%s to agent run %s in %s", sig, run_id, ws_id)
        await asyncio.sleep(grace)


def update_of(final: dict[str, Any]) -> CheckUpdate:
    """A check-run write as the ledger keeps it (``dataclasses.asdict`` of a :class:`CheckUpdate`)."""
    names = {f.name for f in dataclasses.fields(CheckUpdate)}
    return CheckUpdate(**{k: v for k, v in final.items() if k in names})


def restart_update(entry: RunEntry, prefix: str) -> dict[str, Any]:
    """The final write of a run a restart interrupted, as the ledger keeps it."""
    summary = check_summary(requested_by=entry.requested_by, stopped_by=None, prompt=None,
                            message=restart_message(f"{prefix} agent run"), note=None, progress="")
    return {"status": "completed", "conclusion": "cancelled", "details_url": None,
            "output": check_output(RESTART_TITLE, summary)}


def recover(ledger: Ledger, manager: EnvironmentManager, checks: CheckRuns, *, prefix: str, settings: AgentSettings,
            track: Callable[[Coroutine[Any, Any, None]], object], entries: list[RunEntry] | None = None) -> None:
    """At start-up: conclude every run the last process left unfinished (``track`` keeps the work
    that ends their remote agents), and write every conclusion that never reached GitHub. ``entries``:
    those runs (default: the whole ledger; with replicas, those no live replica runs)."""
    for entry in ledger.load_all() if entries is None else entries:
        pr = manager.pull_api(entry.ref)
        if entry.state != "ended":
            log.info("agent run %s on %s was interrupted by a restart: concluding it", entry.run_id, entry.ws_id)
            entry.state, entry.final = "ended", restart_update(entry, prefix)
            ledger.save(entry)
            track(_end_interrupted(manager, entry, pr, settings, prefix))
        if entry.check_run_id is None or entry.final is None:
            ledger.forget(entry.run_id)
            continue
        log.info("writing the conclusion of agent run %s on %s", entry.run_id, entry.ws_id)
        update, run_id = update_of(entry.final), entry.run_id
        checks.update(pr, entry.ws_id, entry.check_run_id, functools.partial(lambda u: u, update), urgent=True,
                      written=functools.partial(ledger.forget, run_id))


async def _end_interrupted(manager: EnvironmentManager, entry: RunEntry, pr: PullRequestAPI,
                           settings: AgentSettings, prefix: str) -> None:
    """A run the restart interrupted: a final comment, 😕 on the command, and its agent stopped if the
    workspace runs."""
    try:
        await pr.reply(restart_comment(entry.requested_by, prefix))
    except Exception:
        log.exception("posting the final comment of interrupted agent run %s failed", entry.run_id)
    if entry.comment_id is not None:
        try:
            await pr.react(entry.comment_id, "confused")
        except Exception:
            log.exception("reacting to comment %s failed", entry.comment_id)
    await end_remote(manager, entry.ws_id, entry.run_id, settings)
