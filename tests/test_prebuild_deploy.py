"""deploy/overlays/prebuild-dind (issue 15): rendered with ``kubectl kustomize`` and validated like the other
variants of tests/test_deploy.py, plus what the sidecar variant promises: only the Docker daemon is privileged,
it listens on the pod's loopback only, the registry's login is a referenced Secret mounted read-only, and
the settings it adds are ones the bot reads and accepts."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.k8s_fake.validation import KUBERNETES_VERSION
from tests.test_deploy import _render, bot_config, bot_sources, find, one

OVERLAY = "deploy/overlays/prebuild-dind"


def objects() -> list[dict]:
    return list(_render(OVERLAY))


def pod() -> dict:
    return one(objects(), "Deployment", "devenv-bot", "devenv-bot")["spec"]["template"]["spec"]


def test_every_object_of_the_overlay_validates_against_kubernetes():
    rendered = objects()
    assert rendered
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']} is invalid at {'.'.join(map(str, e.path))}: "
                        f"{e.message}")


def test_the_bot_stays_locked_down_and_only_the_docker_daemon_is_privileged():
    spec = pod()
    containers = {c["name"]: c for c in spec["containers"]}
    assert set(containers) == {"bot", "dind"}
    bot = containers["bot"]["securityContext"]
    assert bot["runAsNonRoot"] is True and bot["readOnlyRootFilesystem"] is True
    assert bot["allowPrivilegeEscalation"] is False and bot["capabilities"] == {"drop": ["ALL"]}
    dind = containers["dind"]
    assert dind["securityContext"]["privileged"] is True  # what Docker-in-Docker costs (docs/prebuilds.md)
    assert "--host=tcp://127.0.0.1:2375" in dind["args"] and not dind.get("ports")  # the pod's loopback only
    assert dind["image"].endswith("-dind") and ":latest" not in dind["image"]
    mounts = {m["name"]: m for m in dind["volumeMounts"]}
    assert "registry-login" not in mounts  # the login goes to `devpod build`, not to the daemon's disk
    assert "emptyDir" in {v["name"]: v for v in spec["volumes"]}["docker-data"]
    assert find(objects(), "Service", "devenv-bot-docker") == []
    [init] = spec["initContainers"]  # the docker CLI for DevPod's docker driver, copied by a locked-down container
    sc = init["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
    cli = {m["name"]: m["mountPath"] for m in containers["bot"]["volumeMounts"]}["docker-cli"]
    assert bot_config(objects())["PATH"].split(":")[0] == cli


def test_the_registry_login_is_a_referenced_secret_mounted_read_only_for_the_bot():
    rendered = objects()
    assert find(rendered, "Secret") == []
    spec = pod()
    volume = {v["name"]: v for v in spec["volumes"]}["registry-login"]
    assert volume["secret"]["secretName"] == "devenv-bot-registry"
    assert volume["secret"]["items"] == [{"key": ".dockerconfigjson", "path": "config.json"}]
    [bot] = [c for c in spec["containers"] if c["name"] == "bot"]
    [mount] = [m for m in bot["volumeMounts"] if m["name"] == "registry-login"]
    assert mount["readOnly"] is True
    assert mount["mountPath"] == bot_config(rendered)["DEVENV_PREBUILD_DOCKER_CONFIG"]


def test_the_overlays_settings_are_read_and_accepted_by_the_bot(tmp_path):
    from bot.settings import config

    settings = bot_config(objects())
    sources = bot_sources()
    assert [k for k in settings if f'"{k}"' not in sources] == []
    loaded = config.load({**settings, "PATH": "/usr/bin:/bin", "DEVENV_STATE_DIR": str(tmp_path)})
    assert loaded.prebuilds is not None
    assert loaded.prebuilds.docker_host == "tcp://127.0.0.1:2375"
    assert str(loaded.prebuilds.docker_config) == "/var/run/devenv-registry"
