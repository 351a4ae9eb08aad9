"""When a pull request opens, changes or closes, keep its environment in step (the policy says what may run)."""

from __future__ import annotations

from gidgethub import sansio

from bot.core.dispatch import Context, Router
from bot.environments.manager import PullInfo
from bot.environments.states import accepts_push, is_live, may_exist
from bot.policy.ask import Accepted, Closed, Source, policy_for
from bot.services import Bot

router = Router()


def _info(event: sansio.Event) -> PullInfo:
    data = event.data
    return PullInfo.from_payload(data["installation"]["id"], data["pull_request"], data["repository"])


@router.register("pull_request", action="opened")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="ready_for_review")
async def create_environment(event: sansio.Event, ctx: Context[Bot]) -> None:
    """When a PR opens (or becomes ready), create its environment; untrusted PRs wait for an approval."""
    manager = ctx.bot.environments
    pr = event.data["pull_request"]
    if manager is None or pr.get("draft"):
        return
    info = _info(event)
    decision = await policy_for(ctx).ask(info, "up", event.data["sender"]["login"], Source.OPEN,
                                         closed=pr.get("state") == "closed")
    if isinstance(decision, Closed):
        return
    record = manager.record_for(info)
    if not isinstance(decision, Accepted):  # untrusted, and its head is not the approved commit
        manager.wait_for_approval(info)
        return
    if not decision.settings.auto_create:
        if record.comment_id is None and record.settings_note is None:
            return  # the repository opted out: say nothing until someone asks
        manager.refresh(info)
        return
    manager.request(info, "up", requested_by=event.data["sender"]["login"])


@router.register("pull_request", action="synchronize")
async def follow_new_head(event: sansio.Event, ctx: Context[Bot]) -> None:
    """When new commits are pushed, bring a live environment to the new head (rapid pushes coalesce).

    What "bring" means comes from ``on_push`` in ``.github/devenv.yml``; for untrusted PRs a push
    by someone without write access pauses syncing until re-approved.
    """
    manager = ctx.bot.environments
    if manager is None:
        return
    info = _info(event)
    if manager.find(info) is None:
        return  # no environment was ever made for this PR: nothing to follow
    sender = event.data["sender"]["login"]
    decision = await policy_for(ctx).ask(info, "sync", sender, Source.PUSH)
    record = manager.record_for(info)
    if not isinstance(decision, Accepted):  # untrusted, pushed by someone without write access
        manager.wait_for_approval(info)  # the new head waits for its own approval
        return
    settings = decision.settings
    live = accepts_push(record.state)
    agent_busy = ctx.bot.agent_runs is not None and ctx.bot.agent_runs.running(info)
    if live and settings.on_push != "ignore" and not agent_busy:
        kind = "recreate" if settings.on_push == "recreate" else "sync"
        # A maintainer's push on an untrusted PR is their approval of the new head.
        manager.request(info, kind, requested_by=sender, approve=decision.approve)
    elif record.comment_id is not None:
        # Stopped, ignored, or an agent is at work (rebuilding would pull the floor from under it):
        # the comment shows the environment is behind the new head; a stopped one's new head gets
        # its check run (Wake), as nothing else would act on that head.
        manager.refresh(info)
        manager.show_stopped_head(info)


@router.register("pull_request", action="closed")
async def delete_environment(event: sansio.Event, ctx: Context[Bot]) -> None:
    """When a PR closes, merged or not, delete its environment (cancelling any build in flight)."""
    manager = ctx.bot.environments
    if manager is None:
        return
    info = _info(event)
    record = manager.find(info)
    if record is not None and (may_exist(record.state) or manager.busy(record.ws_id)):
        manager.request(info, "delete", requested_by=event.data["sender"]["login"])


@router.register("pull_request", action="converted_to_draft")
async def stop_environment(event: sansio.Event, ctx: Context[Bot]) -> None:
    """When a PR goes back to draft, stop its environment (nothing is lost; it wakes on demand)."""
    manager = ctx.bot.environments
    if manager is None:
        return
    info = _info(event)
    record = manager.find(info)
    if record is not None and is_live(record.state):
        manager.request(info, "stop", requested_by=event.data["sender"]["login"])
