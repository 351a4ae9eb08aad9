"""When a pull request opens, changes or closes, keep its environment in step."""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.commands import permission_allows
from bot.dispatch import Context
from bot.environments import PullInfo

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
    record = manager.set_trust(info, await is_trusted(ctx, info))
    if not record.trusted and record.approved_sha != info.head_sha:
        manager.explain(info, manager.paused_note(record))
        return
    manager.request(info, "up", requested_by=event.data["sender"]["login"])


@router.register("pull_request", action="synchronize")
async def follow_new_head(event: sansio.Event, ctx: Context) -> None:
    """When new commits are pushed, bring a live environment to the new head (rapid pushes coalesce).

    For untrusted PRs a push by someone without write access pauses syncing until re-approved.
    """
    manager = ctx.bot.environments
    if manager is None:
        return
    info = _info(event)
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
    if record.state in ("running", "creating", "updating", "queued", "failed"):
        manager.request(info, "sync", requested_by=sender, approve=approve)
    elif record.comment_id is not None:
        manager.refresh(info)  # stopped: the comment shows the environment is behind the new head


@router.register("pull_request", action="closed")
async def delete_environment(event: sansio.Event, ctx: Context) -> None:
    """When a PR closes, merged or not, delete its environment (cancelling any build in flight)."""
    manager = ctx.bot.environments
    if manager is None:
        return
    info = _info(event)
    record = manager.records.get(manager.record_for(info).ws_id)
    if record is not None and (record.state not in ("none", "deleted") or record.ws_id in manager.slots):
        manager.request(info, "delete", requested_by=event.data["sender"]["login"])


@router.register("pull_request", action="converted_to_draft")
async def stop_environment(event: sansio.Event, ctx: Context) -> None:
    """When a PR goes back to draft, stop its environment (nothing is lost; it wakes on demand)."""
    manager = ctx.bot.environments
    if manager is None:
        return
    info = _info(event)
    record = manager.record_for(info)
    if record.state in ("running", "creating", "updating", "queued"):
        manager.request(info, "stop", requested_by=event.data["sender"]["login"])
