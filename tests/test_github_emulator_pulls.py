"""The emulator's pull request list and its conditional requests: an ETag on every answer, 304 with no
body (and no rate limit spent) to a matching If-None-Match, a new ETag once a PR changes."""

from __future__ import annotations

import aiohttp
import pytest

from tests.github_emulator.fixtures import github  # noqa: F401  (the fixture under test)
from tests.test_github_emulator import installation_gh


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def repo(github):  # noqa: F811
    github.add_installation(1, account="Codertocat")
    github.add_repo("Codertocat", "Hello-World", installation_id=1)
    for number in (1, 2, 3):
        github.add_pull("Codertocat", "Hello-World", number)
    github.state.repo("Codertocat", "Hello-World").pulls[3]["state"] = "closed"
    return github


async def test_open_pulls_are_listed_then_answered_304_until_one_changes(repo, session):
    _, token = await installation_gh(repo, session)
    url = f"{repo.api_url}/repos/Codertocat/Hello-World/pulls?state=open&per_page=100"
    headers = {"Authorization": f"token {token}", "Accept": "application/vnd.github+json"}
    async with session.get(url, headers=headers) as resp:
        assert resp.status == 200
        etag, items = resp.headers["ETag"], await resp.json()
        used = int(resp.headers["x-ratelimit-used"])
    assert [item["number"] for item in items] == [2, 1] and etag.startswith('W/"')
    async with session.get(url, headers={**headers, "If-None-Match": etag}) as resp:
        assert resp.status == 304 and await resp.read() == b"" and resp.headers["ETag"] == etag
        assert int(resp.headers["x-ratelimit-used"]) == used  # a 304 costs nothing
    repo.state.repo("Codertocat", "Hello-World").pulls[1]["head_sha"] = "e" * 40  # a push
    async with session.get(url, headers={**headers, "If-None-Match": etag}) as resp:
        assert resp.status == 200 and resp.headers["ETag"] != etag
    assert [c.status for c in repo.calls_to("GET", "pulls/list")] == [200, 304, 200]
