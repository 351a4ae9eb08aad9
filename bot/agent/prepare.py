"""Getting an agent run ready: its environment running, and a push token when one is allowed.

Both go through the environment manager (:class:`~bot.environments.manager.EnvironmentManager`),
never around it: the environment is brought up by a normal ``up`` request (with its own check
run and comment), and the token is minted for the PR's one repository.
"""

from __future__ import annotations

import asyncio
import logging

from bot import devpod
from bot.core import logs
from bot.environments.journal import PullInfo
from bot.environments.manager import EnvironmentManager
from bot.environments.states import State, is_building
from bot.replicas.devpod_state import restored
from bot.text.markdown import escape

log = logging.getLogger(__name__)

__all__ = ["ensure_up", "push_env"]


async def ensure_up(manager: EnvironmentManager, info: PullInfo, requested_by: str, cancel: asyncio.Event, *,
                    poll_interval: float, up_timeout: float) -> tuple[str, str] | None:
    """Bring the environment up if it is not running, with DevPod's state of it on this replica (replicas keep
    it in the cluster); None when it is ready, else (outcome, message)."""
    problem = await _running(manager, info, requested_by, cancel, poll_interval=poll_interval, up_timeout=up_timeout)
    if problem is not None:
        return problem
    missing = await restored(manager.operations.state, devpod.workspace_id(info.ref.owner, info.ref.repo,
                                                                           info.ref.number))
    return ("failure", missing) if missing is not None else None


async def _running(manager: EnvironmentManager, info: PullInfo, requested_by: str, cancel: asyncio.Event, *,
                   poll_interval: float, up_timeout: float) -> tuple[str, str] | None:
    record = manager.find(info)
    if record is not None and record.state == State.RUNNING:
        return None
    if record is None or not is_building(record.state):
        manager.request(info, "up", requested_by=requested_by)
    ws_id = devpod.workspace_id(info.ref.owner, info.ref.repo, info.ref.number)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + up_timeout + 60
    while True:
        if cancel.is_set():
            return "cancelled", "The agent run was cancelled before the environment was ready."
        if not manager.busy(ws_id):
            break
        if loop.time() > deadline:
            return "timed_out", "The environment did not become ready in time, so the agent did not run."
        await asyncio.sleep(poll_interval)
    record = manager.find(info)
    if record is not None and record.state == State.RUNNING:
        return None
    state = record.state if record is not None else State.NONE
    return "failure", (f"The environment could not be started (it is {escape(state)}), so the agent did not "
                       f"run. The `devenv` check run and the pull request's environment comment say why.")


async def push_env(manager: EnvironmentManager, info: PullInfo, *, may_push: bool) -> tuple[dict[str, str], str | None]:
    """``GH_TOKEN`` (contents:write on this one repository, for same-repository PRs asked by writers),
    and a note on why there is none."""
    if not may_push or info.fork:
        if info.fork:
            return {}, "No push token: this pull request comes from a fork, so the agent cannot push."
        return {}, "No push token: the requester does not have write access, so the agent cannot push."
    try:
        token = await manager.mint_token(info.ref, "write")
    except Exception as exc:
        log.warning("could not mint a push token for the agent on %s: %s", info.ref, exc)
        return {}, ("No push token: GitHub refused to mint one (has the app been granted *Contents: write*?), "
                    "so the agent cannot push.")
    if token is None:  # no app credentials (tests without an app)
        return {}, None
    logs.redactor.add(token)
    return {"GH_TOKEN": token}, None
