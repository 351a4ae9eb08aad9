"""SIGTERM ends DevPod v0.6.15 at once (CONTRACT §9): the stand-in does the same for ``up``, ``stop`` and ``ssh``."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.standin import DevPodStandIn

WS = "hello-world-pr1-abcdef"
SOURCE = "git:https://github.com/Codertocat/Hello-World@pull/1/head"


def devpod(standin: DevPodStandIn, *args: str, version: str | None = None) -> subprocess.Popen:
    environ = {"PATH": standin.search_path, "HOME": str(standin.home / "user"), "DEVPOD_HOME": str(standin.home)}
    if version:
        environ["DEVPOD_STANDIN_VERSION"] = version
    return subprocess.Popen([str(standin.binary), *args, "--log-output", "json"], env=environ, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def created(tmp_path: Path) -> DevPodStandIn:
    standin = DevPodStandIn(tmp_path / "home", provider_configured=True)
    made = devpod(standin, "up", WS, "--id", WS, "--source", SOURCE, "--ide", "none", "--open-ide=false",
                  "--configure-ssh=false")
    made.communicate(timeout=20)
    assert made.returncode == 0
    return standin


def terminated(standin: DevPodStandIn, proc: subprocess.Popen, command: str) -> tuple[int, str]:
    """SIGTERM once the command hangs in its fault, like the bot's time limit does."""
    deadline = time.monotonic() + 20
    while not standin.hanging() and time.monotonic() < deadline:  # fired, not only taken
        time.sleep(0.05)
    assert standin.hanging(), f"{command} never reached its fault"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, out + err


@pytest.mark.parametrize("command", ["up", "stop", "ssh"])
def test_sigterm_ends_v0_6_15_at_once_with_no_fatal_line(tmp_path, command):
    standin = created(tmp_path)
    standin.inject(command=command, hang=True)
    args = {"up": ["up", WS], "stop": ["stop", WS], "ssh": ["ssh", WS, "--command", "true"]}[command]
    code, output = terminated(standin, devpod(standin, *args), command)
    assert code == -15  # 143 from a shell
    assert '"level":"fatal"' not in output and "context canceled" not in output


def test_a_container_is_left_running_with_its_hooks_unfinished(tmp_path):
    standin = DevPodStandIn(tmp_path / "home", provider_configured=True)
    (standin.home / "standin-devcontainer.json").write_text('{"postCreateCommand": "make setup"}')
    standin.inject(command="up", phase="Run command", after_line=True, hang=True)
    proc = devpod(standin, "up", WS, "--id", WS, "--source", SOURCE, "--ide", "none", "--open-ide=false",
                  "--configure-ssh=false")
    code, output = terminated(standin, proc, "up")
    assert code == -15 and "Run command : make setup" in output  # the hook started and never finished
    assert "Run 'ssh" not in output
    assert standin.cluster(WS)["pod"] == "Running"


def test_later_releases_cancel_and_fail_with_a_fatal_line(tmp_path):
    standin = created(tmp_path)
    standin.inject(command="stop", hang=True)
    code, output = terminated(standin, devpod(standin, "stop", WS, version="0.7.0-alpha.34"), "stop")
    assert code == 1 and "context canceled" in output
