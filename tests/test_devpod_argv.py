"""The argv builders follow the recommended DevPod invocations (CONTRACT), with bool flags always as ``--flag=value``."""

from __future__ import annotations

import subprocess

import pytest

from bot import devpod
from tests.devpod_rig import settings, standin, up  # noqa: F401  (fixtures)


def test_up_argv_follows_the_recommended_invocation(settings):
    argv = up(settings, labels={"repo": "Codertocat/Hello-World", "pr": "1"})
    ws = "hello-world-pr1-abcdef"
    assert argv[:3] == [str(settings.binary), "up", ws]
    assert argv[argv.index("--id") + 1] == ws
    assert argv[argv.index("--source") + 1] == "git:https://github.com/Codertocat/Hello-World@pull/1/head"
    assert argv[argv.index("--provider") + 1] == "kubernetes"
    assert argv[argv.index("--ide") + 1] == "openvscode"
    assert "--open-ide=false" in argv and "--configure-ssh=true" in argv
    assert not any(a in ("--open-ide", "--configure-ssh", "false", "true") for a in argv)  # bools only with '='
    assert argv[argv.index("--ssh-config") + 1] == str(settings.home / "ssh" / f"{ws}.config")
    assert argv[argv.index("--log-output") + 1] == "json"
    options = [argv[i + 1] for i, a in enumerate(argv) if a == "--provider-option"]
    assert "KUBERNETES_NAMESPACE=devenv" in options
    assert (
        f"LABELS=devenv-bot.dev/workspace={ws},devenv-bot.dev/repo=Codertocat-Hello-World,devenv-bot.dev/pr=1"
        in options
    )


def test_up_argv_asks_for_reset_or_recreate_with_bool_syntax(settings):
    assert "--recreate=true" in up(settings, recreate=True)
    assert "--reset=true" in up(settings, reset=True) and "--recreate=true" not in up(settings, reset=True)
    argv = up(settings, devcontainer_path=".devcontainer/bot.json")
    assert argv[argv.index("--devcontainer-path") + 1] == ".devcontainer/bot.json"


def test_up_argv_refuses_an_id_devpod_would_reject(settings):
    with pytest.raises(ValueError):
        up(settings, ws="Bad_ID")
    with pytest.raises(ValueError):
        devpod.up_argv(settings, "ok", "https://github.com/o/r")  # no source prefix


def test_lifecycle_argv(settings):
    b = str(settings.binary)
    common = ["--context", "default", "--log-output", "json"]
    assert devpod.stop_argv(settings, "ws") == [b, "stop", "ws", *common]
    assert devpod.delete_argv(settings, "ws") == [b, "delete", "ws", *common, "--ignore-not-found=true"]
    assert devpod.delete_argv(settings, "ws", force=True)[-1] == "--force=true"
    assert devpod.status_argv(settings, "ws") == [b, "status", "ws", "--output", "json", *common]
    assert devpod.list_argv(settings) == [b, "list", "--output", "json", *common]
    assert devpod.provider_list_argv(settings) == [b, "provider", "list", "--output", "json", *common]


def test_provider_and_context_argv(settings):
    b = str(settings.binary)
    assert devpod.provider_add_argv(settings) == [
        b, "provider", "add", "kubernetes", "--context", "default", "--log-output", "json",
        "-o", "KUBERNETES_NAMESPACE=devenv",
    ]  # fmt: skip
    assert devpod.provider_set_options_argv(settings, {"DISK_SIZE": "5Gi"})[-2:] == ["-o", "DISK_SIZE=5Gi"]
    with pytest.raises(ValueError):
        devpod.provider_set_options_argv(settings, {})
    argv = devpod.context_harden_argv(settings)
    assert argv[:3] == [b, "context", "set-options"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-o"] == [
        "SSH_ADD_PRIVATE_KEYS=false", "SSH_AGENT_FORWARDING=false", "SSH_INJECT_GIT_CREDENTIALS=false",
        "SSH_INJECT_DOCKER_CREDENTIALS=false", "GIT_SSH_SIGNATURE_FORWARDING=false", "TELEMETRY=false",
    ]  # fmt: skip


def test_ssh_argv_keeps_remote_stderr_verbatim_and_never_silences_it(settings):
    argv = devpod.ssh_command_argv(settings, "ws", "git status")
    assert argv[:5] == [str(settings.binary), "ssh", "ws", "--command", "git status"]
    assert argv[argv.index("--log-output") + 1] == "raw" and "--silent" not in argv
    assert "--agent-forwarding=false" in argv


def test_the_exit_marker_recovers_the_remote_exit_code():
    wrapped = devpod.wrap_with_exit_marker("false")
    out = subprocess.run(["/bin/sh", "-c", wrapped], capture_output=True, text=True).stdout
    assert devpod.parse_exit_marker("hello\n" + out) == (1, "hello\n")
    assert devpod.parse_exit_marker("no marker") == (None, "no marker")
