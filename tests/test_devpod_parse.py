"""The parsers read DevPod's JSON logs, plain and raw lines, status and list output, errors and phases."""

from __future__ import annotations

import json

import pytest

from bot import devpod
from bot.devpod import LogLine, WorkspaceState


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


def test_meaningful_errors_keep_info_causes_before_a_generic_fatal_only():
    lines = [
        L("Clone repository", "info", "stdout"),
        L("clone repository: exit status 128", "info", "stdout"),
        L("run agent command: Process exited with status 1", "fatal"),
    ]
    assert devpod.meaningful_errors(lines) == ["clone repository: exit status 128",
                                               "run agent command: Process exited with status 1"]
    # Without a generic fatal after it, an info line is progress, not a cause.
    assert devpod.meaningful_errors([lines[1], L("create pod: forbidden", "fatal")]) == ["create pod: forbidden"]


@pytest.mark.parametrize(("errors", "cause"), [
    (["clone repository: exit status 128", "run agent command: Process exited with status 1"], "clone"),
    (["extract vscode: decompress: tar reader next: unexpected EOF"], "ide"),
    (["waiting for pod: ImagePullBackOff"], "image"),
    (["postCreateCommand failed: exit status 2"], "hooks"),
    (["error creating pod: exceeded quota"], "quota"),
    (["run agent command: Process exited with status 1"], None),
])  # fmt: skip
def test_the_likely_cause_of_a_failure_is_named(errors, cause):
    assert devpod.likely_cause(errors) == cause


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
        ("Run command : npm install...", "Running lifecycle hooks"),  # v0.6.15's hook line (CONTRACT §9)
        ("Deleting devcontainer...", "Removing the old container"),  # --reset/--recreate (CONTRACT §9)
        ("Run 'ssh myrepo-pr12.devpod' to ssh into the devcontainer", "Ready"),
        ("Trying to lock workspace, seems like another process is running that blocks this workspace",
         "Waiting for another operation"),
        ("some unrelated debug output", None),
    ],
)  # fmt: skip
def test_progress_messages_map_to_human_phases(message, phase):
    assert devpod.phase_of(message) == phase
