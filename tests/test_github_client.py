"""The API client retries what is worth retrying, waits out rate limits and paces writes."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import aiohttp
import pytest
from gidgethub import BadRequest, GitHubBroken

from bot.core.metrics import Metrics
from bot.github.auth import AppAuth
from bot.github.client import GitHubClient, GitHubUnavailable, TokenBucket
from tests.payloads import INSTALLATION_ID


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def api(settings, repo):
    sleeps = Sleeps()
    async with aiohttp.ClientSession() as session:
        auth = AppAuth(settings.app.app_id, settings.app.private_key)
        client = GitHubClient(settings, auth, session, Metrics(), sleep=sleeps)
        yield client, client.installation(INSTALLATION_ID), sleeps


COMMENTS = "/repos/Codertocat/Hello-World/issues/2/comments"


async def test_server_errors_are_retried_with_backoff(api, github):
    client, gh, sleeps = api
    github.inject(method="POST", path=r"/issues/2/comments$", status=502, times=2)
    await gh.post(COMMENTS, data={"body": "hello"})
    assert [c.status for c in github.calls_to("POST", r"/issues/2/comments$")] == [502, 502, 201]
    assert len(sleeps.waits) == 2 and sleeps.waits[1] > sleeps.waits[0]
    assert len(github.comments("Codertocat", "Hello-World", 2)) == 1


async def test_retries_are_bounded(api, github, settings):
    client, gh, sleeps = api
    github.inject(method="GET", path=r"/repos/Codertocat/Hello-World$", status=500, times=50)
    with pytest.raises(GitHubBroken):
        await gh.getitem("/repos/Codertocat/Hello-World")
    assert len(github.calls_to("GET", r"/repos/Codertocat/Hello-World$")) == settings.max_retries + 1


async def test_a_secondary_rate_limit_honours_retry_after(api, github):
    client, gh, sleeps = api
    github.inject(method="POST", path=r"/issues/2/comments$", status=403, times=1,
                  headers={"retry-after": "7"},
                  body={"message": "You have exceeded a secondary rate limit. Please wait a few minutes.",
                        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
    await gh.post(COMMENTS, data={"body": "hello"})
    assert sleeps.waits == [7.0]
    assert len(github.comments("Codertocat", "Hello-World", 2)) == 1
    assert 'devenv_github_rate_limit_hits_total{kind="secondary"} 1.0' in client.metrics.render().decode()


async def test_a_primary_rate_limit_waits_for_the_reset_time(api, github):
    client, gh, sleeps = api
    reset = int(time.time()) + 30
    github.inject(method="GET", path=r"/repos/Codertocat/Hello-World$", status=403, times=1,
                  headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
                  body={"message": "API rate limit exceeded for installation ID 1.",
                        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
    await gh.getitem("/repos/Codertocat/Hello-World")
    assert len(sleeps.waits) == 1 and 25 <= sleeps.waits[0] <= 32
    assert 'devenv_github_rate_limit_hits_total{kind="primary"} 1.0' in client.metrics.render().decode()


async def test_a_429_without_hints_backs_off_a_minute(api, github):
    client, gh, sleeps = api
    github.inject(method="GET", path=r"/repos/Codertocat/Hello-World$", status=429, times=1,
                  body={"message": "Too many requests"})
    await gh.getitem("/repos/Codertocat/Hello-World")
    assert sleeps.waits == [60.0]


async def test_a_plain_403_is_not_retried(api, github):
    client, gh, sleeps = api
    github.inject(method="GET", path=r"/repos/Codertocat/Hello-World$", status=403, times=1,
                  body={"message": "Resource not accessible by integration",
                        "documentation_url": "https://docs.github.com/rest"})
    with pytest.raises(BadRequest):
        await gh.getitem("/repos/Codertocat/Hello-World")
    assert sleeps.waits == []


async def test_writes_of_one_installation_are_serialised(api, github):
    client, gh, _ = api
    await gh.getitem("/repos/Codertocat/Hello-World")  # warm the token
    github.inject(method="POST", path=r"/issues/2/comments$", status=None, delay=0.1, times=4)
    github.inject(method="GET", path=r"/repos/Codertocat/Hello-World$", status=None, delay=0.1, times=4)
    t0 = time.perf_counter()
    await asyncio.gather(*(gh.post(COMMENTS, data={"body": f"c{i}"}) for i in range(4)))
    writes = time.perf_counter() - t0
    t0 = time.perf_counter()
    await asyncio.gather(*(gh.getitem("/repos/Codertocat/Hello-World") for _ in range(4)))
    reads = time.perf_counter() - t0
    assert writes >= 0.4  # one after another
    assert reads < 0.35  # reads run side by side
    assert [c["body"] for c in github.comments("Codertocat", "Hello-World", 2)] == ["c0", "c1", "c2", "c3"]


async def test_unreachable_github_gives_up_after_bounded_retries(settings):
    settings = dataclasses.replace(settings, api_url="http://127.0.0.1:9/api/v3", max_retries=2)
    sleeps = Sleeps()
    async with aiohttp.ClientSession() as session:
        client = GitHubClient(settings, None, session, Metrics(), sleep=sleeps)
        with pytest.raises(GitHubUnavailable):
            await client.anonymous().getitem("/rate_limit")
    assert len(sleeps.waits) == 2


async def test_the_token_bucket_allows_a_burst_then_paces():
    now = [0.0]
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    bucket = TokenBucket(per_minute=60, burst=3, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        await bucket.take()
    assert waits == [pytest.approx(1.0), pytest.approx(1.0)]


async def test_rate_limit_remaining_is_exported(api, github):
    client, gh, _ = api
    await gh.getitem("/repos/Codertocat/Hello-World")
    text = client.metrics.render().decode()
    assert f'devenv_github_rate_limit_remaining{{installation="{INSTALLATION_ID}"}}' in text
    assert 'devenv_github_api_calls_total{method="GET",status="200"} 1.0' in text


async def test_the_time_writes_wait_for_pacing_is_measured(settings, repo, github):
    now = [0.0]

    async def sleep(s: float) -> None:
        now[0] += s

    paced = dataclasses.replace(settings, writes_per_minute=60, write_burst=1)
    async with aiohttp.ClientSession() as session:
        client = GitHubClient(paced, AppAuth(settings.app.app_id, settings.app.private_key), session, Metrics(),
                              clock=lambda: now[0], sleep=sleep)
        gh = client.installation(INSTALLATION_ID)
        for i in range(3):
            await gh.post(COMMENTS, data={"body": f"c{i}"})
    text = client.metrics.render().decode()
    assert "devenv_github_write_wait_seconds_count 3.0" in text
    assert "devenv_github_write_wait_seconds_sum 2.0" in text  # burst of one, then one a second
