"""The request policy in ``bot.policy.ask``: a table of who may do what to a PR's environment, from where.

``ask`` runs against the GitHub emulator (permissions, ``.github/devenv.yml``) through a real
client; what the policy remembers of a PR (trust, the approved commit) is held by a ledger in a
dict, as the environment manager holds its records.  The handlers' side of the same decisions
runs end to end in tests/test_commands_e2e.py and tests/test_approval.py.
"""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest
from gidgethub import GitHubBroken

from bot.core.dispatch import Context
from bot.core.metrics import Metrics
from bot.environments.manager import PullInfo
from bot.github.auth import AppAuth
from bot.github.client import GitHubClient
from bot.github.permissions import Permissions
from bot.github.pulls import PullRef
from bot.policy.ask import Accepted, Closed, Decision, Policy, Refused, Source, policy_for
from bot.repo_settings.loader import RepoSettingsLoader
from bot.repo_settings.schema import SETTINGS_PATH
from tests.payloads import INSTALLATION_ID, PR_NUMBER

OWNER, REPO = "Codertocat", "Hello-World"
BASE, HEAD, EARLIER = "b" * 40, "c" * 40, "a" * 40
PERMISSION_CALLS = r"/collaborators/[^/]+/permission$"
ROLES = {"admin": "admin", "maintainer": "maintain", "writer": "write", "triager": "triage", "reader": "read",
         "nobody": "none", "stranger": "read", "visitor": "read"}


# -- fixtures ----------------------------------------------------------------------------------------


async def no_sleep(seconds: float) -> None:
    pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def gh(settings, repo, github):
    for login, role in ROLES.items():
        github.set_permission(OWNER, REPO, login, role)
    async with aiohttp.ClientSession() as session:
        client = GitHubClient(settings, AppAuth(settings.app.app_id, settings.app.private_key), session, Metrics(),
                              sleep=no_sleep)
        yield client.installation(INSTALLATION_ID)


@dataclasses.dataclass
class Remembered:
    trusted: bool | None = None
    approved_sha: str | None = None


class Records:
    """A ledger held in a dict, one entry per PR, as the environment manager keeps its records."""

    def __init__(self) -> None:
        self.records: dict[PullRef, Remembered] = {}
        self.configured: list[tuple[PullRef, object, list[str]]] = []

    def record_for(self, info: PullInfo) -> Remembered:
        return self.records.setdefault(info.ref, Remembered())

    def set_trust(self, info: PullInfo, trusted: bool) -> Remembered:
        record = self.record_for(info)
        record.trusted = trusted
        return record

    def configure(self, info: PullInfo, repo_settings: object, problems: list[str]) -> None:
        self.configured.append((info.ref, repo_settings, problems))


def pull(kind: str) -> PullInfo:
    """A PR on Codertocat/Hello-World: ``trusted`` (same repository, an admin's), ``fork`` (a
    stranger's fork) or ``readers`` (same repository, by someone who may only read)."""
    author = {"trusted": "Codertocat", "fork": "stranger", "readers": "visitor"}[kind]
    return PullInfo(ref=PullRef(INSTALLATION_ID, OWNER, REPO, PR_NUMBER), head_sha=HEAD, head_ref="changes",
                    author=author, fork=kind == "fork", base_sha=BASE)


def approval(records: Records, info: PullInfo, state: str) -> None:
    """Approval ``pinned`` to the PR's head, ``moved`` (given on an earlier head) or ``absent``."""
    records.record_for(info).approved_sha = {"pinned": HEAD, "moved": EARLIER, "absent": None}[state]


def summary(decision: Decision) -> tuple:
    if isinstance(decision, Accepted):
        return ("accepted", decision.trusted, decision.approve, decision.have)
    if isinstance(decision, Refused):
        return ("refused", decision.why, decision.need, decision.have)
    assert isinstance(decision, Closed)
    return ("closed", decision.have)


async def ask(gh, github, *, source: Source, pr: str, actor: str, verb: str, approved: str = "absent",
              closed: bool = False, settings: str | None = None, records: Records | None = None) -> Decision:
    if settings is not None:
        github.set_file(OWNER, REPO, SETTINGS_PATH, settings, ref=BASE)
    records = records or Records()
    info = pull(pr)
    approval(records, info, approved)
    policy = Policy(gh, loader=RepoSettingsLoader(), permissions=Permissions(), ledger=records)
    return await policy.ask(info, verb, actor, source, closed=closed)


C, B, P, OPEN = Source.COMMENT, Source.BUTTON, Source.PUSH, Source.OPEN
W = "write"

# (id, source, pr, actor, verb, approval, closed, .github/devenv.yml, expected summary)
TABLE = [
    # -- a comment: the verb's level (settings or default), then closed, then trust and approval
    ("comment-writer-up-trusted", C, "trusted", "writer", "up", "absent", False, None, ("accepted", True, False, W)),
    ("comment-maintainer-up-trusted", C, "trusted", "maintainer", "up", "absent", False, None,
     ("accepted", True, False, W)),
    ("comment-reader-up-refused", C, "trusted", "reader", "up", "absent", False, None, ("refused", "permission", W, "read")),
    ("comment-triager-up-refused", C, "trusted", "triager", "up", "absent", False, None,
     ("refused", "permission", W, "read")),
    ("comment-triager-status", C, "trusted", "triager", "status", "absent", False, None,
     ("accepted", True, False, "read")),
    ("comment-nobody-status-refused", C, "trusted", "nobody", "status", "absent", False, None,
     ("refused", "permission", "read", "none")),
    ("comment-nobody-help-answered", C, "trusted", "nobody", "help", "absent", False, None,
     ("accepted", None, False, "none")),
    ("comment-help-on-closed-answered", C, "fork", "reader", "help", "absent", True, None,
     ("accepted", None, False, "read")),
    ("comment-writer-up-fork-approves-head", C, "fork", "writer", "up", "absent", False, None,
     ("accepted", False, True, W)),
    ("comment-writer-approve-moved", C, "fork", "writer", "approve", "moved", False, None,
     ("accepted", False, True, W)),
    ("comment-admin-recreate-pinned", C, "fork", "admin", "recreate", "pinned", False, None,
     ("accepted", False, True, "admin")),
    ("comment-writer-reset-readers-pr", C, "readers", "writer", "reset", "absent", False, None,
     ("accepted", False, True, W)),
    ("comment-writer-stop-fork-no-approval", C, "fork", "writer", "stop", "moved", False, None,
     ("accepted", False, False, W)),
    ("comment-author-approves-own-fork", C, "fork", "stranger", "approve", "absent", False, None,
     ("refused", "permission", W, "read")),
    ("comment-writer-agent-run-fork", C, "fork", "writer", "agent run", "absent", False, None,
     ("accepted", False, False, W)),
    ("comment-writer-agent-stop-needs-no-trust", C, "fork", "writer", "agent stop", "absent", False, None,
     ("accepted", None, False, W)),
    ("comment-writer-up-closed", C, "trusted", "writer", "up", "absent", True, None, ("closed", W)),
    ("comment-writer-agent-run-closed", C, "trusted", "writer", "agent run", "absent", True, None, ("closed", W)),
    ("comment-writer-delete-closed", C, "trusted", "writer", "delete", "absent", True, None,
     ("accepted", True, False, W)),
    ("comment-reader-status-closed", C, "fork", "reader", "status", "absent", True, None,
     ("accepted", False, False, "read")),
    ("comment-writer-agent-stop-closed", C, "trusted", "writer", "agent stop", "absent", True, None,
     ("accepted", None, False, W)),
    ("comment-reader-up-closed-refused-first", C, "trusted", "reader", "up", "absent", True, None,
     ("refused", "permission", W, "read")),
    ("comment-settings-raise-stop", C, "trusted", "writer", "stop", "absent", False, "permissions: {stop: admin}\n",
     ("refused", "permission", "admin", W)),
    ("comment-settings-raise-stop-admin", C, "trusted", "admin", "stop", "absent", False,
     "permissions: {stop: admin}\n", ("accepted", True, False, "admin")),
    ("comment-settings-lower-stop", C, "trusted", "reader", "stop", "absent", False, "permissions: {stop: read}\n",
     ("accepted", True, False, "read")),
    # -- a check-run button: at least write, whatever the settings say; only delete on a closed PR
    ("button-writer-recreate", B, "trusted", "writer", "recreate", "absent", False, None, ("accepted", True, False, W)),
    ("button-reader-recreate-refused", B, "trusted", "reader", "recreate", "absent", False, None,
     ("refused", "permission", W, "read")),
    ("button-reader-stop-needs-write-even-if-settings-say-read", B, "trusted", "reader", "stop", "absent", False,
     "permissions: {stop: read}\n", ("refused", "permission", W, "read")),
    ("button-settings-raise-recreate", B, "trusted", "writer", "recreate", "absent", False,
     "permissions: {recreate: admin}\n", ("refused", "permission", "admin", W)),
    ("button-writer-up-fork-approves-head", B, "fork", "writer", "up", "moved", False, None,
     ("accepted", False, True, W)),
    ("button-writer-sync-fork-does-not-approve", B, "fork", "writer", "sync", "pinned", False, None,
     ("accepted", False, False, W)),
    ("button-writer-stop-fork", B, "fork", "writer", "stop", "absent", False, None, ("accepted", False, False, W)),
    ("button-writer-recreate-closed", B, "trusted", "writer", "recreate", "absent", True, None, ("closed", W)),
    ("button-writer-status-closed", B, "trusted", "writer", "status", "absent", True, None, ("closed", W)),
    ("button-writer-delete-closed", B, "trusted", "writer", "delete", "absent", True, None,
     ("accepted", True, False, W)),
    # -- a push: trusted PRs follow whoever pushed; on untrusted ones a writer's push approves the new head
    ("push-trusted-anyone", P, "trusted", "reader", "sync", "absent", False, None, ("accepted", True, False, None)),
    ("push-fork-writer-moved", P, "fork", "writer", "sync", "moved", False, None, ("accepted", False, True, W)),
    ("push-fork-maintainer-absent", P, "fork", "maintainer", "sync", "absent", False, None,
     ("accepted", False, True, W)),
    ("push-fork-author-pinned", P, "fork", "stranger", "sync", "pinned", False, None,
     ("refused", "untrusted", W, "read")),
    ("push-fork-author-moved", P, "fork", "stranger", "sync", "moved", False, None,
     ("refused", "untrusted", W, "read")),
    ("push-readers-pr-by-its-author", P, "readers", "visitor", "sync", "absent", False, None,
     ("refused", "untrusted", W, "read")),
    ("push-settings-do-not-change-who-may-push", P, "fork", "writer", "sync", "moved", False,
     "permissions: {up: admin}\n", ("accepted", False, True, W)),
    # -- an opening: untrusted code is built only at the approved head
    ("open-trusted", OPEN, "trusted", "Codertocat", "up", "absent", False, None, ("accepted", True, False, None)),
    ("open-fork-absent", OPEN, "fork", "stranger", "up", "absent", False, None, ("refused", "untrusted", W, None)),
    ("open-fork-moved", OPEN, "fork", "stranger", "up", "moved", False, None, ("refused", "untrusted", W, None)),
    ("open-fork-pinned", OPEN, "fork", "stranger", "up", "pinned", False, None, ("accepted", False, False, None)),
    ("open-readers-pr-absent", OPEN, "readers", "visitor", "up", "absent", False, None, ("refused", "untrusted", W, None)),
    ("open-closed", OPEN, "trusted", "Codertocat", "up", "absent", True, None, ("closed", None)),
]


@pytest.mark.parametrize(("source", "pr", "actor", "verb", "approved", "closed", "devenv_yml", "expected"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
async def test_ask(gh, github, source, pr, actor, verb, approved, closed, devenv_yml, expected):
    decision = await ask(gh, github, source=source, pr=pr, actor=actor, verb=verb, approved=approved, closed=closed,
                         settings=devenv_yml)
    assert summary(decision) == expected
    github.assert_valid()


# -- what ask reads and remembers -----------------------------------------------------------------------


async def test_settings_come_from_the_base_commit_and_are_applied_to_the_record(gh, github):
    github.set_file(OWNER, REPO, SETTINGS_PATH, "on_push: recreate\n", ref=BASE)
    github.set_file(OWNER, REPO, SETTINGS_PATH, "on_push: ignore\npermissions: {up: read}\n", ref=HEAD)
    records = Records()
    decision = await ask(gh, github, source=C, pr="trusted", actor="writer", verb="up", records=records)
    assert decision.settings.on_push == "recreate"
    [(ref, applied, problems)] = records.configured
    assert (ref.number, applied, problems) == (PR_NUMBER, decision.settings, [])


async def test_a_broken_settings_file_is_applied_with_its_problems_and_the_defaults(gh, github):
    records = Records()
    decision = await ask(gh, github, source=C, pr="trusted", actor="reader", verb="stop", records=records,
                         settings="permissions: {stop: everyone}\n")
    assert summary(decision) == ("refused", "permission", W, "read")  # the default applies
    [(_, _, problems)] = records.configured
    assert problems and "permissions.stop" in problems[0]


async def test_trust_is_decided_once_per_pr_and_remembered(gh, github):
    records = Records()
    await ask(gh, github, source=C, pr="readers", actor="writer", verb="stop", records=records)
    assert records.record_for(pull("readers")).trusted is False
    github.set_permission(OWNER, REPO, "visitor", "write")  # the author is promoted later
    github.reset_calls()
    decision = await ask(gh, github, source=C, pr="readers", actor="writer", verb="up", records=records)
    assert summary(decision) == ("accepted", False, True, W)  # still untrusted: the record says so
    assert not github.calls_to("GET", r"/collaborators/visitor/permission$")


async def test_an_opening_decides_trust_again(gh, github):
    records = Records()
    records.set_trust(pull("readers"), True)  # decided when the author could still write
    decision = await ask(gh, github, source=OPEN, pr="readers", actor="visitor", verb="up", records=records)
    assert summary(decision) == ("refused", "untrusted", W, None)
    assert records.record_for(pull("readers")).trusted is False


async def test_a_fork_is_untrusted_without_asking_github_about_its_author(gh, github):
    await ask(gh, github, source=OPEN, pr="fork", actor="stranger", verb="up")
    assert not github.calls_to("GET", PERMISSION_CALLS)


async def test_a_push_to_a_trusted_pr_asks_nothing_about_the_pusher(gh, github):
    records = Records()
    records.set_trust(pull("trusted"), True)
    await ask(gh, github, source=P, pr="trusted", actor="reader", verb="sync", records=records)
    assert not github.calls_to("GET", PERMISSION_CALLS)


async def test_github_failing_the_permission_lookup_is_an_error_not_a_refusal(gh, github):
    github.inject("GET", PERMISSION_CALLS, status=500, times=50)
    with pytest.raises(GitHubBroken):  # the delivery fails and is logged; nobody is refused by mistake
        await ask(gh, github, source=C, pr="trusted", actor="writer", verb="up")


async def test_the_bots_environment_manager_is_the_ledger(server, github):
    """``policy_for`` builds the policy a handler asks from the running bot's own services."""
    github.set_permission(OWNER, REPO, "writer", "write")
    ctx = Context(gh=server.bot.github.installation(INSTALLATION_ID), bot=server.bot, delivery_id="policy-test")
    info = pull("fork")
    assert summary(await policy_for(ctx).ask(info, "up", "stranger", OPEN)) == ("refused", "untrusted", W, None)
    assert server.bot.environments.find(info).trusted is False
    decision = await policy_for(ctx).ask(info, "approve", "writer", C)
    assert summary(decision) == ("accepted", False, True, W)
