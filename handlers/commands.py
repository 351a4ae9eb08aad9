"""When someone comments a ``/devenv`` command on a pull request, check who they are and run it."""

from __future__ import annotations

import logging
from typing import Any

from gidgethub import routing, sansio

from bot.commands.grammar import REQUIRED_PERMISSION_DEFAULTS, Ignore, Reply, parse, permission_allows
from bot.commands.verbs import VERBS, usage_markdown
from bot.core.dispatch import Context
from bot.environments.manager import PullInfo
from bot.environments.states import can_sync
from bot.github.pulls import PullRef, PullRequestAPI
from bot.text.templating import render
from handlers.environments import is_trusted, repo_settings

log = logging.getLogger(__name__)

router = routing.Router()

NOT_YET: tuple[str, ...] = ()  # verbs the parser knows but this version cannot run yet
AGENT_VERBS = ("agent run", "agent stop")
BUILDS = ("up", "recreate", "reset", "approve")  # a writer asking for these vouches for the current head


def is_bot(user: dict[str, Any]) -> bool:
    return user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")


@router.register("issue_comment", action="created")
async def run_command(event: sansio.Event, ctx: Context) -> None:
    """When a person comments a command on a PR, reply, refuse or run it (👀 now, 🚀 or 😕 when done)."""
    data = event.data
    comment, sender, repository = data["comment"], data["sender"], data["repository"]
    if "pull_request" not in data["issue"] or is_bot(sender) or is_bot(comment.get("user") or {}):
        return
    prefix = ctx.bot.settings.command_prefix
    result = parse(comment.get("body"), prefix=prefix)
    if isinstance(result, Ignore):
        return
    login = sender["login"]
    installation_id = data["installation"]["id"]
    owner, repo = repository["owner"]["login"], repository["name"]
    pr = PullRequestAPI(ctx.gh, PullRef(installation_id, owner, repo, data["issue"]["number"]))

    def reply(kind: str, **values: Any) -> Any:
        return pr.reply(render("command_reply.md.j2", kind=kind, login=login, prefix=prefix, **values))

    if isinstance(result, Reply):
        await reply("parser", message=result.message)
        await pr.react(comment["id"], "confused")
        return
    verb, command = result.verb, f"{prefix} {result.verb}"
    if verb in NOT_YET:
        await reply("not_yet", command=command, verb=verb)
        return
    manager = ctx.bot.environments
    if manager is None:
        log.warning("ignoring %s: environments are not configured (no DevPod settings)", command)
        return
    # The PR's base commit says which .github/devenv.yml applies (never the untrusted head).
    pull = await pr.get()
    info = PullInfo.from_payload(installation_id, pull, repository)
    settings = await repo_settings(ctx, info)
    have = await ctx.bot.permissions.of(ctx.gh, owner, repo, login)
    if verb == "help":
        await reply("help", have=have, **help_lists(have, prefix, settings.required_permission))
        return
    need = settings.required_permission(verb)
    if not permission_allows(have, need):
        log.info("%s (permission %s) may not run %s", login, have, verb)
        await reply("refused", command=command, need=need, have=have)
        await pr.react(comment["id"], "confused")
        return
    if verb in AGENT_VERBS:
        await agent_command(ctx, verb, result.prompt, info=info, pull=pull, have=have, login=login,
                            comment_id=comment["id"], command=settings.agent.command, reply=reply, pr=pr)
        return
    await pr.react(comment["id"], "eyes")
    if pull.get("state") == "closed" and verb not in ("delete", "status"):
        await reply("closed", command=command)
        await pr.react(comment["id"], "confused")
        return
    record = manager.record_for(info)
    if record.trusted is None:
        record = manager.set_trust(info, await is_trusted(ctx, info))
    # On an untrusted PR, a writer asking to build is the maintainer's approval of this exact head.
    approve = verb in BUILDS and not record.trusted
    kind = verb
    if verb == "approve":
        kind = "sync" if record.env_sha and can_sync(record.state) else "up"
    manager.request(info, kind, requested_by=login, comment_id=comment["id"], approve=approve)


async def agent_command(ctx: Context, verb: str, prompt: str | None, *, info: PullInfo, pull: dict[str, Any],
                        have: str, login: str, comment_id: int, command: Any, reply: Any,
                        pr: PullRequestAPI) -> None:
    """``agent run`` / ``agent stop`` (permission already checked): hand them to the Bot's AgentRuns.

    The repository's ``agent.command`` (``.github/devenv.yml`` from the base commit) overrides
    the deployment's agent argv when set.
    """
    runs = ctx.bot.agent_runs
    if runs is None:
        await reply("not_yet", command=f"{ctx.bot.settings.command_prefix} {verb}", verb=verb)
        return
    if verb == "agent stop":
        await runs.stop(info, login, comment_id)
        return
    if pull.get("state") == "closed":
        await reply("closed", command=f"{ctx.bot.settings.command_prefix} {verb}")
        await pr.react(comment_id, "confused")
        return
    manager = ctx.bot.environments
    record = manager.record_for(info)
    if record.trusted is None:
        manager.set_trust(info, await is_trusted(ctx, info))
    await runs.start(info, prompt or "", login, comment_id, permission=have, command=command)


def help_lists(have: str, prefix: str, required=REQUIRED_PERMISSION_DEFAULTS.__getitem__) -> dict[str, str]:
    """The help reply's three Markdown lists: what ``have`` allows, what needs more, what does not exist yet."""
    available = [v for v in VERBS if v not in NOT_YET]
    allowed = tuple(v for v in available if permission_allows(have, required(v)))
    refused = tuple(v for v in available if v not in allowed)
    return {"allowed": usage_markdown(prefix, allowed) if allowed else "- nothing",
            "refused": "\n".join(f"{usage_markdown(prefix, (v,))} Needs {required(v)} access."
                                  for v in refused),
            "not_yet": usage_markdown(prefix, NOT_YET)}
