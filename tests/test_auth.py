"""App JWTs and installation tokens: minted rarely, cached, refreshed before expiry, re-minted on 401."""

from __future__ import annotations

import asyncio

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bot.core.metrics import Metrics
from bot.github.auth import AppAuth
from bot.github.client import GitHubClient
from tests.payloads import INSTALLATION_ID


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(settings, repo):
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        auth = AppAuth(settings.app.app_id, settings.app.private_key)  # real clock: the emulator checks times
        yield GitHubClient(settings, auth, session, Metrics()), auth, clock


def test_the_app_jwt_is_backdated_short_lived_and_reused(settings, github):
    clock = Clock()
    auth = AppAuth(settings.app.app_id, settings.app.private_key, clock=clock)
    token = auth.app_jwt()
    public = load_pem_private_key(settings.app.private_key.encode(), None).public_key()
    claims = jwt.decode(token, public, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == settings.app.app_id
    assert claims["iat"] == int(clock.now) - 60
    assert 0 < claims["exp"] - claims["iat"] <= 600
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    clock.now += 300
    assert auth.app_jwt() == token  # reused while comfortably valid
    clock.now += 200
    assert auth.app_jwt() != token  # re-signed shortly before exp


async def test_many_requests_for_one_installation_mint_one_token(client, github):
    gh_client, auth, _ = client
    gh = gh_client.installation(INSTALLATION_ID)
    await asyncio.gather(*(gh.getitem("/repos/Codertocat/Hello-World") for _ in range(20)))
    assert github.tokens_minted == 1
    assert auth.mints == 1
    mint = github.calls_to("POST", r"/app/installations/\d+/access_tokens")
    assert len(mint) == 1 and mint[0].auth_kind == "jwt"
    assert all(c.auth_kind == "installation" for c in github.calls_to("GET", r"/repos/Codertocat/Hello-World$"))


async def test_a_new_token_is_minted_shortly_before_expiry(settings, repo, github):
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        # The cache runs on the injected clock; the JWT keeps real time for the emulator's checks.
        auth = AppAuth(settings.app.app_id, settings.app.private_key, token_clock=clock)
        gh = GitHubClient(settings, auth, session, Metrics()).installation(INSTALLATION_ID)
        # Tokens minted by the emulator expire an hour from the real now.
        import time

        clock.now = time.time()
        await gh.getitem("/repos/Codertocat/Hello-World")
        clock.now += 3600 - 400  # still more than 5 minutes left: reuse
        await gh.getitem("/repos/Codertocat/Hello-World")
        assert github.tokens_minted == 1
        clock.now += 200  # within 5 minutes of expires_at: mint again
        await gh.getitem("/repos/Codertocat/Hello-World")
        assert github.tokens_minted == 2


async def test_a_401_re_mints_the_token_once_and_the_request_succeeds(client, github):
    gh_client, _, _ = client
    gh = gh_client.installation(INSTALLATION_ID)
    await gh.getitem("/repos/Codertocat/Hello-World")
    github.expire_tokens()
    repo = await gh.getitem("/repos/Codertocat/Hello-World")
    assert repo["full_name"] == "Codertocat/Hello-World"
    assert github.tokens_minted == 2
    statuses = [c.status for c in github.calls_to("GET", r"/repos/Codertocat/Hello-World$")]
    assert statuses == [200, 401, 200]
