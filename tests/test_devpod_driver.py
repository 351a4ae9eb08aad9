"""The DevPod driver: argv builders, parsers, masking, naming and the runner (against the stand-in)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.devpod import driver as devpod
from bot.devpod.driver import DevPodSettings, LogLine, Masker, WorkspaceState
from tests.standin import DevPodStandIn

TOKEN = "ghs_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.fixture
def standin(tmp_path: Path) -> DevPodStandIn:
    return DevPodStandIn(tmp_path / "devpod-home", provider_configured=True)


@pytest.fixture
def settings(standin: DevPodStandIn) -> DevPodSettings:
    s = DevPodSettings(
        home=standin.home, binary=str(standin.binary), path=standin.search_path, kill_grace=0.5, namespace="devenv"
    )
    devpod.prepare_dirs(s)
    return s


def up(settings: DevPodSettings, ws: str = "hello-world-pr1-abcdef", **kw) -> list[str]:
    return devpod.up_argv(settings, ws, "git:https://github.com/Codertocat/Hello-World@pull/1/head", **kw)


# --------------------------------------------------------------------------- settings


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


# --------------------------------------------------------------------------- naming

owners = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}", fullmatch=True)
repos = st.from_regex(r"[A-Za-z0-9._-]{1,100}", fullmatch=True)
numbers = st.integers(min_value=1, max_value=10**9)


@given(owners, repos, numbers)
def test_a_workspace_id_always_passes_devpods_id_validation(owner, repo, number):
    ws = devpod.workspace_id(owner, repo, number)
    assert not re.search(r"[^a-z0-9\-]+", ws)  # CONTRACT §1.5
    assert 0 < len(ws) <= 48
    assert not ws.startswith("-") and not ws.endswith("-")
    assert ws == devpod.workspace_id(owner, repo, number)


@given(owners, repos, numbers, owners, repos, numbers)
def test_distinct_pull_requests_get_distinct_workspace_ids(o1, r1, n1, o2, r2, n2):
    if (o1.lower(), r1.lower(), n1) != (o2.lower(), r2.lower(), n2):
        assert devpod.workspace_id(o1, r1, n1) != devpod.workspace_id(o2, r2, n2)


def test_repos_that_sanitise_alike_still_get_distinct_ids():
    long = "a" * 60
    assert devpod.workspace_id("o", long + "x", 1) != devpod.workspace_id("o", long + "y", 1)
    assert devpod.workspace_id("o", "my_repo", 1) != devpod.workspace_id("o", "my.repo", 1)
    assert devpod.workspace_id("o", "my_repo", 1).startswith("my-repo-pr1-")


def test_a_workspace_id_ignores_github_name_case():
    assert devpod.workspace_id("Codertocat", "Hello-World", 1) == devpod.workspace_id("codertocat", "hello-world", 1)


def test_the_pr_source_uses_devpods_pull_ref_syntax():
    assert devpod.pr_source("https://github.com/", "Codertocat", "Hello-World", 7) == (
        "git:https://github.com/Codertocat/Hello-World@pull/7/head"
    )
    with pytest.raises(ValueError):
        devpod.pr_source("https://github.com", "evil@x", "r", 1)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("Hello-World", "Hello-World"), ("feat/branch!", "feat-branch"), ("-x-", "x"), ("a" * 80, "a" * 63), ("", "")],
)
def test_label_values_are_made_valid_for_kubernetes(raw, value):
    assert devpod.label_value(raw) == value


@given(st.text())
def test_any_text_becomes_a_valid_label_value(text):
    assert re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", devpod.label_value(text))


# --------------------------------------------------------------------------- argv


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


# --------------------------------------------------------------------------- parsers


def test_a_json_log_line_is_parsed_and_warning_is_the_level_name():
    line = devpod.parse_log_line(
        '{"time":"2025-07-24T10:00:00.123+02:00","message":"Trying to lock workspace","level":"warning"}', "stderr"
    )
    assert line == LogLine(
        "Trying to lock workspace", "warning", "2025-07-24T10:00:00.123+02:00", "stderr", line.text if line else ""
    )


def test_plain_raw_and_blank_lines_are_tolerated():
    plain = devpod.parse_log_line("\x1b[0;1;37m12:34:56 \x1b[0m\x1b[0;1;36minfo \x1b[0mCreating devcontainer...")
    assert plain is not None and (plain.level, plain.message) == ("info", "Creating devcontainer...")
    warn = devpod.parse_log_line("\x1b[0;1;37m12:34:56 \x1b[0m\x1b[0;1;31mwarn \x1b[0mcareful")
    assert warn is not None and warn.level == "warning"
    raw = devpod.parse_log_line("panic: runtime error", "stderr")
    assert raw is not None and (raw.level, raw.message, raw.stream) == (None, "panic: runtime error", "stderr")
    assert devpod.parse_log_line("   \n") is None


def test_the_browser_url_object_is_kept_as_data():
    line = devpod.parse_log_line('{"url":"http://localhost:10800/?folder=/workspaces/x","done":"true"}')
    assert line is not None and line.level is None and line.data == {
        "url": "http://localhost:10800/?folder=/workspaces/x",
        "done": "true",
    }


def test_status_json_without_a_trailing_newline_is_parsed():
    status = devpod.parse_status('{"id":"myrepo-pr12","context":"default","provider":"kubernetes","state":"Stopped"}')
    assert (status.id, status.state, status.provider) == ("myrepo-pr12", WorkspaceState.STOPPED, "kubernetes")
    for state in ("Running", "Busy", "NotFound"):
        assert devpod.parse_status(json.dumps({"id": "x", "state": state})).state == state
    with pytest.raises(ValueError):
        devpod.parse_status("")
    with pytest.raises(ValueError):
        devpod.parse_status('{"id":"x","state":"Exploded"}')


def test_list_and_provider_list_are_parsed():
    assert devpod.parse_list("[]") == [] and devpod.parse_list("") == []
    listed = devpod.parse_list('[{"id":"myrepo-pr12","uid":"default-my-1a2b3","machine":{},"context":"default"}]')
    assert listed[0]["uid"] == "default-my-1a2b3"
    provider_list = json.dumps(
        {"kubernetes": {"config": {"name": "kubernetes"}, "state": {"initialized": True}, "default": True}}, indent=2
    )
    assert devpod.parse_provider_list(provider_list) == {"kubernetes"}
    assert devpod.parse_provider_list("{}") == set()


def L(message, level="error", stream="stderr"):  # noqa: N802
    return LogLine(message, level, None, stream, message)


def test_meaningful_errors_keep_the_fatal_cause_and_skip_noise():
    lines = [
        L("Creating devcontainer...", "info", "stdout"),
        L("npm WARN error-ish output from postCreateCommand"),
        *[L(f"hook error {i}") for i in range(20)],
        L("Error tunneling to container: wait: remote command exited without exit status or exit signal"),
        L("create pod: pods is forbidden", "fatal"),
    ]
    errors = devpod.meaningful_errors(lines, n=3)
    assert errors == ["hook error 18", "hook error 19", "create pod: pods is forbidden"]


def test_meaningful_errors_fall_back_to_raw_stderr():
    lines = [L("panic: boom", None), L("goroutine 1 [running]:", None), L("ok", None, "stdout")]
    assert devpod.meaningful_errors(lines) == ["panic: boom", "goroutine 1 [running]:"]


def test_a_missing_workspace_is_recognised():
    assert devpod.workspace_missing([L("workspace x doesn't exist", "fatal")])
    assert not devpod.workspace_missing([L("something else", "fatal")])


@pytest.mark.parametrize(
    ("message", "phase"),
    [
        ("Create Persistent Volume Claim 'devpod-default-my-1a2b3'", "Creating volume"),
        ("Create Pod 'devpod-default-my-1a2b3'", "Creating pod"),
        ("Waiting for DevContainer Pod 'devpod-default-my-1a2b3' to come up...", "Waiting for pod"),
        ("Waiting, since pod 'devpod-default-my-1a2b3' is starting", "Waiting for pod"),
        ("Clone repository", "Cloning repository"),
        ("PR: pull/12/head", "Cloning repository"),
        ("Creating devcontainer...", "Creating devcontainer"),
        ("Run 'ssh myrepo-pr12.devpod' to ssh into the devcontainer", "Ready"),
        ("Trying to lock workspace, seems like another process is running that blocks this workspace",
         "Waiting for another operation"),
        ("some unrelated debug output", None),
    ],
)  # fmt: skip
def test_progress_messages_map_to_human_phases(message, phase):
    assert devpod.phase_of(message) == phase


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    "text",
    [
        f"token {TOKEN} leaked",
        "ghp_" + "x" * 36,
        "github_pat_" + "y" * 60,
        "https://x-access-token:abcdef123@github.com/o/r",
        "Authorization: Bearer eyJhbGciOi.abc.def",
    ],
)
def test_known_token_shapes_are_masked(text):
    masked = Masker().mask(text)
    assert "***" in masked
    for secret in (TOKEN, "x" * 36, "y" * 60, "abcdef123", "eyJhbGciOi.abc.def"):
        assert secret not in masked


def test_registered_secrets_are_masked_but_short_ones_are_ignored():
    m = Masker(["s3cr3t-value", "ab"])
    assert m.mask("a s3cr3t-value and ab") == "a *** and ab"


# --------------------------------------------------------------------------- git credentials


def test_the_askpass_script_answers_git_from_the_environment_only(tmp_path):
    path = devpod.write_askpass(tmp_path / "bin")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert TOKEN not in path.read_text()
    mtime = path.stat().st_mtime_ns
    assert devpod.write_askpass(tmp_path / "bin") == path and path.stat().st_mtime_ns == mtime  # idempotent
    env = devpod.git_credential_env(TOKEN, path)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    ask = lambda prompt: subprocess.run([str(path), prompt], env=env, capture_output=True, text=True).stdout  # noqa: E731
    assert ask("Username for 'https://github.com': ") == "x-access-token\n"
    assert ask("Password for 'https://x-access-token@github.com': ") == TOKEN + "\n"


def test_the_child_environment_is_built_from_scratch(settings, monkeypatch):
    monkeypatch.setenv("DEVPOD_FLAGS_UP", '{"recreate": true}')
    env = devpod.build_env(settings, {"EXTRA": "1"})
    assert set(env) == {"PATH", "HOME", "DEVPOD_HOME", "DEVPOD_DISABLE_TELEMETRY", "EXTRA"}
    assert env["HOME"] != os.environ.get("HOME")
    with pytest.raises(ValueError):
        devpod.build_env(settings, {"DEVPOD_FLAGS_UP": "{}"})


# --------------------------------------------------------------------------- runner


async def test_a_successful_up_streams_progress_and_ends_with_the_ssh_hint(settings, standin):
    seen: list[LogLine] = []
    result = await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker(), on_line=seen.append)
    assert result.ok and result.exit_code == 0 and not result.timed_out
    assert seen == result.lines
    assert result.lines[-1].message == "Run 'ssh hello-world-pr1-abcdef.devpod' to ssh into the devcontainer"
    phases = [devpod.phase_of(ln.message) for ln in seen]
    assert phases.index("Cloning repository") < phases.index("Creating pod") < phases.index("Ready")
    assert standin.workspace("hello-world-pr1-abcdef") is not None


async def test_status_and_list_results_are_parsed_from_stdout(settings, standin):
    await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker())
    status = await devpod.run(
        devpod.status_argv(settings, "hello-world-pr1-abcdef"), settings=settings, timeout=20, masker=Masker()
    )
    assert devpod.parse_status(status.stdout).state == WorkspaceState.RUNNING
    listed = await devpod.run(devpod.list_argv(settings), settings=settings, timeout=20, masker=Masker())
    assert [w["id"] for w in devpod.parse_list(listed.stdout)] == ["hello-world-pr1-abcdef"]
    providers = await devpod.run(devpod.provider_list_argv(settings), settings=settings, timeout=20, masker=Masker())
    assert devpod.parse_provider_list(providers.stdout) == {"kubernetes"}


async def test_a_failed_up_reports_meaningful_errors(settings, standin):
    standin.inject(
        command="up",
        exit=1,
        stderr_lines=[
            "postCreateCommand: 0 errors found",
            {"level": "fatal", "message": "waiting for pod: ImagePullBackOff"},
        ],
    )
    result = await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker())
    assert result.exit_code == 1 and not result.ok
    assert result.errors() == ["postCreateCommand: 0 errors found", "waiting for pod: ImagePullBackOff"]


async def test_a_missing_workspace_status_fails_with_exit_1(settings):
    result = await devpod.run(devpod.status_argv(settings, "nope"), settings=settings, timeout=20, masker=Masker())
    assert result.exit_code == 1 and devpod.workspace_missing(result.lines)


async def test_a_timeout_sends_sigterm_and_devpod_exits(settings, standin):
    started = asyncio.Event()
    standin.inject(command="up", hang=True, stderr_lines=[{"level": "warning", "message": "hanging"}])
    result = await devpod.run(
        up(settings), settings=settings, timeout=1.0, masker=Masker(), on_line=lambda ln: started.set()
    )
    assert started.is_set()
    assert result.timed_out and result.exit_code == 1  # SIGTERM: DevPod cancels and exits 1
    assert result.lines[-1].message == "context canceled"


async def test_a_child_that_ignores_sigterm_is_killed(settings, standin):
    standin.inject(command="up", hang=True, ignore_sigterm=True)
    result = await devpod.run(up(settings), settings=settings, timeout=0.8, masker=Masker())
    assert result.timed_out and result.exit_code == -9
    assert result.duration < 5


async def test_cancelling_the_caller_terminates_the_child(settings, standin):
    standin.inject(command="up", hang=True, stderr_lines=["holding the lock"])
    started = asyncio.Event()
    task = asyncio.create_task(
        devpod.run(up(settings), settings=settings, timeout=60, masker=Masker(), on_line=lambda ln: started.set())
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pid = standin.calls("up")[-1]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # The lock died with the process: the next up goes through at once.
    result = await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker())
    assert result.ok


async def test_the_child_never_sees_the_bots_environment(settings, standin, monkeypatch):
    monkeypatch.setenv("DEVPOD_FLAGS_UP", '{"recreate": true}')
    monkeypatch.setenv("GITHUB_PRIVATE_KEY", "secret")
    await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker())
    names = set(standin.calls("up")[-1]["env"])
    assert "DEVPOD_FLAGS_UP" not in names and "GITHUB_PRIVATE_KEY" not in names
    assert {"PATH", "HOME", "DEVPOD_HOME", "DEVPOD_DISABLE_TELEMETRY"} <= names
    # Only names the interpreter adds itself: a pyenv shim for python3, PEP 538's LC_CTYPE.
    launcher = re.compile(r"^(_?PYENV\w*|PWD|OLDPWD|SHLVL|_|LC_CTYPE)$")
    assert {n for n in names - {"PATH", "HOME", "DEVPOD_HOME", "DEVPOD_DISABLE_TELEMETRY"} if not launcher.match(n)} == set()


async def test_the_token_reaches_git_through_the_environment_only(settings, standin, tmp_path):
    askpass = devpod.write_askpass(tmp_path / "askpass")
    masker = Masker([TOKEN])
    result = await devpod.run(
        up(settings), settings=settings, timeout=20, masker=masker, env_extra=devpod.git_credential_env(TOKEN, askpass)
    )
    assert result.ok
    call = standin.calls("up")[-1]
    assert call["git_askpass"] and call["git_token_env"] and call["git_terminal_prompt"] == "0"
    assert TOKEN not in " ".join(call["argv"])
    assert TOKEN not in (standin.home / "standin-calls.jsonl").read_text()
    clone = json.loads((standin.container_dir("hello-world-pr1-abcdef") / ".standin-source.json").read_text())
    assert clone["askpassAnswered"] is True


async def test_a_secret_printed_by_devpod_is_masked_before_anyone_sees_it(settings, standin):
    standin.inject(command="up", exit=1, stderr_lines=[f"clone https://x-access-token:{TOKEN}@github.com/o/r failed"])
    seen: list[LogLine] = []
    result = await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker([TOKEN]), on_line=seen.append)
    text = " ".join(ln.message + ln.text for ln in seen + result.lines)
    assert TOKEN not in text and "x-access-token:***@github.com" in text


async def test_overlong_lines_are_truncated_and_the_ring_buffer_is_bounded(settings, standin):
    standin.inject(command="up", stdout=("z" * 50_000 + "\n") + "".join(f"line {i}\n" for i in range(300)))
    result = await devpod.run(
        up(settings), settings=settings, timeout=20, masker=Masker(), max_lines=50, max_line_bytes=1000
    )
    assert result.ok and len(result.lines) == 50
    assert all(len(ln.text) <= 1000 + len(" …[truncated]") for ln in result.lines)
    assert result.stdout.startswith("z" * 1000 + " …[truncated]\nline 0\n")


async def test_an_async_on_line_callback_is_awaited(settings):
    seen: list[str] = []

    async def on_line(line: LogLine) -> None:
        await asyncio.sleep(0)
        seen.append(line.message)

    result = await devpod.run(devpod.list_argv(settings), settings=settings, timeout=20, masker=Masker(), on_line=on_line)
    assert result.ok and seen == ["[]"]


async def test_an_error_in_on_line_stops_the_child_and_propagates(settings, standin):
    standin.inject(command="up", hang=True, stderr_lines=["boom please"])

    def on_line(line: LogLine) -> None:
        raise RuntimeError(line.message)

    with pytest.raises(RuntimeError, match="boom please"):
        await devpod.run(up(settings), settings=settings, timeout=60, masker=Masker(), on_line=on_line)
    with pytest.raises(ProcessLookupError):
        os.kill(standin.calls("up")[-1]["pid"], 0)
