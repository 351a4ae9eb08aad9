"""When a pull request opens, changes or closes, keep its environment in step."""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.dispatch import Context
from bot.environments import PullInfo

router = routing.Router()

FORK_NOTE = ("This pull request comes from a fork, so it gets no environment automatically: its code is "
             "untrusted. A maintainer can start one after reviewing the changes.")


def _info(event: sansio.Event) -> PullInfo:
    data = event.data
    return PullInfo.from_payload(data["installation"]["id"], data["pull_request"], data["repository"])


@router.register("pull_request", action="opened")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="ready_for_review")
async def create_environment(event: sansio.Event, ctx: Context) -> None:
    """When a PR opens (or becomes ready), create its environment; fork PRs only get an explanation."""
    manager = ctx.bot.environments
    pr = event.data["pull_request"]
    if manager is None or pr.get("draft") or pr.get("state") == "closed":
        return
    info = _info(event)
    if info.fork:
        manager.explain(info, FORK_NOTE)
        return
    manager.request(info, "up", requested_by=event.data["sender"]["login"])


@router.register("pull_request", action="synchronize")
async def follow_new_head(event: sansio.Event, ctx: Context) -> None:
    """When new commits are pushed, bring a live environment to the new head (rapid pushes coalesce)."""
    manager = ctx.bot.environments
    if manager is None:
        return
    info = _info(event)
    if info.fork:
        return
    record = manager.record_for(info)
    if record.state in ("running", "creating", "updating", "queued", "failed"):
        manager.request(info, "sync", requested_by=event.data["sender"]["login"])
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
