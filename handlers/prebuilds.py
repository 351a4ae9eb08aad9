"""When a base branch gets a push that changes its devcontainer, or a maintainer comments ``/devenv prebuild``,
build its prebuilt image (bot.prebuilds: one build per repository at a time, the newest push wins)."""

from __future__ import annotations

import logging
from typing import Any, Final

from gidgethub import sansio

from bot.core.dispatch import Context, Router
from bot.github.pulls import PullRequestAPI
from bot.prebuilds import plan
from bot.prebuilds.checks import Job
from bot.services import Bot
from bot.text.templating import render

log = logging.getLogger(__name__)

router = Router()

#: Repository roles (the collaborator-permission API's ``role_name``), weakest first: unlike its
#: ``permission`` field, they tell ``maintain`` from ``write``.
ROLES: Final = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}
#: ``/devenv prebuild`` needs at least this role, whatever ``.github/devenv.yml`` says.
FLOOR: Final = "maintain"


@router.register("push")
async def prebuild_on_push(event: sansio.Event, ctx: Context[Bot]) -> None:
    """When a push to a prebuild branch changes the devcontainer (or the branch has no prebuild yet), build it."""
    prebuilds, data = ctx.bot.prebuilds, event.data
    ref, sha = str(data.get("ref") or ""), str(data.get("after") or "")
    if prebuilds is None or not ref.startswith("refs/heads/") or data.get("deleted") or sha.strip("0") == "":
        return
    branch, repository = ref.removeprefix("refs/heads/"), data["repository"]
    owner, name = repository["owner"].get("login") or repository["owner"]["name"], repository["name"]
    settings, _ = await ctx.bot.repo_settings.load(ctx.gh, owner, name, sha)
    if not plan.wants_branch(settings.prebuild.enabled, settings.prebuild.branches, branch,
                             repository.get("default_branch")):
        return
    why = plan.devcontainer_change(data, settings.devcontainer_path,
                                   has_prebuild=prebuilds.ledger.last(f"{owner}/{name}", branch) is not None)
    if why is None:
        log.info("push to %s/%s@%s (%s) leaves the devcontainer as it was: no prebuild", owner, name, branch,
                 sha[:7])
        return
    prebuilds.request(Job(installation_id=data["installation"]["id"], owner=owner, repo=name, branch=branch,
                          sha=sha, why=why, devcontainer_path=settings.devcontainer_path,
                          clone_strategy=settings.clone_strategy, private=bool(repository.get("private"))))


async def prebuild_command(ctx: Context[Bot], pr: PullRequestAPI, *, login: str, comment_id: int,
                           repository: dict[str, Any]) -> None:
    """``/devenv prebuild`` on a PR: a maintainer asks for the prebuild of its base branch now."""
    prefix = ctx.bot.settings.command_prefix

    async def reply(kind: str, **values: Any) -> None:
        await pr.reply(render("prebuild_reply.md.j2", kind=kind, login=login, prefix=prefix, **values))

    await pr.react(comment_id, "eyes")
    prebuilds = ctx.bot.prebuilds
    if prebuilds is None:
        await reply("off")
        await pr.react(comment_id, "confused")
        return
    pull = await pr.get()
    branch, sha = pull["base"]["ref"], pull["base"]["sha"]
    owner, name = pr.ref.owner, pr.ref.repo
    settings, _ = await ctx.bot.repo_settings.load(ctx.gh, owner, name, sha)
    need = max(settings.required_permission("prebuild"), FLOOR, key=lambda r: ROLES.get(r, ROLES["admin"]))
    have = await role_of(ctx.gh, owner, name, login)
    if ROLES.get(have, 0) < ROLES.get(need, ROLES["admin"]):
        await reply("refused", need=need, have=have)
        await pr.react(comment_id, "confused")
        return
    if not settings.prebuild.enabled:
        await reply("repo_off", branch=branch)
        await pr.react(comment_id, "confused")
        return
    queued = prebuilds.request(Job(installation_id=pr.ref.installation_id, owner=owner, repo=name, branch=branch,
                                   sha=sha, why=f"asked for by @{login}", devcontainer_path=settings.devcontainer_path,
                                   clone_strategy=settings.clone_strategy,
                                   private=bool(repository.get("private"))))
    await reply("queued" if queued else "already", branch=branch, sha=sha)
    await pr.react(comment_id, "rocket")


async def role_of(gh: Any, owner: str, repo: str, login: str) -> str:
    """``login``'s role on the repository (``maintain`` is told from ``write`` here); ``none`` if unknown."""
    try:
        answer = await gh.getitem("/repos/{owner}/{repo}/collaborators/{username}/permission",
                                  url_vars={"owner": owner, "repo": repo, "username": login})
    except Exception as exc:  # a 404: not a collaborator, or a renamed user
        if getattr(exc, "status_code", None) == 404:
            return "none"
        raise
    role = str(answer.get("role_name") or answer.get("permission") or "none")
    return role if role in ROLES else str(answer.get("permission") or "none")
