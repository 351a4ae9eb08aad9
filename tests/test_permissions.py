"""GitHub permissions in ``bot.github.permissions``: the levels as a table, and the one lookup's cache,
coalescing and errors against the GitHub emulator."""

from __future__ import annotations

import asyncio

import pytest
from gidgethub import GitHubBroken

from bot.github.permissions import REQUIRED_PERMISSION_DEFAULTS, Permissions, allows
from tests.test_policy import OWNER, PERMISSION_CALLS, REPO, ROLES, Clock, gh  # noqa: F401  (gh: the fixture)

# -- permission levels -------------------------------------------------------------------------------


def test_only_status_and_help_are_open_to_readers():
    assert {v for v, need in REQUIRED_PERMISSION_DEFAULTS.items() if need == "read"} == {"status", "help", "logs"}
    # prebuild asks for the maintain role (handlers/prebuilds.py checks GitHub's role_name); the rest read or write
    assert {need for need in REQUIRED_PERMISSION_DEFAULTS.values()} == {"read", "write", "maintain"}
    assert [v for v, need in REQUIRED_PERMISSION_DEFAULTS.items() if need == "maintain"] == ["prebuild"]


PERMISSIONS = [
    ("admin", "write", True),
    ("maintain", "write", True),
    ("write", "write", True),
    ("triage", "write", False),
    ("read", "write", False),
    ("none", "write", False),
    ("triage", "read", True),
    ("read", "triage", True),
    ("write", "maintain", True),
    ("maintain", "admin", False),
    ("none", "none", True),
    ("none", "read", False),
    ("ADMIN", "Write", True),
    ("owner", "read", False),
    ("", "read", False),
    ("admin", "superuser", False),
]


@pytest.mark.parametrize(("have", "need", "allowed"), PERMISSIONS, ids=[f"{h or 'empty'}-for-{n}" for h, n, _ in PERMISSIONS])
def test_permission_allows_follows_githubs_levels(have, need, allowed):
    assert allows(have, need) is allowed


# -- the permission lookup ------------------------------------------------------------------------------


async def test_the_lookup_reads_githubs_permission_field(gh):
    permissions = Permissions()
    answers = {login: await permissions.of(gh, OWNER, REPO, login) for login in ROLES}
    assert answers == {"admin": "admin", "maintainer": "write", "writer": "write", "triager": "read",
                       "reader": "read", "nobody": "none", "stranger": "read", "visitor": "read"}


async def test_an_unknown_user_has_no_permission(gh, github):
    github.nonexistent_users.add("ghost")
    assert await Permissions().of(gh, OWNER, REPO, "ghost") == "none"


async def test_one_answer_serves_every_ask_for_its_time_to_live(gh, github):
    clock = Clock()
    permissions = Permissions(ttl=60, clock=clock)
    github.reset_calls()
    assert await permissions.of(gh, OWNER, REPO, "writer") == "write"
    assert await permissions.of(gh, OWNER.lower(), REPO.upper(), "Writer") == "write"  # case does not matter
    assert len(github.calls_to("GET", PERMISSION_CALLS)) == 1
    github.set_permission(OWNER, REPO, "writer", "read")
    clock.now += 59
    assert await permissions.of(gh, OWNER, REPO, "writer") == "write"
    clock.now += 2
    assert await permissions.of(gh, OWNER, REPO, "writer") == "read"
    assert len(github.calls_to("GET", PERMISSION_CALLS)) == 2


async def test_concurrent_asks_for_one_user_share_one_request(gh, github):
    permissions = Permissions()
    github.reset_calls()
    github.inject("GET", r"/collaborators/writer/permission$", delay=0.2)
    answers = await asyncio.gather(*(permissions.of(gh, OWNER, REPO, "writer") for _ in range(20)),
                                   permissions.of(gh, OWNER, REPO, "reader"))
    assert answers == ["write"] * 20 + ["read"]
    assert len(github.calls_to("GET", r"/collaborators/writer/permission$")) == 1
    assert permissions.lookups == 2


async def test_a_failed_lookup_is_not_cached(gh, github):
    permissions = Permissions()
    github.inject("GET", PERMISSION_CALLS, status=500, times=50)
    with pytest.raises(GitHubBroken):  # after the client's own retries
        await permissions.of(gh, OWNER, REPO, "writer")
    github.faults.clear()
    assert await permissions.of(gh, OWNER, REPO, "writer") == "write"
