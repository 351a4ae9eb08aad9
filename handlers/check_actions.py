"""When someone presses a button on the ``devenv`` check run (or re-runs it), run that operation."""

from __future__ import annotations

import logging

from gidgethub import routing, sansio

from bot.commands.grammar import permission_allows
from bot.core.dispatch import Context
from bot.environments.manager import CHECK_NAME, PullInfo
from bot.github.pulls import PullRef, PullRequestAPI
from handlers.commands import BUILDS
from handlers.environments import is_trusted, repo_settings

log = logging.getLogger(__name__)

router = routing.Router()

RETRYABLE = ("up", "recreate", "reset", "sync", "stop", "delete", "status")  # what "retry" may repeat
BUTTONS = {"recreate": "recreate", "stop": "stop", "delete": "delete", "wake": "up"}  # identifier -> operation


@router.register("check_run", action="requested_action")
@router.register("check_run", action="rerequested")
async def run_check_action(event: sansio.Event, ctx: Context) -> None:
    """When a user with write access presses Retry/Recreate/Stop/Delete/Wake or re-runs the check, do it."""
    data = event.data
    run, repository, login = data["check_run"], data["repository"], data["sender"]["login"]
    manager, app = ctx.bot.environments, ctx.bot.settings.app
    ours = str((run.get("app") or {}).get("id")) == app.app_id or (run.get("app") or {}).get("client_id") == app.app_id
    if manager is None or run.get("name") != CHECK_NAME or not ours:
        return
    record = manager.records.get(run.get("external_id") or "")
    if data["action"] == "rerequested":
        verb = "up"
    else:
        identifier = data["requested_action"]["identifier"]
        if identifier == "retry":
            last = record.last_action.verb if record is not None and record.last_action else "up"
            verb = last if last in RETRYABLE else "up"
        elif identifier in BUTTONS:
            verb = BUTTONS[identifier]
        else:
            log.warning("unknown check run action %r", identifier)
            return
    owner, repo = repository["owner"]["login"], repository["name"]
    have = await ctx.bot.permissions.of(ctx.gh, owner, repo, login)
    if not permission_allows(have, "write"):
        log.info("%s (permission %s) pressed %s on the check run; nothing done", login, have, verb)
        return
    pulls = run.get("pull_requests") or []
    number = pulls[0]["number"] if pulls else record.number if record is not None else None
    if number is None:
        log.warning("check run %s belongs to no pull request this bot knows", run.get("id"))
        return
    installation_id = data["installation"]["id"]
    pull = await PullRequestAPI(ctx.gh, PullRef(installation_id, owner, repo, number)).get()
    if pull.get("state") == "closed" and verb != "delete":
        log.info("not running %s on closed %s/%s#%s", verb, owner, repo, number)
        return
    info = PullInfo.from_payload(installation_id, pull, repository)
    need = (await repo_settings(ctx, info)).required_permission(verb)
    if not permission_allows(have, need):  # .github/devenv.yml may ask for more than write
        log.info("%s (permission %s) pressed %s, which needs %s; nothing done", login, have, verb, need)
        return
    current = manager.record_for(info)
    if current.trusted is None:
        current = manager.set_trust(info, await is_trusted(ctx, info))
    # A writer pressing a build button on an untrusted PR vouches for its current head.
    manager.request(info, verb, requested_by=login, approve=verb in BUILDS and not current.trusted)
