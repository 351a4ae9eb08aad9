"""The GitHub emulator behaves like GitHub and catches requests GitHub would refuse."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import gidgethub
import jwt
import pytest
from gidgethub.aiohttp import GitHubAPI
from gidgethub.apps import get_installation_access_token, get_jwt

from tests.github_emulator import SHARED_GITHUB, GitHubEmulator
from tests.github_emulator.fixtures import github  # noqa: F401  (the fixture under test)

SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def repo(github):
    github.add_installation(1, "Codertocat")
    github.add_repo("Codertocat", "Hello-World", installation_id=1)
    github.add_pull("Codertocat", "Hello-World", number=2, head_sha=SHA)
    return github


async def installation_gh(emu, session, installation_id=1) -> tuple[GitHubAPI, str]:
    app_gh = GitHubAPI(session, "devenv-bot-tests", base_url=emu.api_url)
    answer = await get_installation_access_token(app_gh, installation_id=str(installation_id),
                                                 app_id=str(emu.app_id), private_key=emu.private_key_pem)
    return GitHubAPI(session, "devenv-bot-tests", oauth_token=answer["token"], base_url=emu.api_url), answer["token"]


def forget_expected_errors(emu: GitHubEmulator) -> list[str]:
    errors, emu.validation_errors = emu.validation_errors, []
    return errors


def test_the_reference_data_is_found_beside_the_repository():
    assert (SHARED_GITHUB / "api.github.com.json").is_file()


async def test_a_whole_bot_flow_through_gidgethub_is_valid(repo, session):
    gh_app = GitHubAPI(session, "t", base_url=repo.api_url)
    app = await gh_app.getitem("/app", jwt=get_jwt(app_id=str(repo.app_id), private_key=repo.private_key_pem))
    assert (app["id"], app["slug"]) == (repo.app_id, "devenv-bot")

    gh, token = await installation_gh(repo, session)
    assert token.startswith("ghs_") and repo.tokens_minted == 1

    comment = await gh.post("/repos/{owner}/{repo}/issues/{number}/comments",
                            url_vars={"owner": "Codertocat", "repo": "Hello-World", "number": 2},
                            data={"body": "Starting your environment…"})
    assert comment["user"]["login"] == "devenv-bot[bot]" == repo.bot_login
    assert comment["user"]["type"] == "Bot"
    await gh.patch(comment["url"], data={"body": "Ready"})
    assert [c["body"] for c in repo.comments("Codertocat", "Hello-World", 2)] == ["Ready"]

    run = await gh.post("/repos/Codertocat/Hello-World/check-runs",
                        data={"name": "devenv", "head_sha": SHA, "status": "in_progress"})
    assert run["conclusion"] is None and run["pull_requests"][0]["number"] == 2
    done = await gh.patch(f"/repos/Codertocat/Hello-World/check-runs/{run['id']}",
                          data={"conclusion": "success", "output": {"title": "Up", "summary": "ok"},
                                "actions": [{"label": "Stop", "description": "Stop it", "identifier": "stop"}]})
    assert (done["status"], done["conclusion"]) == ("completed", "success")
    assert repo.check_runs("Codertocat", "Hello-World")[0]["actions"][0]["identifier"] == "stop"
    listed = await gh.getitem(f"/repos/Codertocat/Hello-World/commits/{SHA}/check-runs?check_name=devenv")
    assert listed["total_count"] == 1

    await gh.post(comment["url"] + "/reactions", data={"content": "rocket"},
                  accept="application/vnd.github+json")
    assert [r["content"] for r in repo.reactions("Codertocat", "Hello-World", comment["id"])] == ["rocket"]

    kinds = [(c.operation_id, c.auth_kind) for c in repo.calls]
    assert kinds[:3] == [("apps/get-authenticated", "jwt"), ("apps/create-installation-access-token", "jwt"),
                         ("issues/create-comment", "installation")]
    assert repo.calls_to("PATCH", "issues/update-comment")[0].json == {"body": "Ready"}
    assert repo.calls[-1].headers  # recorded
    assert repo.validation_errors == []


async def test_a_check_run_with_four_actions_is_refused_and_recorded(repo, session):
    gh, _ = await installation_gh(repo, session)
    action = {"label": "Go", "description": "Do it", "identifier": "go"}
    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.post("/repos/Codertocat/Hello-World/check-runs",
                      data={"name": "devenv", "head_sha": SHA, "actions": [action] * 4})
    assert refused.value.status_code == 422
    errors = forget_expected_errors(repo)
    assert len(errors) == 1 and "is too long" in errors[0] and "checks/create" in errors[0]
    assert repo.check_runs("Codertocat", "Hello-World") == []


async def test_a_reaction_github_does_not_know_is_refused(repo, session):
    gh, _ = await installation_gh(repo, session)
    comment = repo.add_comment("Codertocat", "Hello-World", 2, "/devenv up")
    with pytest.raises(gidgethub.BadRequest):
        await gh.post(comment["url"] + "/reactions", data={"content": "smile"})
    assert "'smile' is not one of" in forget_expected_errors(repo)[0]


async def test_a_comment_without_its_required_body_is_refused(repo, session):
    gh, _ = await installation_gh(repo, session)
    with pytest.raises(gidgethub.BadRequest):
        await gh.post("/repos/Codertocat/Hello-World/issues/2/comments", data={"text": "hi"})
    assert "'body' is a required property" in forget_expected_errors(repo)[0]
    assert repo.comments("Codertocat", "Hello-World", 2) == []


async def test_a_misspelt_query_parameter_is_reported(repo, session):
    gh, _ = await installation_gh(repo, session)
    await gh.getitem(f"/repos/Codertocat/Hello-World/commits/{SHA}/check-runs?checkname=devenv")
    assert "unknown query parameter 'checkname'" in forget_expected_errors(repo)[0]


async def test_an_endpoint_the_emulator_lacks_is_reported(repo, session):
    gh, _ = await installation_gh(repo, session)
    with pytest.raises(gidgethub.BadRequest) as missing:
        await gh.getitem("/repos/Codertocat/Hello-World/branches")
    assert missing.value.status_code == 404
    assert "no such emulated endpoint" in forget_expected_errors(repo)[0]


async def test_check_run_rules_beyond_the_schema_are_enforced(repo, session):
    gh, _ = await installation_gh(repo, session)
    url = "/repos/Codertocat/Hello-World/check-runs"
    with pytest.raises(gidgethub.ValidationError):  # 65535 characters, but 3 bytes each
        await gh.post(url, data={"name": "x", "head_sha": SHA, "output": {"title": "t", "summary": "€" * 30000}})
    with pytest.raises(gidgethub.InvalidField):
        await gh.post(url, data={"name": "x", "head_sha": SHA, "status": "completed"})
    run = await gh.post(url, data={"name": "x", "head_sha": SHA, "conclusion": "neutral"})
    assert run["status"] == "completed" and run["completed_at"]
    assert repo.validation_errors == []


async def test_expired_or_revoked_tokens_answer_bad_credentials(repo, session):
    gh, _ = await installation_gh(repo, session)
    await gh.getitem("/repos/Codertocat/Hello-World")
    repo.expire_tokens()
    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.getitem("/repos/Codertocat/Hello-World")
    assert refused.value.status_code == 401 and "Bad credentials" in str(refused.value)

    repo.token_ttl = 60
    gh, _ = await installation_gh(repo, session)
    await gh.getitem("/repos/Codertocat/Hello-World")
    repo.advance_clock(61)
    with pytest.raises(gidgethub.BadRequest) as expired:
        await gh.getitem("/repos/Codertocat/Hello-World")
    assert expired.value.status_code == 401


async def test_a_jwt_longer_than_ten_minutes_or_badly_signed_is_refused(repo, session):
    gh = GitHubAPI(session, "t", base_url=repo.api_url)
    now = int(time.time())
    too_long = jwt.encode({"iat": now - 60, "exp": now + 600, "iss": str(repo.app_id)}, repo.private_key_pem, "RS256")
    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.getitem("/app", jwt=too_long)
    assert "too far in the future" in str(refused.value)
    expired = jwt.encode({"iat": now - 700, "exp": now - 100, "iss": str(repo.app_id)}, repo.private_key_pem, "RS256")
    with pytest.raises(gidgethub.BadRequest):
        await gh.getitem("/app", jwt=expired)
    with pytest.raises(gidgethub.BadRequest):  # an installation token is no JWT
        await gh.getitem("/app", oauth_token="ghs_whatever")
    assert [c.status for c in repo.calls] == [401, 401, 401]


async def test_the_app_finds_its_installations_with_a_jwt(repo, session):
    repo.add_repo("acme", "private-thing", private=True, installation_id=9)
    gh = GitHubAPI(session, "t", base_url=repo.api_url)
    token = get_jwt(app_id=str(repo.app_id), private_key=repo.private_key_pem)
    installations = [i async for i in gh.getiter("/app/installations", jwt=token)]
    assert [(i["id"], i["account"]["login"]) for i in installations] == [(1, "Codertocat"), (9, "acme")]
    found = await gh.getitem("/repos/acme/private-thing/installation", jwt=token)
    assert found["id"] == 9
    with pytest.raises(gidgethub.BadRequest) as hidden:  # no token: a private repository does not exist
        await gh.getitem("/repos/acme/private-thing")
    assert hidden.value.status_code == 404
    assert (await gh.getitem("/repos/Codertocat/Hello-World"))["private"] is False  # public: readable
    assert repo.calls[-1].auth_kind == "none"


async def test_a_narrowed_token_only_reaches_its_repositories_and_permissions(repo, session):
    repo.add_repo("Codertocat", "Other", installation_id=1, private=True)
    gh_app = GitHubAPI(session, "t", base_url=repo.api_url)
    jwt_ = get_jwt(app_id=str(repo.app_id), private_key=repo.private_key_pem)
    answer = await gh_app.post("/app/installations/1/access_tokens", jwt=jwt_,
                               data={"repositories": ["Hello-World"], "permissions": {"contents": "write"}})
    assert answer["repository_selection"] == "selected"
    assert [r["name"] for r in answer["repositories"]] == ["Hello-World"]
    assert repo.token_requests[-1] == {"repositories": ["Hello-World"], "permissions": {"contents": "write"}}
    gh = GitHubAPI(session, "t", oauth_token=answer["token"], base_url=repo.api_url)
    repo.set_file("Codertocat", "Hello-World", ".devcontainer/devcontainer.json", '{"image": "x"}')
    file = await gh.getitem("/repos/Codertocat/Hello-World/contents/.devcontainer/devcontainer.json?ref=main")
    assert base64.b64decode(file["content"]) == b'{"image": "x"}'
    with pytest.raises(gidgethub.BadRequest) as forbidden:  # contents:write only: no pull_requests
        await gh.post("/repos/Codertocat/Hello-World/issues/2/comments", data={"body": "no"})
    assert forbidden.value.status_code == 403
    assert "pull_requests=write" in repo.permission_denials.pop()
    with pytest.raises(gidgethub.BadRequest) as hidden:
        await gh.getitem("/repos/Codertocat/Other")
    assert hidden.value.status_code == 404
    with pytest.raises(gidgethub.BadRequest) as absent:
        await gh.getitem("/repos/Codertocat/Hello-World/contents/missing.txt")
    assert absent.value.status_code == 404


async def test_collaborator_permissions_follow_github(repo, session):
    gh, _ = await installation_gh(repo, session)
    repo.set_permission("Codertocat", "Hello-World", "alice", "maintain")
    url = "/repos/Codertocat/Hello-World/collaborators/{u}/permission"
    alice = await gh.getitem(url, url_vars={"u": "alice"})
    stranger = await gh.getitem(url, url_vars={"u": "mallory"})
    assert (alice["permission"], alice["role_name"]) == ("write", "maintain")
    assert stranger["permission"] == "read"


async def test_comments_paginate_with_a_link_header(repo, session):
    gh, _ = await installation_gh(repo, session)
    for n in range(5):
        repo.add_comment("Codertocat", "Hello-World", 2, f"comment {n}")
    bodies = [c["body"] async for c in gh.getiter("/repos/Codertocat/Hello-World/issues/2/comments?per_page=2")]
    assert bodies == [f"comment {n}" for n in range(5)]
    assert len(repo.calls_to("GET", "issues/list-comments")) == 3


async def test_reacting_twice_the_same_way_answers_200_with_the_same_reaction(repo, session):
    gh, token = await installation_gh(repo, session)
    comment = repo.add_comment("Codertocat", "Hello-World", 2, "/devenv up")
    url = f"{repo.api_url}/repos/Codertocat/Hello-World/issues/comments/{comment['id']}/reactions"
    headers = {"Authorization": f"token {token}"}
    first = await session.post(url, json={"content": "eyes"}, headers=headers)
    second = await session.post(url, json={"content": "eyes"}, headers=headers)
    assert (first.status, second.status) == (201, 200)
    assert (await first.json())["id"] == (await second.json())["id"]
    assert first.headers["x-ratelimit-remaining"] == str(int(second.headers["x-ratelimit-remaining"]) + 1)
    gone = await session.delete(f"{url}/{(await first.json())['id']}", headers=headers)
    assert gone.status == 204 and repo.reactions("Codertocat", "Hello-World", comment["id"]) == []


async def test_injected_faults_happen_the_given_number_of_times_then_stop(repo, session):
    gh, token = await installation_gh(repo, session)
    fault = repo.inject("POST", r"/issues/\d+/comments$", status=502, times=2)
    url = f"{repo.api_url}/repos/Codertocat/Hello-World/issues/2/comments"
    headers = {"Authorization": f"token {token}"}
    statuses = [(await session.post(url, json={"body": "hi"}, headers=headers)).status for _ in range(3)]
    assert statuses == [502, 502, 201] and fault.hits == 2
    assert [c.injected for c in repo.calls_to("POST", "issues/create-comment")] == [True, True, False]

    repo.inject_secondary_rate_limit("POST", "issues/create-comment", retry_after=7)
    limited = await session.post(url, json={"body": "hi"}, headers=headers)
    assert limited.status == 403 and limited.headers["retry-after"] == "7"
    assert "secondary rate limit" in (await limited.json())["message"]

    repo.inject("GET", "repos/get", status=429, headers={"retry-after": "1"})
    assert (await session.get(f"{repo.api_url}/repos/Codertocat/Hello-World", headers=headers)).status == 429

    repo.inject("GET", "repos/get", delay=0.2)
    started = time.monotonic()
    slow = await session.get(f"{repo.api_url}/repos/Codertocat/Hello-World", headers=headers)
    assert slow.status == 200 and time.monotonic() - started >= 0.2
    assert len(repo.comments("Codertocat", "Hello-World", 2)) == 1


async def test_the_rate_limit_runs_out_per_installation(repo, session):
    repo.rate_limit = 3
    gh, token = await installation_gh(repo, session)
    for _ in range(3):
        await gh.getitem("/repos/Codertocat/Hello-World")
    with pytest.raises(gidgethub.RateLimitExceeded):
        await gh.getitem("/repos/Codertocat/Hello-World")
    limits = await gh.getitem("/rate_limit")
    assert limits["resources"]["core"]["remaining"] == 0


async def test_the_manifest_flow_redirects_with_a_code_and_converts_to_the_app_credentials(github, session):
    manifest = {"name": "devenv-bot", "url": "https://bot.example", "hook_attributes": {"url": "https://bot.example/hook"},
                "redirect_url": "https://bot.example/setup/done", "default_permissions": {"checks": "write"},
                "default_events": ["check_run"], "public": False}
    page = await session.post(f"{github.url}/organizations/acme/settings/apps/new?state=xyz",
                              data={"manifest": json.dumps(manifest)}, allow_redirects=False)
    assert page.status == 302
    location = urlsplit(page.headers["Location"])
    query = parse_qs(location.query)
    assert location.netloc == "bot.example" and query["state"] == ["xyz"]
    assert github.last_manifest == manifest

    gh = GitHubAPI(session, "t", base_url=github.api_url)
    app = await gh.post("/app-manifests/{code}/conversions", url_vars={"code": query["code"][0]}, data=b"")
    assert (app["id"], app["pem"], app["webhook_secret"], app["client_secret"]) == (
        github.app_id, github.private_key_pem, github.webhook_secret, github.client_secret)
    assert github.manifest_conversions == [query["code"][0]]
    with pytest.raises(gidgethub.BadRequest):  # single use
        await gh.post("/app-manifests/{code}/conversions", url_vars={"code": query["code"][0]}, data=b"")

    bad = await session.post(f"{github.url}/settings/apps/new", data={"manifest": json.dumps({"name": "x"})},
                             allow_redirects=False)
    assert bad.status == 422 and "manifest lacks" in forget_expected_errors(github)[0]


async def test_the_oauth_web_flow_gives_a_user_token_for_get_user(github, session):
    github.oauth_login = "octocat"
    page = await session.get(f"{github.url}/login/oauth/authorize",
                             params={"client_id": github.client_id, "redirect_uri": "https://bot.example/cb",
                                     "state": "s"}, allow_redirects=False)
    code = parse_qs(urlsplit(page.headers["Location"]).query)["code"][0]
    answer = await session.post(f"{github.url}/login/oauth/access_token", headers={"Accept": "application/json"},
                                data={"client_id": github.client_id, "client_secret": github.client_secret,
                                      "code": code})
    token = (await answer.json())["access_token"]
    gh = GitHubAPI(session, "t", oauth_token=token, base_url=github.api_url)
    assert (await gh.getitem("/user"))["login"] == "octocat"
    assert github.calls[-1].auth_kind == "user"
    again = await session.post(f"{github.url}/login/oauth/access_token", headers={"Accept": "application/json"},
                               data={"client_id": github.client_id, "client_secret": github.client_secret,
                                     "code": code})
    assert (await again.json())["error"] == "bad_verification_code"


async def test_several_emulators_run_side_by_side(session):
    async with GitHubEmulator() as one, GitHubEmulator(app_id=7) as two:
        assert one.port != two.port and two.app_id == 7
        await asyncio.gather(one.close(), two.close())
