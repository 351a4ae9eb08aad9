"""DevPod settings: read from the environment once, every bad value named by its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import devpod
from bot.devpod import DevPodSettings


def test_settings_from_an_empty_environment_use_the_state_dir_and_defaults(tmp_path):
    s = DevPodSettings.from_env({}, tmp_path)
    assert s.home == tmp_path / "devpod"
    assert (s.binary, s.provider, s.context, s.up_timeout) == ("devpod", "kubernetes", "default", 1800)
    assert s.ssh_dir == tmp_path / "devpod" / "ssh"


def test_settings_from_env_read_every_variable(tmp_path):
    env = {
        "DEVPOD_BIN": "/opt/devpod", "DEVPOD_HOME": "/state/dp", "DEVENV_PROVIDER": "kubernetes",
        "DEVENV_NAMESPACE": "devenv", "DEVENV_DISK_SIZE": "20Gi", "DEVENV_STORAGE_CLASS": "fast",
        "DEVENV_RESOURCES": "requests.cpu=500m, limits.memory=4Gi", "DEVENV_NODE_SELECTOR": "pool=dev",
        "DEVENV_SERVICE_ACCOUNT": "devenv", "DEVENV_POD_TIMEOUT": "15m", "KUBECONFIG": "/k/config",
        "DEVENV_UP_TIMEOUT": "45m", "DEVENV_STATUS_TIMEOUT": "20", "DEVENV_ARCHITECTURE": "amd64",
    }  # fmt: skip
    s = DevPodSettings.from_env(env, tmp_path)
    assert s.binary == "/opt/devpod" and s.home == Path("/state/dp")
    assert s.resources == "requests.cpu=500m,limits.memory=4Gi"
    assert (s.up_timeout, s.status_timeout) == (2700, 20)
    assert devpod.provider_options(s) == {
        "KUBERNETES_NAMESPACE": "devenv", "KUBERNETES_CONFIG": "/k/config", "DISK_SIZE": "20Gi",
        "STORAGE_CLASS": "fast", "RESOURCES": "requests.cpu=500m,limits.memory=4Gi", "NODE_SELECTOR": "pool=dev",
        "SERVICE_ACCOUNT": "devenv", "POD_TIMEOUT": "15m", "ARCHITECTURE": "amd64",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("DEVENV_NAMESPACE", "Not_A_Namespace"),
        ("DEVENV_DISK_SIZE", "lots"),
        ("DEVENV_RESOURCES", "cpu=1"),
        ("DEVENV_NODE_SELECTOR", "novalue"),
        ("DEVENV_POD_TIMEOUT", "10 minutes"),
        ("DEVENV_UP_TIMEOUT", "soon"),
        ("DEVENV_ARCHITECTURE", "sparc"),
        ("DEVPOD_HOME", "relative/path"),
    ],
)
def test_a_bad_setting_is_rejected_with_the_variable_name(tmp_path, var, value):
    with pytest.raises(ValueError, match=var):
        DevPodSettings.from_env({var: value}, tmp_path)
