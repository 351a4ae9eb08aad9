"""When a pull request opens, changes or closes, keep its environment in step."""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from bot.commands.grammar import permission_allows
from bot.core.dispatch import Context
from bot.environments.manager import PullInfo
from bot.environments.states import accepts_push, is_live, may_exist

router = routing.Router()


def _info(event: sansio.Event) -> PullInfo:
    data = event.data
    return PullInfo.from_payload(data["installation"]["id"], data["pull_request"], data["repository"])


async def is_trusted(ctx: Context, info: PullInfo) -> bool:
    """PR code is trusted only from the same repository and an author who may push to it."""
    if info.fork or not info.author:
        return False
    have = await ctx.bot.permissions.of(ctx.gh, info.ref.owner, info.ref.repo, info.author)
    return permission_allows(have, "write")


async def repo_settings(ctx: Context, info: PullInfo) -> Any:
    """The repository's ``.github/devenv.yml`` from the PR's base commit, applied to its record."""
    settings, problems = await ctx.bot.repo_settings.load(ctx.gh, info.ref.owner, info.ref.repo, info.base_sha)
    ctx.bot.environments.configure(info, settings, problems)
    return settings


@router.register("pull_request", action="opened")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="ready_for_review")
async def create_environment(event: sansio.Event, ctx: Context) -> None:
    """When a PR opens (or becomes ready), create its environment; untrusted PRs wait for an approval."""
    manager = ctx.bot.environments
    pr = event.data["pull_request"]
    if manager is None or pr.get("draft") or pr.get("state") == "closed":
        return
    info = _info(event)
    settings = await repo_settings(ctx, info)
    record = manager.set_trust(info, await is_trusted(ctx, info))
    if not record.trusted and record.approved_sha != info.head_sha:
        manager.explain(info, manager.paused_note(record))
        return
    if not settings.auto_create:
        if record.comment_id is None and record.settings_note is None:
            return  # the repository opted out: say nothing until someone asks
        manager.refresh(info)
        return
    manager.request(info, "up", requested_by=event.data["sender"]["login"])


@router.register("pull_request", action="synchronize")
async def follow_new_head(event: sansio.Event, ctx: Context) -> None:
    """When new commits are pushed, bring a live environment to the new head (rapid pushes coalesce).

    What "bring" means comes from ``on_push`` in ``.github/devenv.yml``; for untrusted PRs a push
    by someone without write access pauses syncing until re-approved.
    """
    manager = ctx.bot.environments
    if manager is None:
        return
    info = _info(event)
    record = manager.find(info)
    if record is None:
        return  # no environment was ever made for this PR: nothing to follow
    settings = await repo_settings(ctx, info)
    record = manager.record_for(info)
    if record.trusted is None:
        record = manager.set_trust(info, await is_trusted(ctx, info))
    sender = event.data["sender"]["login"]
    approve = False
    if not record.trusted:
        have = await ctx.bot.permissions.of(ctx.gh, info.ref.owner, info.ref.repo, sender)
        if not permission_allows(have, "write"):
            if record.env_sha or record.approved_sha:
                manager.explain(info, manager.paused_note(record))
            return
        approve = True  # a maintainer pushed: that is their approval of the new head
    live = accepts_push(record.state)
    agent_busy = ctx.bot.agent_runs is not None and ctx.bot.agent_runs.running(info)
    if live and settings.on_push != "ignore" and not agent_busy:
        kind = "recreate" if settings.on_push == "recreate" else "sync"
        manager.request(info, kind, requested_by=sender, approve=approve)
    elif record.comment_id is not None:
        # Stopped, ignored, or an agent is at work (rebuilding would pull the floor from under it):
        # the comment shows the environment is behind the new head.
        manager.refresh(info)


@router.register("pull_request", action="closed")
async def delete_environment(event: sansio.Event, ctx: Context) -> None:
    """When a PR closes, merged or not, delete its environment (cancelling any build in flight)."""
    manager = ctx.bot.environments
    if manager is None:
        return
    info = _info(event)
    record = manager.find(info)
    if record is not None and (may_exist(record.state) or manager.busy(record.ws_id)):
        manager.request(info, "delete", requested_by=event.data["sender"]["login"])


@router.register("pull_request", action="converted_to_draft")
async def stop_environment(event: sansio.Event, ctx: Context) -> None:
    """When a PR goes back to draft, stop its environment (nothing is lost; it wakes on demand)."""
    manager = ctx.bot.environments
    if manager is None:
        return
    info = _info(event)
    record = manager.find(info)
    if record is not None and is_live(record.state):
        manager.request(info, "stop", requested_by=event.data["sender"]["login"])
