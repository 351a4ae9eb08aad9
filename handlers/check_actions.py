"""When someone presses a button on the ``devenv`` check run (or re-runs it), ask the policy and run that operation.

A button goes through the same policy as the comment command it stands for (``Source.BUTTON``: write
access at least).  **Approve** vouches for exactly the commit its check run is on: if the PR's head
moved since, it does nothing (the new head has its own check run asking for approval).
"""

from __future__ import annotations

import logging
from typing import Any

from gidgethub import sansio

from bot.core.dispatch import Context, Router
from bot.environments.manager import CHECK_NAME, PullInfo
from bot.environments.states import can_sync
from bot.github.pulls import PullRef, PullRequestAPI
from bot.policy.ask import Accepted, Source, policy_for
from bot.services import Bot

log = logging.getLogger(__name__)

router = Router()

RETRYABLE = ("up", "recreate", "reset", "sync", "stop", "delete", "status")  # what "retry" may repeat
#: identifier -> the verb the policy is asked about (``approve`` then runs up or sync, as the command does)
BUTTONS = {"recreate": "recreate", "stop": "stop", "delete": "delete", "wake": "up", "create": "up",
           "approve": "approve", "extend": "extend"}


def pressed_verb(data: dict[str, Any], record: Any) -> str | None:
    """The operation a ``check_run`` delivery asks for (None: a button this bot does not know)."""
    if data["action"] == "rerequested":
        return "up"
    identifier = data["requested_action"]["identifier"]
    if identifier == "retry":
        last = record.last_action.verb if record is not None and record.last_action else "up"
        return last if last in RETRYABLE else "up"
    if identifier in BUTTONS:
        return BUTTONS[identifier]
    log.warning("unknown check run action %r", identifier)
    return None


@router.register("check_run", action="requested_action")
@router.register("check_run", action="rerequested")
async def run_check_action(event: sansio.Event, ctx: Context[Bot]) -> None:
    """When a user with write access presses Retry/Recreate/Stop/Delete/Wake/Extend or re-runs the check, do it."""
    data = event.data
    run, repository, login = data["check_run"], data["repository"], data["sender"]["login"]
    manager, app = ctx.bot.environments, ctx.bot.settings.app
    if app is None:  # no handler runs before the App is registered (deliveries are refused)
        return
    ours = str((run.get("app") or {}).get("id")) == app.app_id or (run.get("app") or {}).get("client_id") == app.app_id
    if manager is None or run.get("name") != CHECK_NAME or not ours:
        return
    record = manager.records.get(run.get("external_id") or "")
    verb = pressed_verb(data, record)
    if verb is None:
        return
    pulls = run.get("pull_requests") or []
    number = pulls[0]["number"] if pulls else record.number if record is not None else None
    if number is None:
        log.warning("check run %s belongs to no pull request this bot knows", run.get("id"))
        return
    installation_id = data["installation"]["id"]
    ref = PullRef(installation_id, repository["owner"]["login"], repository["name"], number)
    pull = await PullRequestAPI(ctx.gh, ref).get()
    info = PullInfo.from_payload(installation_id, pull, repository)
    if verb == "approve" and run.get("head_sha") != info.head_sha:
        log.info("not approving %s: the head moved from %s to %s", ref, run.get("head_sha"), info.head_sha)
        return
    decision = await policy_for(ctx).ask(info, verb, login, Source.BUTTON, closed=pull.get("state") == "closed")
    if isinstance(decision, Accepted) and verb == "extend":  # as `/devenv extend` with the repository's default
        settings = decision.settings
        manager.extend(info, duration=settings.extend_by, maximum=settings.extend_max, requested_by=login)
    elif isinstance(decision, Accepted):
        # A writer pressing a build button on an untrusted PR vouches for its current head.
        kind = verb
        if verb == "approve":
            record = manager.record_for(info)
            kind = "sync" if record.env_sha and can_sync(record.state) else "up"
        manager.request(info, kind, requested_by=login, approve=decision.approve,
                        check_run=(run["id"], run["head_sha"]))
