"""Exposure: the settings, and the applier against the Kubernetes fake (the builders: test_cluster_routers.py)."""

from __future__ import annotations

import json

import pytest
from kubernetes.client import ApiClient, Configuration

from bot.cluster.exposure import Exposure, ExposureSettings
from bot.cluster.kube import kube_api_client
from bot.cluster.links import Link
from bot.cluster.workspace import ExposureError, exposed_workspace
from bot.settings.kube import KubeSettings
from tests.exposure_env import AUTH_URL, ENV, LABELS, NGINX, NS, OTHER, WS, settings_for
from tests.k8s_fake import FakeKube


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
def nginx_settings() -> ExposureSettings:
    return settings_for()


@pytest.fixture
async def exposed(kube: FakeKube, nginx_settings):  # noqa: F811
    exp = Exposure(nginx_settings, ApiClient(Configuration(host=kube.url)), sleep=no_sleep)
    yield exp
    await exp.close()


# --------------------------------------------------------------------------- settings


def test_exposure_is_off_without_a_preview_domain():
    assert ExposureSettings.from_env({"DEVENV_AUTH_URL": AUTH_URL}) is None


def test_settings_have_sensible_defaults():
    s = ExposureSettings.from_env({k: v for k, v in ENV.items() if k != "DEVENV_NAMESPACE"})
    assert s is not None
    assert (s.namespace, s.router, s.effective_ingress_class, s.host_template, s.tls_secret, s.scheme) == (
        "devpod", "ingress-nginx", "nginx", "{port}-{id}", None, "https")
    assert (s.bot_service, s.bot_port, s.label_prefix) == ("devenv-bot", 3000, "devenv-bot.dev")
    assert settings_for(DEVENV_ROUTER="traefik").effective_ingress_class == "traefik"


@pytest.mark.parametrize("env, message", [
    ({"DEVENV_AUTH_URL": ""}, "DEVENV_AUTH_URL must be set"),
    ({"DEVENV_AUTH_SIGNIN": ""}, "DEVENV_AUTH_SIGNIN must be set"),
    ({"DEVENV_BOT_SERVICE": ""}, "DEVENV_BOT_SERVICE"),
    ({"DEVENV_BOT_SERVICE": "devenv-bot.devenv:3000"}, "ExternalName"),
    ({"DEVENV_ROUTER": "gateway"}, "not written yet"),
    ({"DEVENV_ROUTER": "haproxy"}, "DEVENV_ROUTER"),
    ({"DEVENV_AUTH_URL": 'http://bot/auth"; deny all; "'}, "DEVENV_AUTH_URL must be a plain"),
    ({"DEVENV_AUTH_URL": "http://bot/auth?h=$host"}, "DEVENV_AUTH_URL must be a plain"),
    ({"DEVENV_PREVIEW_DOMAIN": "Not A Domain"}, "DEVENV_PREVIEW_DOMAIN"),
    ({"DEVENV_HOST_TEMPLATE": "{port}.{id}"}, "may only add"),
    ({"DEVENV_HOST_TEMPLATE": "{port}{id}"}, "needs a '-'"),
    ({"DEVENV_HOST_TEMPLATE": "{id}"}, "exactly once"),
    ({"DEVENV_HOST_TEMPLATE": "preview-env-{port}-{id}"}, "leaves 2 characters"),
    ({"DEVENV_PREVIEW_PERMISSION": "none"}, "DEVENV_PREVIEW_PERMISSION"),
    ({"DEVENV_IDE_PERMISSION": "read only"}, "DEVENV_IDE_PERMISSION"),
])
def test_bad_settings_say_what_to_set(env, message):
    with pytest.raises(ValueError, match=message):
        settings_for(**env)


def test_the_signin_url_defaults_to_the_bots_login_page():
    s = settings_for(DEVENV_AUTH_SIGNIN="", DEVENV_PUBLIC_URL="https://devenv.example.com/")
    assert s.auth_signin == "https://devenv.example.com/auth/login"


def test_traefik_needs_no_signin_url():
    assert settings_for(DEVENV_ROUTER="traefik", DEVENV_AUTH_SIGNIN="").auth_signin is None


@pytest.mark.parametrize("template, room", [("{port}-{id}", 14), ("{id}-{port}", 14), ("pr-{port}-{id}", 11)])
def test_port_names_may_be_as_long_as_the_host_label_allows(template, room):
    s = settings_for(DEVENV_HOST_TEMPLATE=template)
    assert s.max_port_name_len == room
    longest_id = "a" * 48
    label = s.host("p" * room, longest_id).split(".")[0]
    assert len(label) <= 63
    exposed_workspace(s, longest_id, ports={"p" * room: 3000})
    with pytest.raises(ExposureError, match=f"at most {room} characters"):
        exposed_workspace(s, longest_id, ports={"p" * (room + 1): 3000})


@pytest.mark.parametrize("template", ["{port}-{id}", "{id}-{port}", "x-{port}--{id}"])
def test_a_preview_host_splits_back_into_port_and_workspace(template):
    s = settings_for(DEVENV_HOST_TEMPLATE=template)
    for port in ("code", "web", "api2"):
        assert s.parse_host(s.host(port, WS)) == (port, WS)
        assert s.parse_host(s.host(port, WS).upper() + ":443") == (port, WS)
    assert s.parse_host("devenv.example.com") is None
    assert s.parse_host(f"a.{s.host('code', WS)}") is None


# --------------------------------------------------------------------------- applier


async def test_apply_creates_the_service_and_routes_and_returns_links(kube, exposed):  # noqa: F811
    links = await exposed.apply(WS, LABELS, {"web": 3000})
    assert links == [
        Link("code", f"https://code-{WS}.preview.example.com/?folder=/workspaces/{WS}", "write"),
        Link("web", f"https://web-{WS}.preview.example.com/", "read"),
    ]
    assert [o["metadata"]["name"] for o in kube.objects("services", NS)] == [f"devenv-{WS}"]
    assert sorted(o["metadata"]["name"] for o in kube.objects("ingresses", NS)) == [
        f"devenv-{WS}--handoff", f"devenv-{WS}-code", f"devenv-{WS}-web"]
    assert await exposed.links(WS) == links


async def test_a_second_apply_writes_nothing(kube, exposed):  # noqa: F811
    await exposed.apply(WS, LABELS, {"web": 3000})
    before = len(kube.writes())
    assert before == 4
    await exposed.apply(WS, LABELS, {"web": 3000})
    assert len(kube.writes()) == before
    assert {c.method for c in kube.calls[-2:]} == {"GET"}


async def test_changed_ports_update_the_service_and_routes(kube, exposed):  # noqa: F811
    await exposed.apply(WS, LABELS, {"web": 3000})
    service_ip = kube.objects("services", NS)[0]["spec"]["clusterIP"]
    mark = len(kube.calls)
    links = await exposed.apply(WS, LABELS, {"api": 8080})
    assert [link.name for link in links] == ["code", "api"]
    svc = kube.objects("services", NS)[0]
    assert [p["name"] for p in svc["spec"]["ports"]] == ["code", "api"]
    assert svc["spec"]["clusterIP"] == service_ip
    assert sorted(o["metadata"]["name"] for o in kube.objects("ingresses", NS)) == [
        f"devenv-{WS}--handoff", f"devenv-{WS}-api", f"devenv-{WS}-code"]
    writes = [(c.method, c.path.rsplit("/", 1)[-1]) for c in kube.calls[mark:] if c.method != "GET"]
    assert writes == [("PUT", f"devenv-{WS}"), ("POST", "ingresses"), ("PUT", f"devenv-{WS}--handoff"),
                      ("DELETE", f"devenv-{WS}-web")]


async def test_apply_repairs_a_route_someone_opened_up_and_keeps_foreign_annotations(kube, exposed):  # noqa: F811
    await exposed.apply(WS, LABELS, {})
    name = f"devenv-{WS}-code"
    ing = kube.get("ingresses", NS, name)
    del ing["metadata"]["annotations"][NGINX + "auth-url"]
    ing["metadata"]["annotations"]["example.com/owner"] = "ops"
    await exposed.kube.request("PUT", f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses/{name}", body=ing)
    await exposed.apply(WS, LABELS, {})
    ann = kube.get("ingresses", NS, name)["metadata"]["annotations"]
    assert ann[NGINX + "auth-url"] == AUTH_URL
    assert ann["example.com/owner"] == "ops"


async def test_apply_adopts_an_object_that_exists_without_its_labels(kube, exposed):  # noqa: F811
    kube.put_object("services", NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"devenv-{WS}"},
                                     "spec": {"ports": [{"name": "x", "port": 1}]}})
    await exposed.apply(WS, LABELS, {})
    svc = kube.get("services", NS, f"devenv-{WS}")
    assert svc["metadata"]["labels"]["devenv-bot.dev/workspace"] == WS
    assert [p["name"] for p in svc["spec"]["ports"]] == ["code"]


async def test_a_write_conflict_is_retried_on_the_fresh_object(kube, exposed):  # noqa: F811
    await exposed.apply(WS, LABELS, {"web": 3000})
    kube.inject("PUT", f"/services/devenv-{WS}", 409, "Conflict")
    await exposed.apply(WS, LABELS, {"web": 3001})
    assert kube.objects("services", NS)[0]["spec"]["ports"][1]["port"] == 3001


async def test_temporary_api_errors_are_retried(kube, exposed):  # noqa: F811
    kube.inject("GET", "/services", 503, "ServiceUnavailable", times=2)
    assert [link.name for link in await exposed.apply(WS, LABELS, {})] == ["code"]


async def test_remove_deletes_everything_labelled_with_the_workspace_and_nothing_else(kube, exposed):  # noqa: F811
    await exposed.apply(WS, LABELS, {"web": 3000})
    await exposed.apply(OTHER, {**LABELS, "pr": "13"}, {})
    kube.put_object("services", NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "unrelated"},
                                     "spec": {"ports": [{"port": 80}]}})
    assert await exposed.remove(WS) == 4
    names = {o["metadata"]["name"] for o in kube.objects("services", NS) + kube.objects("ingresses", NS)}
    assert names == {"unrelated", f"devenv-{OTHER}", f"devenv-{OTHER}-code", f"devenv-{OTHER}--handoff"}
    assert await exposed.links(WS) == []
    assert await exposed.remove(WS) == 0


async def test_orphans_of_gone_workspaces_are_removed(kube, exposed):  # noqa: F811
    await exposed.apply(WS, LABELS, {"web": 3000})
    await exposed.apply(OTHER, {**LABELS, "pr": "13"}, {})
    assert await exposed.remove_orphans({WS}) == {OTHER}
    assert {o["metadata"]["labels"]["devenv-bot.dev/workspace"] for o in kube.objects("ingresses", NS)} == {WS}
    assert await exposed.remove_orphans({WS}) == set()
    assert len(kube.objects("ingresses", NS)) == 3


async def test_links_are_only_given_for_routes_that_exist(kube, exposed):  # noqa: F811
    assert await exposed.links(WS) == []
    await exposed.apply(WS, LABELS, {"web": 3000})
    await exposed.kube.request("DELETE", f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses/devenv-{WS}-web")
    assert [link.name for link in await exposed.links(WS)] == ["code"]
    await exposed.kube.request("DELETE", f"/api/v1/namespaces/{NS}/services/devenv-{WS}")
    assert await exposed.links(WS) == []


async def test_the_traefik_variant_applies_idempotently_and_removes_its_middleware(kube):  # noqa: F811
    s = settings_for(DEVENV_ROUTER="traefik", DEVENV_TLS_SECRET="preview-wildcard")
    exp = Exposure(s, ApiClient(Configuration(host=kube.url)), sleep=no_sleep)
    try:
        await exp.apply(WS, LABELS, {"web": 3000})
        assert [o["metadata"]["name"] for o in kube.objects("middlewares", NS)] == [f"devenv-{WS}--auth"]
        writes = len(kube.writes())
        await exp.apply(WS, LABELS, {"web": 3000})
        assert len(kube.writes()) == writes
        assert [link.name for link in await exp.links(WS)] == ["code", "web"]
        assert await exp.remove_orphans(set()) == {WS}
        assert kube.objects("middlewares", NS) == kube.objects("ingresses", NS) == []
    finally:
        await exp.close()


async def test_the_client_is_configured_from_kubeconfig_outside_a_cluster(kube, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kube.token = "secret-token"
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "fake", "cluster": {"server": kube.url}}],
        "users": [{"name": "bot", "user": {"token": "secret-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "fake", "user": "bot"}}],
    }))
    exp = Exposure(settings_for(), kube_api_client(KubeSettings(kubeconfig=cfg)), sleep=no_sleep)
    try:
        assert await exp.links(WS) == []
    finally:
        await exp.close()


async def test_the_fake_answers_like_an_api_server(kube, exposed):  # noqa: F811
    from kubernetes.client.exceptions import ApiException

    base = f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses"
    bad = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "x"},
           "spec": {"ingressClass": "nginx"}}
    with pytest.raises(ApiException) as invalid:
        await exposed.kube.request("POST", base, body=bad)
    assert invalid.value.status == 422 and json.loads(invalid.value.body)["reason"] == "Invalid"
    assert len(kube.errors) == 1
    kube.errors.clear()  # expected here; anything left fails the test at teardown

    good = {**bad, "spec": {"ingressClassName": "nginx"}}
    created = await exposed.kube.request("POST", base, body=good)
    assert created["metadata"]["uid"] and created["metadata"]["creationTimestamp"]
    with pytest.raises(ApiException) as exists:
        await exposed.kube.request("POST", base, body=good)
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"
    stale = {**good, "metadata": {"name": "x", "resourceVersion": "1"}}
    with pytest.raises(ApiException) as conflict:
        await exposed.kube.request("PUT", f"{base}/x", body=stale)
    assert (conflict.value.status, json.loads(conflict.value.body)["reason"]) == (409, "Conflict")
    with pytest.raises(ApiException) as missing:
        await exposed.kube.request("GET", f"{base}/y")
    assert json.loads(missing.value.body) | {"message": ""} == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "",
        "reason": "NotFound", "code": 404, "details": {"name": "y", "kind": "ingresses", "group": "networking.k8s.io"}}
    assert (await exposed.kube.request("GET", base, query=[("labelSelector", "a=b")]))["items"] == []
    assert (await exposed.kube.request("DELETE", f"{base}/x"))["status"] == "Success"
