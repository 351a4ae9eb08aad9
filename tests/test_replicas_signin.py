"""Signing in across replicas: two bot apps with the same settings, one fake Kubernetes API between them.

A browser's sign-in may be served by any replica at each step (``/auth/login``, ``/auth/callback``,
the handoff on the preview host): nothing a step needs lives in one process, and a one-time code is
still used once, whichever replica sees it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from urllib.parse import urlencode, urlsplit

import pytest
from kubernetes.client import ApiClient, Configuration

from bot.access.directory import DictDirectory, Workspace
from bot.access.routes import add_routes
from bot.access.sessions import Identity
from bot.cluster.kube import KubeApi
from bot.replicas.onceonly import ClusterUsedCodes
from bot.settings import config
from bot.settings.access import AccessSettings
from tests.botserver import BotServer
from tests.k8s_fake.fixtures import kube  # noqa: F401  (fixture)
from tests.payloads import INSTALLATION_ID, PR_NUMBER
from tests.test_access import APP, IDE, OWNER, REPO, WS, Browser, Clock, access_environ

NAMESPACE = "devenv-bot"


class Replica:
    def __init__(self, env: dict[str, str], kube_url: str | None, clock: Clock, name: str) -> None:
        settings = dataclasses.replace(config.load(env), access=None, exposure=None, replica_id=name)
        self.server = BotServer(settings)
        self.api = KubeApi(ApiClient(Configuration(host=kube_url)), NAMESPACE, retries=0) if kube_url else None
        used = ClusterUsedCodes(self.api, clock=clock, sweep_every=1) if self.api is not None else None
        directory = DictDirectory({WS: Workspace(INSTALLATION_ID, OWNER, REPO, PR_NUMBER)})
        self.access = add_routes(self.server.app, self.server.bot, AccessSettings.from_env(env, settings), directory,
                                 clock=clock, used_codes=used)

    async def stop(self) -> None:
        await self.server.stop()
        if self.api is not None:
            await self.api.close()


class Rig:
    def __init__(self, one: Replica, other: Replica, clock: Clock) -> None:
        self.one, self.other, self.clock = one, other, clock

    def browser(self, github, route: dict[str, Replica]) -> Browser:
        """A browser whose requests reach the replica ``route`` names for their path (else the first)."""
        rig = self

        class Routed(Browser):
            async def get(self, url, headers=None):
                self.server = route.get(urlsplit(url).path, rig.one).server
                return await super().get(url, headers)

        return Routed(self.one.server, github)


async def two(environ, kube_url: str | None) -> Rig:
    env = access_environ(environ)
    clock = Clock()
    one = Replica(env, kube_url, clock, "one")
    other = Replica({**env, "DEVENV_STATE_DIR": env["DEVENV_STATE_DIR"] + "-other"}, kube_url, clock, "other")
    await one.server.start()
    await other.server.start()
    return Rig(one, other, clock)


@pytest.fixture
async def replicas(environ, repo, kube):  # noqa: F811
    rig = await two(environ, kube.url)
    yield rig
    await rig.one.stop()
    await rig.other.stop()


async def test_a_sign_in_started_on_one_replica_finishes_on_the_other(replicas, github):
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    github.oauth_login = "Codertocat"
    # login and the handoff on one replica, GitHub's callback on the other
    b = replicas.browser(github, {"/auth/callback": replicas.other})
    status, url, text = await b.sign_in(f"https://{IDE}/")
    assert (status, url) == (200, f"https://{IDE}/"), text
    assert IDE in b.jar
    b.server = replicas.other.server  # the proxy asks either replica: the host cookie is signed, not stored
    assert (await b.check(f"https://{IDE}/"))[0] == 200


async def test_a_handoff_code_made_on_one_replica_is_redeemed_on_the_other_once(replicas, github, kube):
    identity = Identity(1, "Codertocat")
    code = replicas.one.access.sessions.handoff_code(identity, IDE)
    handoff = f"https://{IDE}/_devenv/handoff?{urlencode({'code': code, 'rd': '/'})}"

    first = replicas.browser(github, {"/_devenv/handoff": replicas.other})
    status, _, _ = await first.get(handoff)
    assert status == 302 and IDE in first.jar

    again = replicas.browser(github, {"/_devenv/handoff": replicas.one})  # replayed on the replica that made it
    status, _, text = await again.get(handoff)
    assert status == 400 and "already used" in text and IDE not in again.jar
    assert len(kube.objects("configmaps", NAMESPACE)) == 1  # one marker; it holds no code
    assert code not in str(kube.objects("configmaps", NAMESPACE))


async def test_a_used_code_marker_goes_once_the_code_has_expired(replicas, github, kube):
    used = replicas.one.access.sessions.used
    sessions = replicas.one.access.sessions
    old = sessions.handoff_code(Identity(1, "Codertocat"), IDE)
    assert await sessions.redeem(old) is not None
    replicas.clock.now += sessions.settings.handoff_ttl + 2  # the first code has expired
    fresh = sessions.handoff_code(Identity(1, "Codertocat"), APP)
    assert await sessions.redeem(fresh) is not None  # its use sweeps: the expired marker goes
    names = [m["metadata"]["name"] for m in kube.objects("configmaps", NAMESPACE)]
    assert names == [used.markers.name(sessions_key(fresh))]
    assert await sessions.redeem(old) is None  # expired: refused by its signature, marker or not


def sessions_key(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


async def test_without_the_cluster_each_replica_keeps_codes_single_use_in_its_own_memory(environ, repo, github):
    rig = await two(environ, None)
    try:
        code = rig.one.access.sessions.handoff_code(Identity(1, "Codertocat"), IDE)
        handoff = f"https://{IDE}/_devenv/handoff?{urlencode({'code': code, 'rd': '/'})}"
        b = rig.browser(github, {})
        assert (await b.get(handoff))[0] == 302
        assert (await rig.browser(github, {}).get(handoff))[0] == 400
    finally:
        await rig.one.stop()
        await rig.other.stop()
