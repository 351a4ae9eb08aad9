"""The GitHub emulator enforces App permissions as GitHub does, from one documented table.

Installations hold app.yml's permissions; installation tokens hold those, or what the token request
narrowed them to; every request made with one needs the permission its operation needs
(``tests/github_emulator/permissions.py``), else GitHub's 403, recorded so the test fails.
"""

from __future__ import annotations

import aiohttp
import gidgethub
import pytest
from gidgethub.aiohttp import GitHubAPI
from gidgethub.apps import get_jwt

from tests.github_emulator import GitHubEmulator
from tests.github_emulator.openapi import load_description, operation_id
from tests.github_emulator.permissions import NEEDS, app_permissions
from tests.github_emulator.rest import ROUTES

SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
CREDENTIAL_OF_ROUTE = {"jwt": "jwt", "none": "none", "user": "user", "repo": "installation", "any": "installation"}


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def token_gh(emu: GitHubEmulator, session, body: dict | None = None, installation_id: int = 1) -> GitHubAPI:
    app = GitHubAPI(session, "t", base_url=emu.api_url)
    jwt_ = get_jwt(app_id=str(emu.app_id), private_key=emu.private_key_pem)
    answer = await app.post(f"/app/installations/{installation_id}/access_tokens", jwt=jwt_, data=body or {})
    return GitHubAPI(session, "t", oauth_token=answer["token"], base_url=emu.api_url)


def limited(github: GitHubEmulator, permissions: dict[str, str]) -> GitHubEmulator:
    """Codertocat/Hello-World with PR #2 and issue #3, installed with only ``permissions``."""
    github.add_installation(1, "Codertocat", permissions=permissions)
    github.add_repo("Codertocat", "Hello-World", installation_id=1)
    github.add_pull("Codertocat", "Hello-World", number=2, head_sha=SHA)
    github.add_issue("Codertocat", "Hello-World", number=3)
    return github


def forget_denials(emu: GitHubEmulator) -> list[str]:
    denials, emu.permission_denials = emu.permission_denials, []
    return denials


def test_every_emulated_operation_has_a_permission_entry_for_its_credential():
    for route in ROUTES:
        op = operation_id(route.template, route.method)
        assert op in NEEDS, f"{route.method} {route.template}: add {op} to permissions.NEEDS"
        assert NEEDS[op].credential == CREDENTIAL_OF_ROUTE[route.auth], op


def test_every_entry_is_an_operation_of_githubs_description():
    known = {op["operationId"] for item in load_description()["paths"].values()
             for op in item.values() if isinstance(op, dict) and "operationId" in op}
    assert set(NEEDS) <= known
    assert all(need.doc for need in NEEDS.values())


async def test_installations_and_their_tokens_hold_app_yml_permissions(github, session):
    github.add_installation(1, "Codertocat")
    assert github.app_permissions == app_permissions() == github.state.installations[1]["permissions"]
    app = GitHubAPI(session, "t", base_url=github.api_url)
    answer = await app.post("/app/installations/1/access_tokens", data={},
                            jwt=get_jwt(app_id=str(github.app_id), private_key=github.private_key_pem))
    assert answer["permissions"] == app_permissions()


async def test_a_missing_permission_answers_githubs_403_and_fails_the_test(github, session):
    gh = await token_gh(limited(github, {"checks": "write"}), session)
    await gh.post("/repos/Codertocat/Hello-World/check-runs", data={"name": "devenv", "head_sha": SHA})
    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.post("/repos/Codertocat/Hello-World/issues/2/comments", data={"body": "hi"})
    assert refused.value.status_code == 403
    assert refused.value.args == ("Resource not accessible by integration",)
    call = github.calls_to("POST", "issues/create-comment")[-1]
    assert call.response["documentation_url"] == "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
    with pytest.raises(AssertionError, match="needed an App permission"):
        github.assert_valid()
    assert "pull_requests=write" in forget_denials(github)[0]


async def test_issue_comments_need_the_permission_of_their_thread(github, session):
    gh = await token_gh(limited(github, {"pull_requests": "write"}), session)
    await gh.post("/repos/Codertocat/Hello-World/issues/2/comments", data={"body": "on the pull request"})
    with pytest.raises(gidgethub.BadRequest):
        await gh.post("/repos/Codertocat/Hello-World/issues/3/comments", data={"body": "on the issue"})
    assert "issues=write" in forget_denials(github)[0]
    github.state.installations[1]["permissions"] = {"issues": "write"}
    gh = await token_gh(github, session)
    await gh.post("/repos/Codertocat/Hello-World/issues/3/comments", data={"body": "on the issue"})
    with pytest.raises(gidgethub.BadRequest):
        await gh.post("/repos/Codertocat/Hello-World/issues/2/comments", data={"body": "on the pull request"})
    assert "pull_requests=write" in forget_denials(github)[0]


async def test_reactions_to_a_pull_requests_comments_need_issues_write(github, session):
    gh = await token_gh(limited(github, {"pull_requests": "write"}), session)
    comment = await gh.post("/repos/Codertocat/Hello-World/issues/2/comments", data={"body": "/devenv up"})
    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.post(f"/repos/Codertocat/Hello-World/issues/comments/{comment['id']}/reactions",
                      data={"content": "eyes"})
    assert refused.value.status_code == 403
    assert github.calls[-1].status == 403 and "issues=write" in forget_denials(github)[0]


async def test_a_narrowed_token_holds_only_what_it_asked_for_and_no_more_than_granted(github, session):
    limited(github, {"contents": "read", "checks": "write"})
    gh = await token_gh(github, session, {"repositories": ["Hello-World"], "permissions": {"contents": "read"}})
    await gh.getitem("/repos/Codertocat/Hello-World/collaborators/octocat/permission")  # metadata: implied
    with pytest.raises(gidgethub.BadRequest):
        await gh.post("/repos/Codertocat/Hello-World/check-runs", data={"name": "devenv", "head_sha": SHA})
    assert "checks=write" in forget_denials(github)[0]
    with pytest.raises(gidgethub.BadRequest) as refused:  # an App mints only what it was granted
        await token_gh(github, session, {"permissions": {"contents": "write"}})
    assert refused.value.status_code == 422


async def test_an_operation_missing_from_the_table_fails_loudly(github, session, monkeypatch):
    gh = await token_gh(limited(github, {"checks": "write"}), session)
    monkeypatch.delitem(NEEDS, "checks/create")
    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.post("/repos/Codertocat/Hello-World/check-runs", data={"name": "devenv", "head_sha": SHA})
    assert refused.value.status_code == 403
    errors, github.validation_errors = github.validation_errors, []
    assert "no installation permissions for checks/create" in errors[0]
