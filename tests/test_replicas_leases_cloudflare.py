"""Two replicas writing one Cloudflare Tunnel configuration (a document without compare-and-swap): the
mutex Lease around each read-modify-write keeps every rule (bot/cluster/cloudflare.py, ``mutex``)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from kubernetes.client import ApiClient, Configuration

from bot.cluster.cloudflare import CloudflareTunnelRoutes
from bot.cluster.kube import KubeApi
from bot.replicas.coordination import LeaseCoordination
from bot.replicas.leases import Leases
from bot.settings.cloudflare import CloudflareSettings
from tests.cloudflare_emulator.fixtures import cloudflare  # noqa: F401
from tests.test_cloudflare import EXPOSURE, PROXY, routes_of

WORKSPACES = 4


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def test_two_replicas_applying_at_once_keep_every_rule(cloudflare, kube, session):  # noqa: F811
    settings = CloudflareSettings.from_env(cloudflare.env(DEVENV_CLOUDFLARE_AUTH_PROXY=PROXY + "/"))
    assert settings is not None
    api = KubeApi(ApiClient(Configuration(host=kube.url)), "devenv-bot")
    try:
        replicas = []
        for n in (1, 2):
            coordination = LeaseCoordination(Leases(api, f"replica-{n}", 15), slots=1, first_poll=0.02)
            replicas.append(CloudflareTunnelRoutes(settings, EXPOSURE, session, backoff=0.01,
                                                   mutex=lambda c=coordination: c.mutex("devenv-cloudflare-tunnel")))
        await asyncio.gather(*(routes.apply(f"ws{n}x{i}", routes_of(f"ws{n}x{i}"))
                               for i in range(WORKSPACES) for n, routes in enumerate(replicas)))
    finally:
        await api.close()
    expected = sorted(f"code-ws{n}x{i}.preview.example.com" for i in range(WORKSPACES) for n in range(2))
    assert sorted(h for h in cloudflare.hostnames() if h) == expected
    assert "holderIdentity" not in kube.get("leases", "devenv-bot", "devenv-cloudflare-tunnel")["spec"]
