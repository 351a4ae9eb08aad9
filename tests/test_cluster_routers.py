"""The pure builders of a workspace's objects (bot/cluster/manifests.py, routers.py, workspace.py):
names, labels, forward auth on every route, and objects a Kubernetes 1.30 API server accepts."""

from __future__ import annotations

import dataclasses

import pytest

from bot.cluster.routers import NginxIngressBackend, TraefikBackend, manifests
from bot.cluster.workspace import CODE_PORT, HANDOFF_PATH, ExposureError, exposed_workspace
from bot.settings.exposure import ExposureSettings
from tests.exposure_env import AUTH_URL, LABELS, NGINX, NS, SIGNIN, WS, settings_for
from tests.k8s_fake import validation


def by_name(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects}


def hosts_of(objects: list[dict]) -> list[str]:
    return [r["host"] for o in objects if o["kind"] == "Ingress" for r in o["spec"]["rules"]]


@pytest.fixture
def nginx_settings() -> ExposureSettings:
    return settings_for()


def test_every_host_is_one_label_under_the_preview_domain(nginx_settings):
    ws = exposed_workspace(nginx_settings, "a" * 48, LABELS, {"web": 3000, "api": 8080})
    hosts = hosts_of(manifests(nginx_settings, ws))
    assert set(hosts) == {f"{p}-{'a' * 48}.preview.example.com" for p in ("code", "web", "api")}
    for host in hosts:
        label, _, rest = host.partition(".")
        assert rest == "preview.example.com" and len(label) <= 63


def test_the_service_selects_the_devpod_pod_and_exposes_the_ide_and_app_ports(nginx_settings):
    ws = exposed_workspace(nginx_settings, WS, LABELS, {"web": 3000})
    svc = manifests(nginx_settings, ws)[0]
    assert svc["kind"] == "Service" and svc["metadata"]["name"] == f"devenv-{WS}"
    assert svc["spec"]["selector"] == {"devenv-bot.dev/workspace": WS}
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("code", CODE_PORT, CODE_PORT), ("web", 3000, 3000)]


def test_every_object_is_labelled_as_the_bots(nginx_settings):
    for obj in manifests(nginx_settings, exposed_workspace(nginx_settings, WS, LABELS, {"web": 3000})):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "devenv-bot"
        assert labels["devenv-bot.dev/workspace"] == WS
        assert labels["devenv-bot.dev/repo"] == "Codertocat.Hello-World"
        assert labels["devenv-bot.dev/pr"] == "12"
        assert obj["metadata"]["namespace"] == NS


def test_the_ide_ingress_carries_forward_auth_and_websocket_timeouts(nginx_settings):
    objs = by_name(manifests(nginx_settings, exposed_workspace(nginx_settings, WS, LABELS, {"web": 3000})))
    for port in ("code", "web"):
        ann = objs[f"devenv-{WS}-{port}"]["metadata"]["annotations"]
        assert ann[NGINX + "auth-url"] == AUTH_URL
        assert ann[NGINX + "auth-signin"] == SIGNIN
        assert ann[NGINX + "auth-response-headers"] == "X-Devenv-User,X-Devenv-User-Id,X-Devenv-Permission"
        assert ann[NGINX + "proxy-read-timeout"] == ann[NGINX + "proxy-send-timeout"] == "3600"
    code = objs[f"devenv-{WS}-code"]
    assert code["spec"]["ingressClassName"] == "nginx"
    assert code["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
        "name": f"devenv-{WS}", "port": {"number": CODE_PORT}}
    assert "tls" not in code["spec"]


def test_tls_uses_the_wildcard_secret_for_every_host():
    s = settings_for(DEVENV_TLS_SECRET="preview-wildcard")
    for obj in manifests(s, exposed_workspace(s, WS, LABELS, {"web": 3000})):
        if obj["kind"] == "Ingress":
            assert obj["spec"]["tls"] == [{"hosts": [r["host"] for r in obj["spec"]["rules"]],
                                           "secretName": "preview-wildcard"}]


def test_the_handoff_path_goes_to_the_bot_without_auth_on_every_host(nginx_settings):
    objs = by_name(manifests(nginx_settings, exposed_workspace(nginx_settings, WS, LABELS, {"web": 3000})))
    handoff = objs[f"devenv-{WS}--handoff"]
    assert not any(k.startswith(NGINX) for k in handoff["metadata"].get("annotations", {}))
    paths = [(r["host"], p["path"], p["pathType"], p["backend"]["service"])
             for r in handoff["spec"]["rules"] for p in r["http"]["paths"]]
    assert paths == [(h, HANDOFF_PATH, "Prefix", {"name": "devenv-bot", "port": {"number": 3000}})
                     for h in (f"code-{WS}.preview.example.com", f"web-{WS}.preview.example.com")]


def test_the_ide_can_never_be_built_without_forward_auth(nginx_settings):
    ws = exposed_workspace(nginx_settings, WS, LABELS)
    for router in ("ingress-nginx", "traefik"):
        unprotected = dataclasses.replace(nginx_settings, router=router, auth_url=None)
        with pytest.raises(ExposureError, match="DEVENV_AUTH_URL"):
            manifests(unprotected, ws)
    with pytest.raises(ExposureError, match="DEVENV_AUTH_SIGNIN"):
        manifests(dataclasses.replace(nginx_settings, auth_signin=None), ws)


def test_a_backend_that_forgets_auth_is_refused(nginx_settings):
    class Leaky(NginxIngressBackend):
        def annotations(self):
            return {NGINX + "proxy-read-timeout": "3600"}

    with pytest.raises(ExposureError, match="without forward auth"):
        manifests(nginx_settings, exposed_workspace(nginx_settings, WS, LABELS), Leaky(nginx_settings))

    class WideOpenHandoff(NginxIngressBackend):
        def objects(self, ws):
            objs = super().objects(ws)
            objs[-1]["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/"
            return objs

    with pytest.raises(ExposureError, match="routes more than"):
        manifests(nginx_settings, exposed_workspace(nginx_settings, WS, LABELS), WideOpenHandoff(nginx_settings))


def test_traefik_routes_through_a_forward_auth_middleware():
    s = settings_for(DEVENV_ROUTER="traefik", DEVENV_AUTH_SIGNIN="")
    objs = by_name(manifests(s, exposed_workspace(s, WS, LABELS, {"web": 3000})))
    mw = objs[f"devenv-{WS}--auth"]
    assert mw["apiVersion"] == "traefik.io/v1alpha1" and mw["kind"] == "Middleware"
    assert mw["spec"] == {"forwardAuth": {"address": AUTH_URL, "trustForwardHeader": False,
                                          "authResponseHeaders": ["X-Devenv-User", "X-Devenv-User-Id",
                                                                  "X-Devenv-Permission"]}}
    for port in ("code", "web"):
        ing = objs[f"devenv-{WS}-{port}"]
        assert ing["spec"]["ingressClassName"] == "traefik"
        assert ing["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"] == \
            f"{NS}-devenv-{WS}--auth@kubernetescrd"
    assert "traefik.ingress.kubernetes.io/router.middlewares" not in \
        objs[f"devenv-{WS}--handoff"]["metadata"]["annotations"]


def test_a_traefik_middleware_that_trusts_forwarded_headers_is_refused():
    s = settings_for(DEVENV_ROUTER="traefik")

    class Trusting(TraefikBackend):
        def middleware(self, ws):
            mw = super().middleware(ws)
            mw["spec"]["forwardAuth"]["trustForwardHeader"] = True
            return mw

    with pytest.raises(ExposureError, match="without forward auth"):
        manifests(s, exposed_workspace(s, WS, LABELS), Trusting(s))


@pytest.mark.parametrize("ports, message", [
    ({"code": 3000}, "reserved"), ({"Web": 3000}, "lower-case"), ({"my-app": 3000}, "lower-case"),
    ({"web": 0}, "1-65535"), ({"web": 10800}, "twice"), ({"a": 3000, "b": 3000}, "twice"),
])
def test_bad_ports_are_refused(nginx_settings, ports, message):
    with pytest.raises(ExposureError, match=message):
        exposed_workspace(nginx_settings, WS, LABELS, ports)


@pytest.mark.parametrize("router", ["ingress-nginx", "traefik"])
@pytest.mark.parametrize("tls", ["", "preview-wildcard"])
def test_every_object_validates_against_kubernetes_1_30(router, tls):
    s = settings_for(DEVENV_ROUTER=router, DEVENV_TLS_SECRET=tls)
    for ws_id, ports in [(WS, {}), ("1" + "a" * 47, {"web": 3000, "p" * 14: 65535})]:
        for obj in manifests(s, exposed_workspace(s, ws_id, LABELS, ports)):
            assert validation.problems(obj) == [], obj["metadata"]["name"]


def test_the_fake_rejects_what_a_real_api_server_would():
    bad = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "x"},
           "spec": {"ingresClassName": "nginx", "rules": [{"host": "a" * 64 + ".example.com"}]}}
    found = validation.problems(bad)
    assert any("ingresClassName" in p for p in found) and any("host" in p for p in found)
    mw = {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": "m"},
          "spec": {"forwardAuth": {"adress": "http://x"}}}
    assert validation.problems(mw)
