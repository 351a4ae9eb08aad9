"""app.yml asks for exactly the events the handlers listen to and exactly the permissions the code
needs: each one needed, none higher than needed, none missing.

What the code needs is derived, never copied from app.yml:

* the REST operations the code can call, read from its source (``tests/bot_calls.py``) and looked up
  in the GitHub emulator's permission table (``tests/github_emulator/permissions.py``, written from
  GitHub's "Permissions required for GitHub Apps"; the emulator enforces that same table on every
  request of every test, with installations holding app.yml's permissions);
* the webhook events the handlers subscribe to, as GitHub's description states their permissions;
* the permissions the code asks for when it mints narrowed installation tokens (the read-only
  clone token, the agent's push token): GitHub refuses to mint more than the installation holds.
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass

import pytest
import yaml

from bot.core.dispatch import Dispatcher
from bot.core.metrics import Metrics
from bot.setup.manifest import APP_YML
from handlers import ROUTERS
from tests.bot_calls import rest_calls, token_permission_requests
from tests.github_emulator.permissions import (
    LEVELS,
    NEEDS,
    PermissionSet,
    accepted_header,
    app_permissions,
    grants,
    one,
    webhook_needs,
    with_metadata,
)

# GitHub sends these to every app without a subscription; they cannot be listed in default_events.
ALWAYS_DELIVERED = {"installation", "installation_repositories", "github_app_authorization"}
MANIFEST = yaml.safe_load(APP_YML.read_text())
GRANTED: dict[str, str] = MANIFEST["default_permissions"]
# The bot comments on pull requests only: every issue-comment call goes through PullRequestAPI,
# bound to a PullRef (checked below), and GitHub asks "Pull requests" for a pull request's thread.
THREAD = "pull"
THREAD_MODULE = "bot/github/pulls.py"


@dataclass(frozen=True)
class Requirement:
    kind: str  # "rest" (an operation the code calls), "webhook" (an event subscribed to), "token"
    where: str  # the code's path:line, or the event
    why: str
    any_of: tuple[PermissionSet, ...]

    def names(self) -> set[str]:
        return {name for s in self.any_of for name, _ in s}


def handled_events() -> dict[str, list[str] | None]:
    """event -> the actions the handlers register (None: every action of the event)."""
    router = Dispatcher(ROUTERS, Metrics()).router
    handled: dict[str, list[str] | None] = {event: None for event in router._shallow_routes}
    for event, details in router._deep_routes.items():
        assert set(details) == {"action"}, f"{event}: routed on {set(details)}, not only on the action"
        if event not in handled:
            handled[event] = sorted(details["action"])
    return {event: actions for event, actions in handled.items() if event not in ALWAYS_DELIVERED}


def webhook_requirements() -> list[Requirement]:
    found: dict[tuple[str, str], list[str]] = {}
    needs: dict[str, tuple[PermissionSet, ...]] = {}
    for event, actions in sorted(handled_events().items()):
        for action in actions or [None]:
            for sentence, any_of in webhook_needs(event, action):
                found.setdefault((event, sentence), []).append(action or "every action")
                needs[sentence] = any_of
    return [Requirement("webhook", event, f"the {event} webhook ({', '.join(actions)}): {sentence}", needs[sentence])
            for (event, sentence), actions in found.items()]


@functools.cache
def requirements() -> list[Requirement]:
    found = []
    for call in rest_calls().calls:
        need = NEEDS.get(call.operation_id)
        if need is None:  # reported by test_every_github_call_in_the_code_is_found_and_has_a_permission_entry
            continue
        found.append(Requirement("rest", call.where, f"{call.method} {call.template} ({call.operation_id}) at "
                                 f"{call.where}; {need.doc}", need.sets_for(THREAD)))
    found += webhook_requirements()
    tokens, _ = token_permission_requests()
    for permission, levels in tokens.items():
        for level, places in levels.items():
            found += [Requirement("token", where, f"an installation token minted with {permission}: {level} at "
                                  f"{where} (GitHub mints only what the installation holds)", one(permission, level))
                      for where in places]
    return [r for r in found if r.any_of]  # JWT, user-token and anonymous calls need no App permission


def unmet(granted: dict[str, str]) -> list[Requirement]:
    return [r for r in requirements() if not grants(granted, r.any_of)]


def listing(items: list[Requirement]) -> str:
    return "\n".join(textwrap.fill(f"- {r.why}: needs {accepted_header(r.any_of)}", 110,
                                   subsequent_indent="    ") for r in items)


def test_app_yml_subscribes_to_exactly_the_handled_events():
    handled = Dispatcher(ROUTERS, Metrics()).events() - ALWAYS_DELIVERED
    assert set(MANIFEST["default_events"]) == handled


def test_every_github_call_in_the_code_is_found_and_has_a_permission_entry():
    found = rest_calls()
    assert not found.problems, "REST calls the scan cannot place:\n" + "\n".join(found.problems)
    assert found.calls, "the scan found no REST call at all: is it still looking at the right code?"
    missing = sorted({f"{c.operation_id} ({c.method} {c.template}, {c.where})" for c in found.calls
                      if c.operation_id not in NEEDS})
    assert not missing, ("operations the bot calls that tests/github_emulator/permissions.py does not know; "
                         "add them from GitHub's docs:\n" + "\n".join(missing))
    _, problems = token_permission_requests()
    assert not problems, "token permissions the scan cannot resolve:\n" + "\n".join(problems)


def test_comments_are_only_made_on_pull_request_threads():
    by_thread = [c for c in rest_calls().calls if NEEDS[c.operation_id].by_thread]
    assert by_thread and all(c.where.startswith(THREAD_MODULE + ":") for c in by_thread), (
        f"issue-comment calls outside {THREAD_MODULE} (the pull request API) may target plain issues, "
        f"which need the Issues permission: {[c.where for c in by_thread]}")


def test_app_yml_grants_everything_the_code_needs():
    missing = unmet(with_metadata(GRANTED))  # GitHub adds metadata: read to every App
    assert not missing, "app.yml's default_permissions lack what these need:\n" + listing(missing)


@pytest.mark.parametrize("permission", sorted(GRANTED))
def test_every_permission_app_yml_grants_is_needed(permission):
    without = {name: level for name, level in GRANTED.items() if name != permission}
    assert unmet(without), (f"app.yml grants {permission}: {GRANTED[permission]} but nothing the code calls, "
                            "subscribes to or mints needs it")


@pytest.mark.parametrize("permission", sorted(p for p, level in GRANTED.items() if LEVELS[level] > 1))
def test_no_permission_is_higher_than_needed(permission):
    lower = next(name for name, value in LEVELS.items() if value == LEVELS[GRANTED[permission]] - 1)
    needing = unmet({**GRANTED, permission: lower})
    assert needing, f"app.yml grants {permission}: {GRANTED[permission]} but {lower} would do for everything"
    assert all(permission in r.names() for r in needing), listing(needing)


def test_contents_write_is_needed_only_by_the_agents_push_token():
    """The one write to repository contents is the push token ``/devenv agent run`` mints."""
    needing = unmet({**GRANTED, "contents": "read"})
    assert len(needing) == 1, listing(needing)
    assert needing[0].kind == "token" and needing[0].where.startswith("bot/agent/"), listing(needing)


def test_the_emulators_installations_hold_app_yml_permissions():
    assert app_permissions() == with_metadata(GRANTED)


def test_the_scan_reads_literals_constants_fstrings_and_levels_passed_down(tmp_path):
    source = tmp_path / "module.py"
    source.write_text(textwrap.dedent('''
        PATH = "/repos/{owner}/{repo}/contents/{+path}{?ref}"

        class Api:
            def __init__(self, gh, ref):
                self.gh = gh
                self._repo = f"/repos/{ref.owner}/{ref.repo}"

            async def calls(self, url):
                await self.gh.getitem(PATH, {"owner": "o"})
                await self.gh.post(f"{self._repo}/check-runs", data={})
                await self.gh.getitem(url)
                await self.gh.getitem("/repos/o/r/no-such-thing")
                await self.kube.delete("pods", "x")

            async def mint(self, repo, level):
                return await self.auth.mint(1, {"permissions": {"contents": level, "checks": "read"}})

            async def push(self):
                return await self.mint("r", "write")
    '''))
    found = rest_calls([source])
    assert [(c.method, c.operation_id) for c in found.calls] == [("GET", "repos/get-content"),
                                                                ("POST", "checks/create")]
    assert len(found.problems) == 2 and "getitem(url)" in found.problems[0]
    requested, problems = token_permission_requests([source])
    assert {p: set(levels) for p, levels in requested.items()} == {"contents": {"write"}, "checks": {"read"}}
    assert not problems
