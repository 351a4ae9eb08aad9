"""The request policy: may this person do this to this pull request's environment, asked from here?

Design.  As in atlantis, the decision is made in one place that every entry point calls; the
entry points (handlers for a comment, a check-run button, a push, a pull request opening) only
translate their input into ``ask(pr, verb, actor, source)`` and render the answer.  ``ask``:

1. loads the repository's settings (``.github/devenv.yml`` from the PR's *base* commit, never the
   untrusted head) and applies them to the PR's record;
2. checks the actor's permission for the verb: the level ``.github/devenv.yml`` asks for (else
   :data:`~bot.github.permissions.REQUIRED_PERMISSION_DEFAULTS`), and at least ``write`` for a
   check-run button.  ``help`` is answered to anyone.  A push or an opening is no one's request:
   only an untrusted PR's push asks who pushed (below);
3. answers :class:`Closed` on a closed PR, except for what may run there (``delete``; from a
   comment also ``status`` and ``agent stop``);
4. decides trust once per PR (a fork, or an author without write access, is untrusted; an
   opening decides again) and pins approval: on an untrusted PR a writer asking to build (a
   comment, a button, a push of theirs) vouches for exactly the current head commit, and an
   opening builds only if the approval is pinned to the head it opens at.

The policy remembers nothing itself: trust and the approved commit live on the PR's record,
kept by the environments (the :class:`Ledger`, which :class:`~bot.environments.manager.EnvironmentManager`
is).  Permissions are asked of GitHub through one cached :class:`~bot.github.permissions.Permissions`.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from typing import Any, Literal, Protocol

from gidgethub.abc import GitHubAPI

from bot.core.dispatch import Context
from bot.github.permissions import LEVELS, Permissions, allows
from bot.github.pulls import PullRef
from bot.repo_settings.loader import RepoSettingsLoader
from bot.repo_settings.schema import RepoSettings

log = logging.getLogger(__name__)

__all__ = ["BUILDS", "Accepted", "Closed", "Decision", "Ledger", "Policy", "Refused", "Source", "policy_for"]

#: A writer asking for these on an untrusted PR vouches for its current head.
BUILDS = frozenset({"up", "recreate", "reset", "approve"})
#: Answered to anyone, on any PR: it only says what the asker may do.
ANSWERED_TO_ANYONE = frozenset({"help"})


class Source(enum.Enum):
    """Where a request comes from."""

    COMMENT = "comment"  # a /devenv command in a comment on the PR
    BUTTON = "button"  # a button on the devenv check run, or its re-run
    PUSH = "push"  # new commits on the PR's head branch (the verb is "sync")
    OPEN = "open"  # the PR opened, reopened or became ready for review (the verb is "up")
    CATCHUP = "catch-up"  # a change the bot found by asking GitHub (bot.environments.catchup): no one's request


#: What may still run on a closed pull request, by source.
RUNS_ON_CLOSED: dict[Source, frozenset[str]] = {
    Source.COMMENT: frozenset({"delete", "status", "agent stop", "logs"}),
    Source.BUTTON: frozenset({"delete"}),
    Source.PUSH: frozenset(),
    Source.OPEN: frozenset(),
    Source.CATCHUP: frozenset(),
}
#: The least permission a request from this source needs whatever the settings say.
SOURCE_FLOOR: dict[Source, str] = {Source.BUTTON: "write"}
#: Requests that run nothing from the PR, so its trust need not be known.
NEEDS_NO_TRUST = frozenset({"help", "agent stop", "logs", "extend"})


class PullFacts(Protocol):
    """What the policy reads of a pull request (``bot.environments.manager.PullInfo`` has it)."""

    @property
    def ref(self) -> PullRef: ...
    @property
    def head_sha(self) -> str: ...
    @property
    def base_sha(self) -> str: ...
    @property
    def author(self) -> str: ...
    @property
    def fork(self) -> bool: ...


class Remembered(Protocol):
    """What the ledger remembers of a PR: trust (None: not decided) and the approved commit."""

    trusted: bool | None
    approved_sha: str | None


class Ledger(Protocol):
    """Where trust and settings are kept (the environment manager)."""

    def record_for(self, info: Any) -> Remembered: ...
    def set_trust(self, info: Any, trusted: bool) -> Remembered: ...
    def configure(self, info: Any, repo_settings: Any, problems: list[str]) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Accepted:
    """Go ahead.  ``approve``: the actor vouches for the PR's current head (pin the approval to it)."""

    settings: RepoSettings
    trusted: bool | None = None  # None when the request needed no trust (help, agent stop)
    approve: bool = False
    have: str | None = None  # the actor's permission, when it was asked


@dataclasses.dataclass(frozen=True)
class Refused:
    """Not allowed.  ``why``: the actor's permission is below ``need`` (``permission``), or the PR's
    code is untrusted and its head not approved (``untrusted``; someone with ``need`` can approve)."""

    settings: RepoSettings
    why: Literal["permission", "untrusted"]
    need: str
    have: str | None = None


@dataclasses.dataclass(frozen=True)
class Closed:
    """The pull request is closed and this does nothing there."""

    settings: RepoSettings
    have: str | None = None


Decision = Accepted | Refused | Closed


def stronger(a: str, b: str) -> str:
    """The higher of two permission levels."""
    return a if LEVELS.get(a, 0) >= LEVELS.get(b, 0) else b


class Policy:
    """Asks GitHub (as the installation ``gh``) and the ledger whether a request may go ahead."""

    def __init__(self, gh: GitHubAPI | None, *, loader: RepoSettingsLoader, permissions: Permissions,
                 ledger: Ledger) -> None:
        self.gh = gh
        self.loader = loader
        self.permissions = permissions
        self.ledger = ledger

    async def ask(self, pr: PullFacts, verb: str, actor: str, source: Source, *, closed: bool = False) -> Decision:
        """Whether ``actor`` may have ``verb`` done on ``pr`` (``closed``: the PR is closed), asked from ``source``."""
        settings = await self.settings(pr)
        have: str | None = None
        if source in (Source.COMMENT, Source.BUTTON):
            have = await self.permission(pr, actor)
            if verb in ANSWERED_TO_ANYONE:
                return Accepted(settings, have=have)
            need = stronger(settings.required_permission(verb), SOURCE_FLOOR.get(source, "none"))
            if not allows(have, need):
                log.info("%s (permission %s) may not %s (needs %s)", actor, have, verb, need)
                return Refused(settings, "permission", need, have)
        if closed and verb not in RUNS_ON_CLOSED[source]:
            log.info("not running %s on closed %s", verb, pr.ref)
            return Closed(settings, have)
        if verb in NEEDS_NO_TRUST:
            return Accepted(settings, have=have)
        trusted = await self.trust(pr, decide_again=source is Source.OPEN)
        if trusted:
            return Accepted(settings, True, have=have)
        return await self._untrusted(pr, verb, actor, source, settings, have)

    async def _untrusted(self, pr: PullFacts, verb: str, actor: str, source: Source, settings: RepoSettings,
                         have: str | None) -> Decision:
        """Untrusted code runs only at a commit someone with write access vouched for."""
        if source in (Source.OPEN, Source.CATCHUP):  # no one to vouch: only the approved commit runs
            if self.ledger.record_for(pr).approved_sha == pr.head_sha:
                return Accepted(settings, False)
            return Refused(settings, "untrusted", "write")
        if source is Source.PUSH:  # a writer's push is their approval of the new head
            have = await self.permission(pr, actor)
            if not allows(have, "write"):
                return Refused(settings, "untrusted", "write", have)
            return Accepted(settings, False, approve=True, have=have)
        return Accepted(settings, False, approve=verb in BUILDS, have=have)

    async def settings(self, pr: PullFacts) -> RepoSettings:
        """The repository's ``.github/devenv.yml`` from the PR's base commit, applied to its record."""
        settings, problems = await self.loader.load(self.gh, pr.ref.owner, pr.ref.repo, pr.base_sha)
        self.ledger.configure(pr, settings, problems)
        return settings

    async def permission(self, pr: PullFacts, login: str) -> str:
        """``login``'s permission on the PR's repository."""
        return await self.permissions.of(self.gh, pr.ref.owner, pr.ref.repo, login)

    async def trust(self, pr: PullFacts, *, decide_again: bool = False) -> bool:
        """Whether the PR's code is trusted: only from the same repository and an author who may push
        to it.  Decided once per PR (remembered on its record) unless ``decide_again``."""
        known = self.ledger.record_for(pr).trusted
        if known is not None and not decide_again:
            return known
        trusted = not pr.fork and bool(pr.author) and allows(await self.permission(pr, pr.author), "write")
        self.ledger.set_trust(pr, trusted)
        return trusted


class Services(Protocol):
    """What :func:`policy_for` needs of the running bot (:class:`bot.services.Bot` has it)."""

    @property
    def repo_settings(self) -> RepoSettingsLoader: ...

    @property
    def permissions(self) -> Permissions: ...

    @property
    def environments(self) -> Ledger | None: ...


def policy_for(ctx: Context[Services]) -> Policy:
    """The policy for one delivery: its installation's API, the bot's settings loader, permission cache
    and environment records (handlers run only when the bot has environments)."""
    bot = ctx.bot
    assert bot.environments is not None, "handlers that ask run only when the bot has an environment manager"
    return Policy(ctx.gh, loader=bot.repo_settings, permissions=bot.permissions, ledger=bot.environments)
