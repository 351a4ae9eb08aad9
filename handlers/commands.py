"""When someone comments a ``/devenv`` command on a pull request, ask the policy and run or refuse it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gidgethub import sansio

from bot.commands.grammar import Ignore, Reply, parse
from bot.commands.verbs import LOGS_DEFAULT_LINES, VERBS, usage_markdown
from bot.core.dispatch import Context, Router
from bot.environments.logs import logs_reply
from bot.environments.manager import PullInfo
from bot.environments.states import can_sync
from bot.github.permissions import REQUIRED_PERMISSION_DEFAULTS, allows
from bot.github.pulls import PullRef, PullRequestAPI
from bot.policy.ask import Accepted, Closed, Refused, Source, policy_for
from bot.services import Bot
from bot.text.templating import render
from handlers.prebuilds import prebuild_command

log = logging.getLogger(__name__)

router = Router()

NOT_YET: tuple[str, ...] = ()  # verbs the parser knows but this version cannot run yet
AGENT_VERBS = ("agent run", "agent stop")

Answer = Callable[..., Awaitable[Any]]


def is_bot(user: dict[str, Any]) -> bool:
    return user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")


@router.register("issue_comment", action="created")
async def run_command(event: sansio.Event, ctx: Context[Bot]) -> None:
    """When a person comments a command on a PR, reply, refuse or run it (👀 now, 🚀 or 😕 when done)."""
    data = event.data
    comment, sender, repository = data["comment"], data["sender"], data["repository"]
    if "pull_request" not in data["issue"] or is_bot(sender) or is_bot(comment.get("user") or {}):
        return
    prefix = ctx.bot.settings.command_prefix
    result = parse(comment.get("body"), prefix=prefix)
    if isinstance(result, Ignore):
        return
    login, installation_id = sender["login"], data["installation"]["id"]
    pr = PullRequestAPI(ctx.gh, PullRef(installation_id, repository["owner"]["login"], repository["name"],
                                        data["issue"]["number"]))

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
    if verb == "prebuild":  # the base branch's image: its own permission check (roles), no environment involved
        await prebuild_command(ctx, pr, login=login, comment_id=comment["id"], repository=repository)
        return
    if ctx.bot.environments is None:
        log.warning("ignoring %s: environments are not configured (no DevPod settings)", command)
        return
    # The PR's base commit says which .github/devenv.yml applies (never the untrusted head).
    pull = await pr.get()
    info = PullInfo.from_payload(installation_id, pull, repository)
    decision = await policy_for(ctx).ask(info, verb, login, Source.COMMENT, closed=pull.get("state") == "closed")
    if verb == "help":
        await reply("help", have=decision.have, **help_lists(decision.have or "none", prefix,
                                                             decision.settings.required_permission))
    elif isinstance(decision, Refused):
        await reply("refused", command=command, need=decision.need, have=decision.have)
        await pr.react(comment["id"], "confused")
    elif verb == "logs":
        await logs_command(ctx, info, result.lines or LOGS_DEFAULT_LINES, login=login, pr=pr)
    elif verb == "extend" and isinstance(decision, Accepted):
        await extend_command(ctx, info, result.seconds, decision, comment_id=comment["id"], reply=reply, pr=pr,
                             login=login)
    elif verb in AGENT_VERBS:
        await agent_command(ctx, verb, result.prompt, decision, info=info, comment_id=comment["id"], login=login,
                            reply=reply, pr=pr)
    else:
        await environment_command(ctx, verb, decision, info=info, comment_id=comment["id"], login=login,
                                  reply=reply, pr=pr)


async def environment_command(ctx: Context[Bot], verb: str, decision: Accepted | Closed, *, info: PullInfo,
                              comment_id: int, login: str, reply: Answer, pr: PullRequestAPI) -> None:
    """Render the policy's yes to an environment verb (👀, then queue it), or say the PR is closed."""
    await pr.react(comment_id, "eyes")
    if isinstance(decision, Closed):
        await reply("closed", command=f"{ctx.bot.settings.command_prefix} {verb}")
        await pr.react(comment_id, "confused")
        return
    manager = ctx.bot.environments
    assert manager is not None  # run_command returns early without one
    kind = verb
    if verb == "approve":
        record = manager.record_for(info)
        kind = "sync" if record.env_sha and can_sync(record.state) else "up"
    manager.request(info, kind, requested_by=login, comment_id=comment_id, approve=decision.approve)


async def extend_command(ctx: Context[Bot], info: PullInfo, seconds: int | None, decision: Accepted, *,
                         comment_id: int, reply: Answer, pr: PullRequestAPI, login: str) -> None:
    """Push back the idle stop (or the deletion) by ``seconds`` (the repository's default if None), within
    its ``extend.max``: 🚀 and the comment shows the new time, or a reply saying why not."""
    manager = ctx.bot.environments
    assert manager is not None  # run_command returns early without one
    settings, command = decision.settings, f"{ctx.bot.settings.command_prefix} extend"
    asked = seconds if seconds is not None else settings.extend_by
    if asked > settings.extend_max:
        await reply("extend_too_long", command=command, asked=asked, longest=settings.extend_max,
                    hint=f"{settings.extend_max // 3600}h" if settings.extend_max >= 3600 else "30m")
        await pr.react(comment_id, "confused")
        return
    result = manager.extend(info, duration=asked, maximum=settings.extend_max, requested_by=login)
    if result is None:
        await reply("extend_nothing", command=command, state=manager.record_for(info).state)
        await pr.react(comment_id, "confused")
        return
    await pr.react(comment_id, "rocket")
    if result.capped:
        await reply("extend_capped", until=result.keep_until, longest=settings.extend_max)


async def agent_command(ctx: Context[Bot], verb: str, prompt: str | None, decision: Accepted | Closed, *,
                        info: PullInfo, comment_id: int, login: str, reply: Answer, pr: PullRequestAPI) -> None:
    """Render the policy's yes to ``agent run`` / ``agent stop`` (hand them to the Bot's AgentRuns), or say
    the PR is closed.

    The repository's ``agent.command`` (``.github/devenv.yml`` from the base commit) overrides
    the deployment's agent argv when set.
    """
    command = f"{ctx.bot.settings.command_prefix} {verb}"
    runs = ctx.bot.agent_runs
    if runs is None:
        await reply("not_yet", command=command, verb=verb)
        return
    if isinstance(decision, Closed):
        await reply("closed", command=command)
        await pr.react(comment_id, "confused")
        return
    if verb == "agent stop":
        await runs.stop(info, login, comment_id)
        return
    await runs.start(info, prompt or "", login, comment_id, permission=decision.have or "none",
                     command=decision.settings.agent.command)


async def logs_command(ctx: Context[Bot], info: PullInfo, lines: int, *, login: str, pr: PullRequestAPI) -> None:
    """Reply with the end of the last DevPod operation's output and of the workspace container's log, masked."""
    manager = ctx.bot.environments
    assert manager is not None  # run_command returns early without one
    record = manager.find(info)
    ops = manager.operations
    exposure = manager.exposure
    await pr.reply(await logs_reply(
        login=login, prefix=ctx.bot.settings.command_prefix, lines=lines, record=record,
        op_log=ops.logs.last(record.ws_id) if record is not None else None,
        kube=exposure.kube if exposure is not None else None, label_prefix=ops.dp.label_prefix,
        mask=ops.masker.lines))


def help_lists(have: str, prefix: str, required=REQUIRED_PERMISSION_DEFAULTS.__getitem__) -> dict[str, str]:
    """The help reply's three Markdown lists: what ``have`` allows, what needs more, what does not exist yet."""
    available = [v for v in VERBS if v not in NOT_YET]
    # ``have`` folds maintain into write, so only an admin is sure to pass prebuild's role check (handlers/prebuilds.py).
    allowed = tuple(v for v in available if allows(have, required(v)) and (v != "prebuild" or have == "admin"))
    refused = tuple(v for v in available if v not in allowed)
    return {"allowed": usage_markdown(prefix, allowed) if allowed else "- nothing",
            "refused": "\n".join(f"{usage_markdown(prefix, (v,))} Needs {required(v)} access."
                                 for v in refused),
            "not_yet": usage_markdown(prefix, NOT_YET)}
