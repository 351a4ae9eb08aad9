"""Least privilege, proven: the bot runs against a Kubernetes fake that enforces the RBAC rules
rendered from deploy/, and every rule it is granted is used by a test here or needed by DevPod.

The fake (tests/k8s_fake/rbac.py) answers anything the bot's ServiceAccount may not do with a real
403 Forbidden and fails the test. The flows are those of tests/test_links_e2e.py and
tests/test_cloudflare_e2e.py, on their own fixtures (the real bot, the GitHub emulator, the
stand-in devpod), plus the applier's update and adopt paths, once per overlay with that overlay's
own rules and settings. The deployment puts workspaces in ``devenv-workspaces``; the e2e fixtures
use their own namespace, so the Roles are moved there (``Policy.rebased``).

The stand-in devpod does not talk to Kubernetes, so DevPod's rules are never exercised here: each
is listed in :data:`NEEDED_BY_DEVPOD` with the DevPod source that makes the call.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict

import pytest
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from bot.cluster.exposure import Exposure, ExposureSettings
from bot.cluster.routers import ServiceOnlyBackend
from bot.settings import config
from tests import payloads
from tests import test_links_e2e as links
from tests.botserver import BotServer
from tests.k8s_fake import FakeKube, Policy, Request
from tests.test_cloudflare_e2e import cloudflare, tunnel_environ  # noqa: F401  (fixtures, reused)
from tests.test_deploy import OVERLAYS, VARIANTS, bot_config, render
from tests.test_links_e2e import bot, links_environ  # noqa: F401  (fixtures, reused)

BOT_ACCOUNT = ("devenv-bot", "devenv-bot")  # (namespace, name) of the bot's ServiceAccount
WORKSPACES = "devenv-workspaces"  # where deploy/ puts the Roles
NS = links.NS  # where the e2e fixtures put the workspaces
WS = links.WS

#: Rules granted by deploy/ that no test here exercises, and why each is there anyway. All are
#: DevPod's in-tree Kubernetes driver at v0.6.15-hotfix.2 (CONTRACT §5.3), which the stand-in
#: devpod does not run. Anything else granted but unused fails test_every_granted_rule_is_used.
NEEDED_BY_DEVPOD: dict[tuple[str, str, str], str] = {
    # D:pkg/driver/kubernetes/wait.go getPod, waitPodRunning, waitPodDeleted (polls every second)
    ("", "pods", "get"): "D:pkg/driver/kubernetes/wait.go",
    # D:pkg/driver/kubernetes/run.go runPod (up, wake, recreate)
    ("", "pods", "create"): "D:pkg/driver/kubernetes/run.go",
    # D:pkg/driver/kubernetes/wait.go waitPodDeleted (stop, delete, options changed)
    ("", "pods", "delete"): "D:pkg/driver/kubernetes/wait.go",
    # D:pkg/driver/kubernetes/client.go Exec: SPDY POST to pods/exec (ssh, agent injection, setup)
    ("", "pods/exec", "create"): "D:pkg/driver/kubernetes/client.go",
    # ("", "pods/log", "get") is needed by D:pkg/driver/kubernetes/client.go Logs (`devpod logs`) too, but
    # the bot's own /devenv logs exercises it below (test_devenv_logs_stays_within_the_rules).
    # D:pkg/driver/kubernetes/driver.go getDevContainerPvc (every find, status, start)
    ("", "persistentvolumeclaims", "get"): "D:pkg/driver/kubernetes/driver.go",
    # D:pkg/driver/kubernetes/pvc.go createPersistentVolumeClaim (first up)
    ("", "persistentvolumeclaims", "create"): "D:pkg/driver/kubernetes/pvc.go",
    # D:pkg/driver/kubernetes/driver.go DeleteDevContainer
    ("", "persistentvolumeclaims", "delete"): "D:pkg/driver/kubernetes/driver.go",
    # ("", "secrets", "get") is needed by D:pkg/driver/kubernetes/pullsecrets.go secretExists and
    # ReadSecretContents too; the setup flow below exercises it.
    # ("", "secrets", "create") is needed by D:pkg/driver/kubernetes/pullsecrets.go createPullSecret
    # too, but the setup flow below exercises it (in the bot's own namespace), so it is not listed.
    # D:pkg/driver/kubernetes/pullsecrets.go DeletePullSecret (tried on every workspace delete)
    ("", "secrets", "delete"): "D:pkg/driver/kubernetes/pullsecrets.go",
    # D:pkg/driver/kubernetes/target_architecture.go TargetArchitecture, without ARCHITECTURE
    # (only with components/detect-architecture)
    ("", "nodes", "list"): "D:pkg/driver/kubernetes/target_architecture.go",
}

#: (group, resource, verb) the RBAC fake allowed, per variant, filled by the flows below.
EXERCISED: defaultdict[str, set[tuple[str, str, str]]] = defaultdict(set)


@functools.cache
def policy(variant: str) -> Policy:
    """The bot's rules in ``variant``, moved to the namespace the e2e fixtures use."""
    return Policy.from_manifests(render(variant), service_account=BOT_ACCOUNT).rebased({WORKSPACES: NS})


@pytest.fixture
def overlay() -> str:
    """Whose rules the fake enforces; tests of other overlays parametrize it."""
    return "ingress-nginx"


@pytest.fixture
def kube(overlay):  # noqa: F811  (the suite's fake, with the overlay's RBAC enforced)
    fake = FakeKube(rbac=policy(overlay)).start()
    try:
        yield fake
    finally:
        fake.close()
    EXERCISED[overlay] |= fake.exercised
    assert not fake.forbidden, "the bot needed more than deploy/ grants:\n" + "\n".join(fake.forbidden)
    fake.assert_valid()


def overlay_settings(overlay: str, **extra: str) -> ExposureSettings:
    """The exposure settings exactly as the overlay's ConfigMap gives them (namespace aside)."""
    env = {**bot_config(render(overlay)), "DEVENV_NAMESPACE": NS, **extra}
    settings = ExposureSettings.from_env(env)
    assert settings is not None
    return settings


async def no_sleep(_: float) -> None:
    return None


def names(kube, plural: str) -> set[str]:
    return {o["metadata"]["name"] for o in kube.objects(plural, NS)}


# --------------------------------------------------------------------------- the bot's flows


async def test_links_live_and_die_within_the_ingress_nginx_rules(bot, github, kube):  # noqa: F811
    """Opened → pushed → closed, with the start-up orphan sweep, as tests/test_links_e2e.py."""
    await links.opened(bot)
    assert f"devenv-{WS}-code" in names(kube, "ingresses")
    await bot.deliver("pull_request", payloads.pull_request("synchronize", head_sha="c" * 40))
    await bot.settle()
    await bot.deliver("pull_request", payloads.pull_request("closed"))
    await bot.settle()
    assert names(kube, "services") == names(kube, "ingresses") == set()
    assert kube.exercised >= {("", "services", "list"), ("networking.k8s.io", "ingresses", "create"),
                              ("networking.k8s.io", "ingresses", "delete")}


@pytest.mark.parametrize("overlay", ["traefik"])
async def test_links_live_and_die_within_the_traefik_rules(links_environ, github, kube, overlay):  # noqa: F811
    env = {**links_environ, "DEVENV_ROUTER": "traefik", "DEVENV_INGRESS_CLASS": "traefik"}
    srv = await BotServer(config.load(env)).start()
    try:
        await links.opened(srv)
        await read_logs(srv, github, kube)
        assert [o["metadata"]["name"] for o in kube.objects("middlewares", NS)] == [f"devenv-{WS}--auth"]
        await srv.deliver("pull_request", payloads.pull_request("closed"))
        await srv.settle()
        assert kube.objects("middlewares", NS) == []
    finally:
        await srv.stop()


@pytest.mark.parametrize("overlay", ["cloudflare-tunnel"])
async def test_tunnel_mode_stays_within_the_cloudflare_tunnel_rules(tunnel_environ, github, kube,  # noqa: F811
                                                                   cloudflare, overlay):  # noqa: F811
    srv = await BotServer(config.load(tunnel_environ)).start()
    try:
        await links.opened(srv)
        await read_logs(srv, github, kube)
        assert names(kube, "services") == {f"devenv-{WS}"} and names(kube, "ingresses") == set()
        await srv.deliver("pull_request", payloads.pull_request("closed"))
        await srv.settle()
        assert names(kube, "services") == set()
    finally:
        await srv.stop()


@pytest.mark.parametrize("overlay", OVERLAYS)
async def test_the_applier_s_update_and_adopt_paths_stay_within_the_rules(kube, overlay):
    """What the e2e flows rarely reach: adopting an object someone else created (create → 409 →
    get → update), rewriting after the ports changed (update), and the orphan sweep (delete)."""
    tunnel = overlay == "cloudflare-tunnel"
    settings = overlay_settings(overlay, **({"DEVENV_CLOUDFLARE_TUNNEL_ID": "x"} if tunnel else {}))
    backend = ServiceOnlyBackend(settings) if tunnel else None
    exp = Exposure(settings, ApiClient(Configuration(host=kube.url)), backend=backend, sleep=no_sleep)
    labels = {"repo": "Codertocat.Hello-World", "pr": "2"}
    kube.put_object("services", NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"devenv-{WS}"},
                                     "spec": {"ports": [{"name": "x", "port": 1}]}})
    if not tunnel:
        kube.put_object("ingresses", NS, {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                          "metadata": {"name": f"devenv-{WS}-code"},
                                          "spec": {"ingressClassName": "other"}})
    if settings.router == "traefik" and not tunnel:
        kube.put_object("middlewares", NS, {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
                                            "metadata": {"name": f"devenv-{WS}--auth"},
                                            "spec": {"forwardAuth": {"address": "http://elsewhere/"}}})
    try:
        await exp.apply(WS, labels, {"web": 3000})
        await exp.apply(WS, labels, {"api": 8080})
        assert [p["name"] for p in kube.get("services", NS, f"devenv-{WS}")["spec"]["ports"]] == ["code", "api"]
        assert await exp.remove_orphans(set()) == {WS}
        assert names(kube, "services") == set()
    finally:
        await exp.close()
    for resource in {"services"} | ({"ingresses"} if not tunnel else set()):
        assert {v for g, r, v in kube.exercised if r == resource} == {"list", "create", "get", "update", "delete"}


@pytest.mark.parametrize("overlay", OVERLAYS)
async def test_replicas_leases_stay_within_the_rules(kube, overlay):
    """Replicas (DEVENV_STATE_BACKEND=kubernetes): a workspace Lease taken, taken again, renewed, released,
    and one taken over after it expired, in the bot's own namespace (tests/test_replicas_leases*.py)."""
    from bot.cluster.kube import KubeApi
    from bot.replicas.leases import Leases

    now = [1_800_000_000.0]
    api = KubeApi(ApiClient(Configuration(host=kube.url)), BOT_ACCOUNT[0], sleep=no_sleep)
    try:
        one, two = (Leases(api, f"replica-{n}", 15, clock=lambda: now[0]) for n in (1, 2))
        assert await one.try_acquire("devenv-ws-x") and await one.try_acquire("devenv-ws-x")
        assert await one.renew("devenv-ws-x")
        now[0] += 60
        assert await two.try_acquire("devenv-ws-x")
        await two.release("devenv-ws-x")
    finally:
        await api.close()
    assert {v for g, r, v in kube.exercised if r == "leases"} == {"get", "create", "update"}


async def read_logs(srv, github, kube) -> None:
    """/devenv logs lists the workspace pod by label and reads its log (tests/test_logs_e2e.py)."""
    from tests.test_logs_e2e import ask, put_pod

    github.set_permission(links.OWNER, links.REPO, "octocat", "read")
    put_pod(kube, "hello from the app\n")
    assert "hello from the app" in await ask(srv, github, "/devenv logs")
    assert kube.exercised >= {("", "pods", "list"), ("", "pods/log", "get")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_records_store_stays_within_the_rules(kube, overlay):
    """DEVENV_STATE_BACKEND=kubernetes: the DevEnvironment records in the bot's own namespace
    (tests/test_replicas_store.py)."""
    from tests.test_replicas_store import exercise

    exercise(kube)
    assert {v for g, r, v in kube.exercised if r == "devenvironments"} == {"get", "list", "create", "update", "delete"}


async def test_devenv_logs_stays_within_the_ingress_nginx_rules(bot, github, kube):  # noqa: F811
    await links.opened(bot)
    await read_logs(bot, github, kube)


# --------------------------------------------------------------------------- the enforcer itself


@pytest.mark.parametrize("method, path, query, expected", [
    ("GET", "/api/v1/namespaces/ns/services", {}, ("list", "", "services", "ns", None)),
    ("GET", "/api/v1/namespaces/ns/services", {"watch": "true"}, ("watch", "", "services", "ns", None)),
    ("GET", "/api/v1/namespaces/ns/services/s", {}, ("get", "", "services", "ns", "s")),
    ("POST", "/apis/networking.k8s.io/v1/namespaces/ns/ingresses", {}, ("create", "networking.k8s.io", "ingresses",
                                                                        "ns", None)),
    ("PUT", "/apis/traefik.io/v1alpha1/namespaces/ns/middlewares/m", {}, ("update", "traefik.io", "middlewares",
                                                                          "ns", "m")),
    ("PATCH", "/api/v1/namespaces/ns/pods/p", {}, ("patch", "", "pods", "ns", "p")),
    ("DELETE", "/api/v1/namespaces/ns/pods/p", {}, ("delete", "", "pods", "ns", "p")),
    ("DELETE", "/api/v1/namespaces/ns/pods", {}, ("deletecollection", "", "pods", "ns", None)),
    ("POST", "/api/v1/namespaces/ns/pods/p/exec", {}, ("create", "", "pods/exec", "ns", "p")),
    ("GET", "/api/v1/namespaces/ns/pods/p/log", {}, ("get", "", "pods/log", "ns", "p")),
    ("GET", "/api/v1/nodes", {}, ("list", "", "nodes", None, None)),
    ("GET", "/api/v1/namespaces/ns", {}, ("get", "", "namespaces", None, "ns")),
    ("POST", "/api/v1/namespaces", {}, ("create", "", "namespaces", None, None)),
])
def test_requests_get_the_attributes_the_api_server_authorises(method, path, query, expected):
    assert Request.from_http(method, path, query) == Request(*expected)
    assert Request.from_http("GET", "/version") is None


def test_the_rendered_rules_allow_devpod_s_calls_and_nothing_cluster_wide():
    rules = policy("ingress-nginx")
    assert rules.user == "system:serviceaccount:devenv-bot:devenv-bot"
    assert rules.allows(Request("create", "", "pods/exec", NS, "devpod-x"))
    assert rules.allows(Request("get", "", "persistentvolumeclaims", NS, "devpod-x"))
    assert not rules.allows(Request("create", "", "pods/exec", "kube-system", "devpod-x"))
    assert rules.allows(Request("list", "", "pods", NS, None))  # /devenv logs finds the pod by label (DevPod by name)
    assert not rules.allows(Request("list", "", "pods", "kube-system", None))
    assert not rules.allows(Request("list", "", "nodes", None, None))  # DEVENV_ARCHITECTURE is set
    assert not rules.allows(Request("get", "", "namespaces", None, NS))
    assert not policy("cloudflare-tunnel").allows(Request("list", "networking.k8s.io", "ingresses", NS, None))
    everything = Policy.from_manifests(render("all-components"), service_account=BOT_ACCOUNT)
    assert everything.allows(Request("list", "", "nodes", None, None))  # components/detect-architecture


async def test_a_forbidden_request_is_a_real_403_and_fails_the_test():
    # The cloudflare-tunnel overlay grants no Ingresses: a bot configured for ingress-nginx is refused.
    fake = FakeKube(rbac=policy("cloudflare-tunnel")).start()
    exp = Exposure(overlay_settings("ingress-nginx"), ApiClient(Configuration(host=fake.url)), sleep=no_sleep)
    try:
        with pytest.raises(ApiException) as refused:
            await exp.apply(WS, {}, {})
    finally:
        await exp.close()
        fake.close()
    assert refused.value.status == 403
    assert json.loads(refused.value.body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 403,
        "reason": "Forbidden", "details": {"kind": "ingresses", "group": "networking.k8s.io"},
        "message": 'ingresses is forbidden: User "system:serviceaccount:devenv-bot:devenv-bot" cannot list '
                   f'resource "ingresses" in API group "networking.k8s.io" in the namespace "{NS}"'}
    assert len(fake.forbidden) == 1 and fake.errors  # the kube fixture fails a test on either
    with pytest.raises(AssertionError, match="403 ingresses is forbidden"):
        fake.assert_valid()


# --------------------------------------------------------------------------- coverage (keep last)


# --------------------------------------------------------------------------- the first run in a pod


@pytest.mark.parametrize("overlay", OVERLAYS)
async def test_the_setup_page_may_write_the_credentials_secret_and_nothing_else(overlay, github, kube, tmp_path):
    """The first run stores the App's credentials in the Secret the Deployment loads (create, then
    update when the App is registered again), within the bot's own namespace."""
    from tests.test_setup import browser, register, setup_environ, token_of

    conf = bot_config(render(overlay))
    env = {**setup_environ(github, tmp_path), "DEVENV_CREDENTIALS_SECRET": conf["DEVENV_CREDENTIALS_SECRET"],
           "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig", BOT_ACCOUNT[0]))}
    settings = config.load(env, env_file=tmp_path / ".env")
    for _ in range(2):  # registered, then registered again: the Secret is replaced, not duplicated
        srv = await BotServer(settings).start()
        try:
            async with browser() as session:
                status, page, _ = await register(session, srv.url, token_of(srv))
        finally:
            await srv.stop()
        assert status == 200 and "the Kubernetes Secret devenv-bot/devenv-bot-credentials" in page
    [secret] = kube.objects("secrets", BOT_ACCOUNT[0])
    assert secret["metadata"]["name"] == "devenv-bot-credentials"
    assert {("", "secrets", "get"), ("", "secrets", "update")} <= kube.exercised


# --------------------------------------------------------------------------- several replicas


async def test_replicas_keep_their_shared_state_within_the_rules_of_their_component(tmp_path):
    """components/replicas: DevPod's state of a workspace (a Secret) and the delivery markers (ConfigMaps),
    in the bot's namespace."""
    from bot.replicas.deliveries import ClusterDeliveries
    from tests.test_replicas_devpod_state import Replica, built

    kube = FakeKube(rbac=policy("all-components")).start()
    one, other = Replica(tmp_path, "one", kube.url), Replica(tmp_path, "other", kube.url)
    try:
        record = await built(one)  # saved: create
        assert (await other.step(record, "up")).conclusion == "success"  # restored, saved again: get, update
        assert (await other.step(record, "delete")).conclusion == "success"  # delete
        seen = ClusterDeliveries(one.api, "one", sweep_every=1)
        assert await seen.claim("d-1", run=True)  # create
        assert not await seen.claim("d-1", run=True)  # get
        await seen.done("d-1", handled=True)  # update, then the sweep: list (and delete what is old)
        assert await seen.claim("d-2", run=True)
        await seen.done("d-2", handled=False)  # delete
    finally:
        await one.api.close()
        await other.api.close()
        kube.close()
    EXERCISED["all-components"] |= kube.exercised
    assert not kube.forbidden, "the replicas needed more than their component grants:\n" + "\n".join(kube.forbidden)
    kube.assert_valid()
    assert {("", "secrets", v) for v in ("get", "create", "update", "delete")} <= kube.exercised
    assert {("", "configmaps", v) for v in ("get", "list", "create", "update", "delete")} <= kube.exercised


# --------------------------------------------------------------------------- last: what was used


def test_every_granted_rule_is_used_by_a_test_or_needed_by_devpod():
    ran = [v for v in OVERLAYS if EXERCISED.get(v)]
    if len(ran) < len(OVERLAYS):
        pytest.skip("the flows above did not all run in this session: run tests/test_rbac.py as a whole")
    everywhere = set().union(*EXERCISED.values())
    unused: dict[str, set[tuple[str, str, str]]] = {}
    for variant in VARIANTS:
        # A variant without flows of its own (the base, the components) counts what any flow used.
        exercised = EXERCISED[variant] if variant in OVERLAYS else everywhere
        unused[variant] = policy(variant).keys() - exercised
        unexplained = unused[variant] - NEEDED_BY_DEVPOD.keys()
        assert not unexplained, (
            f"{variant} grants rules no test exercised and DevPod does not need: "
            + "; ".join(f"{v} {g or 'core'}/{r} ({', '.join(policy(variant).sources((g, r, v)))})"
                        for g, r, v in sorted(unexplained)))
    # The allow-list is no bigger than it must be: each entry is granted somewhere and never used.
    stale = NEEDED_BY_DEVPOD.keys() - set().union(*unused.values())
    assert not stale, f"remove from NEEDED_BY_DEVPOD (exercised, or no longer granted): {sorted(stale)}"
    assert set(NEEDED_BY_DEVPOD.values()) <= {f"D:pkg/driver/kubernetes/{f}.go" for f in (
        "wait", "run", "client", "driver", "pvc", "pullsecrets", "target_architecture")}
