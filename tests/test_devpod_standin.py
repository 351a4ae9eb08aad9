"""The stand-in `devpod` honours the points of ../shared/devpod/CONTRACT.md the bot relies on."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.standin import DevPodStandIn

WS = "hello-world-pr1-abcdef"
SOURCE = "git:https://github.com/Codertocat/Hello-World@pull/1/head"


@pytest.fixture
def standin(tmp_path: Path) -> DevPodStandIn:
    s = DevPodStandIn(tmp_path / "home", provider_configured=True)
    (s.home / "ssh").mkdir()
    return s


def dp(standin: DevPodStandIn, *args: str, version: str | None = None, **env: str) -> subprocess.CompletedProcess:
    environ = {"PATH": standin.search_path, "HOME": str(standin.home / "user"), "DEVPOD_HOME": str(standin.home)}
    if version:
        environ["DEVPOD_STANDIN_VERSION"] = version
    environ.update(env)
    return subprocess.run(
        [str(standin.binary), *args], env=environ, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=20
    )


def up(standin: DevPodStandIn, *extra: str, ws: str = WS, source: str = SOURCE) -> subprocess.CompletedProcess:
    return dp(
        standin, "up", ws, "--id", ws, "--source", source, "--provider", "kubernetes", "--ide", "none",
        "--open-ide=false", "--configure-ssh=true", "--ssh-config", str(standin.home / "ssh" / f"{ws}.config"),
        "--log-output", "json", *extra,
    )  # fmt: skip


def messages(stream: str) -> list[dict]:
    return [json.loads(line) for line in stream.splitlines() if line.strip()]


def fatal(proc: subprocess.CompletedProcess) -> str:
    return [m["message"] for m in messages(proc.stderr) if m["level"] == "fatal"][-1]


# --------------------------------------------------------------------------- up


@pytest.mark.parametrize(
    ("ws_id", "message"),
    [
        ("Hello", "workspace name can only include smaller case letters, numbers or dashes"),
        ("a_b", "workspace name can only include smaller case letters, numbers or dashes"),
        ("a" * 49, "workspace name cannot be longer than 48 characters"),
    ],
)
def test_up_rejects_invalid_ids_with_devpods_messages(standin, ws_id, message):
    proc = up(standin, ws=ws_id)
    assert proc.returncode == 1 and fatal(proc) == message
    assert standin.workspace(ws_id) is None


def test_up_with_only_an_unknown_id_says_the_workspace_does_not_exist(standin):
    proc = dp(standin, "up", "--id", "ghost", "--source", SOURCE, "--log-output", "json")
    assert proc.returncode == 1 and fatal(proc) == "workspace ghost doesn't exist"


def test_up_rejects_a_source_without_a_known_prefix(standin):
    proc = up(standin, source="https://github.com/o/r")
    assert proc.returncode == 1 and fatal(proc) == "workspace source is missing"


def test_up_logs_json_progress_on_stdout_and_ends_with_the_ssh_hint(standin):
    proc = up(standin)
    assert proc.returncode == 0, proc.stderr
    out = messages(proc.stdout)
    assert all(set(m) == {"time", "message", "level"} and m["level"] == "info" for m in out)
    texts = [m["message"] for m in out]
    uid = standin.workspace(WS)["uid"]
    assert texts[:3] == ["Clone repository", "URL: https://github.com/Codertocat/Hello-World", "PR: pull/1/head"]
    assert f"Create Persistent Volume Claim 'devpod-{uid}'" in texts
    assert f"Waiting for DevContainer Pod 'devpod-{uid}' to come up..." in texts
    assert texts[-1] == f"Run 'ssh {WS}.devpod' to ssh into the devcontainer"
    assert re.fullmatch(r"default-he-[0-9a-f]{5}", uid)


def test_warnings_go_to_stderr_with_the_level_name_warning(standin):
    standin.inject(command="up", stderr_lines=[{"level": "warning", "message": "slow"}, "hook error output"])
    proc = up(standin)
    assert proc.returncode == 0
    assert [(m["level"], m["message"]) for m in messages(proc.stderr)] == [
        ("warning", "slow"),
        ("error", "hook error output"),
    ]


def test_plain_output_is_ansi_coloured_without_a_tty(standin):
    proc = dp(standin, "up", "--id", "x", "--log-output", "plain")
    assert re.match(r"\x1b\[0;1;37m\d\d:\d\d:\d\d \x1b\[0m\x1b\[0;1;31mfatal \x1b\[0m", proc.stderr)


def test_an_unknown_log_format_fails(standin):
    proc = dp(standin, "list", "--log-output", "yaml")
    assert proc.returncode == 1 and "unrecognized log format yaml" in proc.stderr


def test_up_writes_workspace_and_result_files(standin):
    up(standin, "--provider-option", "LABELS=devenv-bot.dev/workspace=" + WS)
    ws = standin.workspace(WS)
    assert ws["source"] == {"gitRepository": "https://github.com/Codertocat/Hello-World", "gitPRReference": "pull/1/head"}
    assert ws["provider"]["options"]["LABELS"] == {"value": "devenv-bot.dev/workspace=" + WS, "userProvided": True}
    assert ws["sshConfigPath"] == str(standin.home / "ssh" / f"{WS}.config")
    result = standin.workspace_result(WS)
    assert set(result) >= {"DevContainerConfigWithPath", "MergedConfig", "SubstitutionContext", "ContainerDetails"}
    assert result["SubstitutionContext"]["ContainerWorkspaceFolder"] == f"/workspaces/{WS}"
    assert result["ContainerDetails"]["ID"] == f"devpod-{ws['uid']}"
    assert result["MergedConfig"]["remoteUser"] == "root"


def test_up_writes_a_0600_ssh_block_above_the_first_host_line(standin):
    cfg = standin.home / "ssh" / f"{WS}.config"
    cfg.write_text("Include other.conf\n\n# mine\nHost other\n  User me\n")
    up(standin)
    up(standin)  # rewriting replaces the old block
    text = cfg.read_text()
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert text.count(f"# DevPod Start {WS}.devpod") == 1
    assert text.index("Include other.conf") < text.index("# DevPod Start") < text.index("# mine")
    assert f'"{standin.binary}" ssh --stdio --context default --user root {WS}' in text
    assert f'--devpod-home "{standin.home}"' in text


def test_a_failed_ssh_config_write_fails_up_after_creating_the_workspace(standin):
    proc = dp(
        standin, "up", WS, "--id", WS, "--source", SOURCE, "--ide", "none", "--log-output", "json",
        "--ssh-config", str(standin.home / "missing-dir" / "config"),
    )  # fmt: skip
    assert proc.returncode == 1 and fatal(proc).startswith("update ssh config")
    assert standin.workspace(WS) is not None


def test_up_needs_a_configured_provider(tmp_path):
    bare = DevPodStandIn(tmp_path / "bare")
    (bare.home / "ssh").mkdir()
    proc = up(bare)
    assert proc.returncode == 1 and "provider 'kubernetes'" in fatal(proc)


def test_up_resumes_a_stopped_workspace(standin):
    up(standin)
    assert dp(standin, "stop", WS, "--log-output", "json").returncode == 0
    assert standin.cluster(WS)["pod"] is None
    proc = up(standin)
    assert proc.returncode == 0
    assert standin.cluster(WS) == {"pvc": True, "pod": "Running", "starts": 2}
    assert "Clone repository" not in proc.stdout  # the existing clone is kept


def test_up_on_an_existing_workspace_ignores_a_new_source(standin):
    up(standin)
    up(standin, source="git:https://github.com/other/repo@pull/9/head")
    assert standin.workspace(WS)["source"]["gitRepository"] == "https://github.com/Codertocat/Hello-World"


def test_recreate_keeps_the_volume_and_reset_reclones(standin):
    up(standin)
    marker = standin.container_dir(WS) / "work.txt"
    marker.write_text("unsaved work")
    proc = up(standin, "--recreate=true")
    assert proc.returncode == 0 and marker.exists() and standin.cluster(WS)["starts"] == 2
    assert "Clone repository" not in proc.stdout
    proc = up(standin, "--reset=true")
    assert proc.returncode == 0 and not marker.exists() and standin.cluster(WS)["starts"] == 3
    assert "Clone repository" in proc.stdout


def test_bool_flags_take_a_value_only_with_an_equals_sign(standin):
    # `--open-ide false` leaves --open-ide on (plus a stray positional), so openvscode blocks.
    proc = subprocess.Popen(
        [
            str(standin.binary), "up", WS, "--id", WS, "--source", SOURCE, "--ide", "openvscode", "--open-ide",
            "false", "--ssh-config", str(standin.home / "ssh" / "c"), "--log-output", "json",
        ],  # fmt: skip
        env={"PATH": standin.search_path, "DEVPOD_HOME": str(standin.home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            obj = json.loads(line)
            if "url" in obj:
                assert obj == {"url": f"http://localhost:10800/?folder=/workspaces/{WS}", "done": "true"}
                break
        assert proc.poll() is None  # still blocking in the browser tunnel
        proc.terminate()
        assert proc.wait(timeout=10) == -15  # v0.6.15 dies at once on SIGTERM (CONTRACT §9)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


# --------------------------------------------------------------------------- status, list, stop, delete


def test_status_prints_json_without_a_trailing_newline(standin):
    up(standin)
    proc = dp(standin, "status", WS, "--output", "json", "--log-output", "json")
    assert proc.returncode == 0 and proc.stdout == (
        f'{{"id":"{WS}","context":"default","provider":"kubernetes","state":"Running"}}'
    )
    dp(standin, "stop", WS)
    assert json.loads(dp(standin, "status", WS, "--output", "json").stdout)["state"] == "Stopped"
    standin.set_cluster(WS, pvc=False)
    assert json.loads(dp(standin, "status", WS, "--output", "json").stdout)["state"] == "NotFound"


def test_status_of_an_unknown_workspace_exits_1(standin):
    proc = dp(standin, "status", "ghost", "--output", "json", "--log-output", "json")
    assert proc.returncode == 1 and proc.stdout == ""
    assert fatal(proc) == "workspace ghost doesn't exist"


def test_plain_status_goes_to_stderr(standin):
    up(standin)
    dp(standin, "stop", WS)
    proc = dp(standin, "status", WS, "--log-output", "raw")
    assert proc.stdout == "" and proc.stderr == f"Workspace '{WS}' is 'Stopped', you can start it via 'devpod up {WS}'\n"


def test_list_prints_a_compact_json_array_without_a_newline_sorted_by_id(standin):
    assert dp(standin, "list", "--output", "json").stdout == "[]"
    up(standin, ws="zz-pr2-000000")
    up(standin, ws="aa-pr1-000000")
    out = dp(standin, "list", "--output", "json").stdout
    assert not out.endswith("\n")
    assert [w["id"] for w in json.loads(out)] == ["aa-pr1-000000", "zz-pr2-000000"]
    proc = dp(standin, "list", "--output", "yaml", "--log-output", "json")
    assert fatal(proc) == "unexpected output format, choose either json or plain. Got yaml"


def test_delete_removes_local_state_cluster_objects_and_the_ssh_block(standin):
    up(standin)
    cfg = standin.home / "ssh" / f"{WS}.config"
    proc = dp(standin, "delete", WS, "--log-output", "json")
    assert proc.returncode == 0
    assert messages(proc.stdout)[-1]["message"] == f"Successfully deleted workspace '{WS}'"
    assert standin.workspace(WS) is None and "DevPod Start" not in cfg.read_text()
    assert not standin.container_dir(WS).exists()


def test_deleting_a_missing_workspace_fails_in_0_6_but_not_with_ignore_not_found(standin):
    proc = dp(standin, "delete", "ghost", "--log-output", "json")
    assert proc.returncode == 1 and fatal(proc) == "couldn't find workspace ghost"
    assert dp(standin, "delete", "ghost", "--ignore-not-found=true").returncode == 0


def test_a_failed_delete_exits_1_in_0_6_and_0_in_0_7(standin):
    up(standin)
    standin.inject(command="delete", exit=1, message="delete pvc: forbidden", times=2)
    proc = dp(standin, "delete", WS, "--log-output", "json")
    assert proc.returncode == 1 and fatal(proc) == "delete pvc: forbidden"
    proc = dp(standin, "delete", WS, "--log-output", "json", version="0.7.0-alpha.34")
    assert proc.returncode == 0
    assert messages(proc.stderr)[-1]["message"] == f"Failed to delete workspace '{WS}': delete pvc: forbidden"
    assert standin.workspace(WS) is not None


def test_a_forced_delete_drops_local_state_even_when_the_remote_part_fails(standin):
    up(standin)
    standin.inject(command="delete", exit=1, message="delete pvc: forbidden")
    proc = dp(standin, "delete", WS, "--force=true", "--log-output", "json")
    assert proc.returncode == 0 and standin.workspace(WS) is None


# --------------------------------------------------------------------------- providers and context


def test_provider_add_is_not_idempotent(tmp_path):
    s = DevPodStandIn(tmp_path / "h")
    assert dp(s, "provider", "list", "--output", "json").stdout == "{}"
    assert dp(s, "provider", "add", "kubernetes", "-o", "KUBERNETES_NAMESPACE=devenv").returncode == 0
    proc = dp(s, "provider", "add", "kubernetes", "--log-output", "json")
    assert proc.returncode == 1 and fatal(proc) == (
        "provider kubernetes already exists. Please run 'devpod provider delete kubernetes' before adding the provider"
    )
    listed = json.loads(dp(s, "provider", "list", "--output", "json").stdout)
    assert listed["kubernetes"]["default"] is True and listed["kubernetes"]["state"]["initialized"] is True


def test_provider_set_options_stores_options_and_needs_at_least_one(standin):
    assert dp(standin, "provider", "set-options", "kubernetes", "-o", "DISK_SIZE=20Gi").returncode == 0
    assert standin.provider_options() == {"DISK_SIZE": "20Gi"}
    proc = dp(standin, "provider", "set-options", "kubernetes", "--log-output", "json")
    assert proc.returncode == 1 and fatal(proc) == "please specify option"


def test_context_set_options_stores_options(standin):
    proc = dp(standin, "context", "set-options", "-o", "SSH_INJECT_GIT_CREDENTIALS=false", "-o", "TELEMETRY=false")
    assert proc.returncode == 0
    assert standin.context_options() == {"SSH_INJECT_GIT_CREDENTIALS": "false", "TELEMETRY": "false"}


# --------------------------------------------------------------------------- ssh


def test_ssh_runs_the_command_in_the_container_dir_and_exits_1_on_remote_failure(standin):
    up(standin)
    proc = dp(standin, "ssh", WS, "--command", "pwd; echo oops >&2; exit 3", "--log-output", "raw")
    assert proc.returncode == 1  # not 3: the CLI does not propagate the remote code
    assert proc.stdout == f"{standin.container_dir(WS)}\n"
    assert proc.stderr == "oops\ntunnel to container: run in container: ssh session: Process exited with status 3\n"
    ok = dp(standin, "ssh", WS, "--command", "echo hi", "--log-output", "json")
    assert ok.returncode == 0 and ok.stdout == "hi\n" and ok.stderr == ""


def test_ssh_starts_a_stopped_workspace(standin):
    up(standin)
    dp(standin, "stop", WS)
    assert dp(standin, "ssh", WS, "--command", "true").returncode == 0
    assert standin.cluster(WS)["pod"] == "Running"


def test_ssh_to_a_stopped_workspace_says_it_sets_up_the_container_even_without_services(standin):
    up(standin)
    dp(standin, "stop", WS)
    starts = standin.cluster(WS).get("starts", 0)
    proc = dp(standin, "ssh", WS, "--command", "echo hi", "--start-services=false", "--log-output", "raw")
    assert proc.returncode == 0 and proc.stdout == "hi\n"
    assert proc.stderr == "Setup container...\n"  # CONTRACT §9: --start-services=false does not prevent it
    assert standin.cluster(WS)["pod"] == "Running" and standin.cluster(WS)["starts"] == starts + 1
    again = dp(standin, "ssh", WS, "--command", "true", "--log-output", "raw")
    assert again.stderr == ""  # running already: nothing to set up


def _session(standin: DevPodStandIn, marker: Path) -> subprocess.Popen:
    """A `devpod ssh` whose remote command writes its PID to ``marker`` and then runs for a long time."""
    command = f"echo $$ > {marker}; exec sleep 60"
    proc = subprocess.Popen(
        [str(standin.binary), "ssh", WS, "--command", command, "--log-output", "raw"],
        env={"PATH": standin.search_path, "DEVPOD_HOME": str(standin.home)},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not (marker.exists() and marker.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline, "the remote command did not start"
        time.sleep(0.05)
    return proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


@pytest.mark.parametrize("verb", ["stop", "delete"])
def test_ssh_hangs_when_its_workspace_goes_away_under_it(standin, tmp_path, verb):
    up(standin)
    marker = tmp_path / "remote.pid"
    proc = _session(standin, marker)
    remote = int(marker.read_text())
    try:
        assert dp(standin, verb, WS).returncode == 0
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first == "Error tunneling to container: Process exited with status 137\n"
        if verb == "delete":  # and then it keeps failing to read the deleted workspace
            assert re.fullmatch(r"Error refreshing workspace options: open .*/workspaces/"
                                + WS + r"/workspace\.json: no such file or directory\n", proc.stderr.readline())
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1.5)  # it never exits by itself (the real one was killed after 520 s)
        assert not _alive(remote)  # the container took the command down with it
        if verb == "stop":
            assert standin.cluster(WS)["pod"] is None  # the hanging session did not start it again
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


# --------------------------------------------------------------------------- locks, faults, calls


def test_a_held_workspace_lock_makes_others_wait_then_time_out(standin):
    up(standin)
    standin.inject(command="up", hang=True, stderr_lines=["holding the lock"])
    holder = subprocess.Popen(
        [str(standin.binary), "up", WS, "--log-output", "raw", "--ide", "none"],
        env={"PATH": standin.search_path, "DEVPOD_HOME": str(standin.home)},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert holder.stderr is not None and holder.stderr.readline() == "holding the lock\n"
        proc = dp(standin, "stop", WS, "--log-output", "json", DEVPOD_STANDIN_LOCK_TIMEOUT="0.3")
        assert proc.returncode == 1
        assert "Trying to lock workspace" in proc.stdout
        assert fatal(proc) == (
            "error locking workspace: timed out waiting to lock workspace, seems like there is another process "
            "running on this machine that blocks it"
        )
    finally:
        holder.terminate()
        assert holder.wait(timeout=10) == -15  # v0.6.15 dies at once on SIGTERM (CONTRACT §9)
        holder.stderr.close()  # type: ignore[union-attr]
    assert dp(standin, "stop", WS, DEVPOD_STANDIN_LOCK_TIMEOUT="0.3").returncode == 0


def test_fault_rules_match_by_command_and_argv_and_are_consumed(standin):
    standin.inject(command="up", match="other-pr", exit=1)
    standin.inject(command="up", exit=1, times=2, stderr_lines=[{"level": "fatal", "message": "pod timeout"}])
    assert [up(standin).returncode for _ in range(3)] == [1, 1, 0]
    assert standin.faults() == [{"command": "up", "match": "other-pr", "exit": 1}]
    assert standin.workspace(WS) is not None


def test_a_fault_can_fire_at_a_phase_after_the_workspace_is_created(standin):
    standin.inject(command="up", phase="Create Pod", exit=1, message="pods is forbidden")
    proc = up(standin)
    assert proc.returncode == 1 and fatal(proc) == "pods is forbidden"
    assert standin.workspace(WS) is not None and "Create Persistent Volume Claim" in proc.stdout


def test_every_invocation_is_recorded_with_env_names_only(standin):
    up(standin)
    dp(standin, "status", WS, "--output", "json", GIT_ASKPASS="/x", DEVENV_GIT_TOKEN="ghs_secretvalue")
    calls = standin.calls()
    assert [c["command"] for c in calls] == ["up", "status"]
    assert calls[0]["argv"][:2] == ["up", WS] and isinstance(calls[0]["pid"], int)
    assert calls[1]["git_askpass"] and calls[1]["git_token_env"] and "DEVENV_GIT_TOKEN" in calls[1]["env"]
    assert "ghs_secretvalue" not in (standin.home / "standin-calls.jsonl").read_text()
    assert standin.calls("status") == [calls[1]]


def test_version_reports_the_pinned_release(standin):
    assert dp(standin, "version").stdout == "v0.6.15-hotfix.2\n"
    assert dp(standin, "version", version="0.7.0-alpha.34").stdout == "v0.7.0-alpha.34\n"


def test_the_env_helper_points_the_bot_at_the_standin(standin):
    env = standin.env()
    assert (env["DEVPOD_BIN"], env["DEVPOD_HOME"]) == (str(standin.binary), str(standin.home))
    assert env["PATH"].endswith(os.environ["PATH"])
    assert os.access(standin.binary, os.X_OK)
    assert standin.binary.read_text().startswith("#!/usr/bin/env python3\n")
