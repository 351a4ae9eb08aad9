"""The one runner, against the stand-in devpod: a minimal environment, masking, bounded output,
timeouts and cancellation that leave no process behind."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import subprocess

import pytest

from bot import devpod
from bot.devpod import LogLine, Masker, WorkspaceState
from tests.devpod_rig import TOKEN, settings, standin, up  # noqa: F401  (fixtures)


def test_the_child_environment_is_built_from_scratch(settings, monkeypatch):
    monkeypatch.setenv("DEVPOD_FLAGS_UP", '{"recreate": true}')
    env = devpod.build_env(settings, {"EXTRA": "1"})
    assert set(env) == {"PATH", "HOME", "DEVPOD_HOME", "DEVPOD_DISABLE_TELEMETRY", "EXTRA"}
    assert env["HOME"] != os.environ.get("HOME")
    with pytest.raises(ValueError):
        devpod.build_env(settings, {"DEVPOD_FLAGS_UP": "{}"})


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


@pytest.mark.parametrize(("failure", "cause", "kind"), [
    ("clone", "clone repository: exit status 128", "clone"),
    ("ide", "extract vscode: decompress: tar reader next: unexpected EOF", "ide"),
])  # fmt: skip
async def test_a_failed_up_keeps_the_info_cause_before_the_generic_fatal(settings, standin, failure, cause, kind):
    """v0.6.15 logs the cause at info and one generic fatal (CONTRACT §9); the cause must survive."""
    standin.inject(command="up", failure=failure)
    result = await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker())
    assert result.exit_code == 1
    assert [(ln.level, ln.message) for ln in result.lines[-2:]] == [
        ("info", cause), ("fatal", "run agent command: Process exited with status 1")]
    assert result.errors() == [cause, "run agent command: Process exited with status 1"]
    assert devpod.likely_cause(result.errors()) == kind


async def test_a_recreate_shows_real_hook_and_rebuild_phases(settings, standin):
    """v0.6.15 prints "Run command : <cmd>..." for hooks and "Deleting devcontainer..." (CONTRACT §9)."""
    (standin.home / "standin-devcontainer.json").write_text('{"postCreateCommand": "npm install"}')
    await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker())
    result = await devpod.run(up(settings, recreate=True), settings=settings, timeout=20, masker=Masker())
    assert result.ok
    messages = [ln.message for ln in result.lines]
    assert "Deleting devcontainer..." in messages and "Run command : npm install..." in messages
    phases = [devpod.phase_of(m) for m in messages]
    assert "Deleting" not in phases
    assert phases.index("Removing the old container") < phases.index("Running lifecycle hooks") < phases.index("Ready")


async def test_kubernetes_options_are_not_given_to_another_provider(settings, standin):
    """On the docker provider LABELS and KUBERNETES_* only warn (CONTRACT §9): they are not passed."""
    docker = dataclasses.replace(settings, provider="docker")
    added = await devpod.run(devpod.provider_add_argv(docker), settings=docker, timeout=20, masker=Masker())
    assert added.ok
    result = await devpod.run(up(docker, provider_options={"RESOURCES": "requests.cpu=1"}), settings=docker,
                              timeout=20, masker=Masker())
    assert result.ok
    assert not [ln.message for ln in result.lines if ln.level == "warning"]
    assert "--provider-option" not in result.argv
    # The stand-in warns as the real one did when they are passed anyway.
    argv = devpod.up_argv(settings, "hello-world-pr2-abcdef", "git:https://github.com/Codertocat/Hello-World")
    argv[argv.index("--provider") + 1] = "docker"
    warned = await devpod.run(argv, settings=docker, timeout=20, masker=Masker())
    assert any(ln.level == "warning" and "Option LABELS was specified but is not defined" in ln.message
               for ln in warned.lines)


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
    # v0.6.15 has no SIGTERM handler: it dies at once, exit -15, and says nothing more (CONTRACT §9).
    assert result.timed_out and result.exit_code == -15 and result.signal == 15
    assert result.lines[-1].message == "hanging" and not any(ln.level == "fatal" for ln in result.lines)


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


async def test_a_secret_split_across_two_output_lines_never_reaches_a_line(settings, standin):
    secret = "s3cr3t-value-0123456789"
    standin.inject(command="up", exit=1, stderr_lines=["token: s3cr3t-valu", "e-0123456789 was rejected"])
    result = await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker([secret]))
    text = "\n".join(line.message for line in result.lines)
    assert "s3cr3t-valu" not in text and "e-0123456789" not in text
    assert "*** was rejected" in text


def git(*args: str, cwd) -> str:
    environ = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          env=environ, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("how", ["switch", "packed", "detached"])
def test_the_checked_out_commit_is_read_from_a_real_clone_without_running_git(settings, tmp_path, how):
    """What ``git switch PR<N>`` (a loose ref), ``git pack-refs`` and a detached HEAD leave in ``.git``."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git("init", "-q", "-b", "main", cwd=origin)
    git("commit", "-q", "--allow-empty", "-m", "base", cwd=origin)
    git("commit", "-q", "--allow-empty", "-m", "pr", cwd=origin)
    content = devpod.content_dir(settings, "hello-world-pr1-abcdef")
    content.parent.mkdir(parents=True)
    git("clone", "-q", str(origin), str(content), cwd=tmp_path)
    if how == "switch":
        git("switch", "-q", "-c", "PR1", "HEAD~1", cwd=content)
    elif how == "packed":
        git("pack-refs", "--all", cwd=content)
    else:
        git("checkout", "-q", "--detach", "HEAD~1", cwd=content)
    assert devpod.checked_out_commit(settings, "hello-world-pr1-abcdef") == git("rev-parse", "HEAD", cwd=content)


def test_an_unreadable_checkout_is_unknown(settings):
    assert devpod.checked_out_commit(settings, "hello-world-pr1-abcdef") is None  # no clone at all
    git_dir = devpod.content_dir(settings, "hello-world-pr1-abcdef") / ".git"
    git_dir.mkdir(parents=True)
    for head in ("ref: refs/heads/missing\n", "ref: refs/../../../etc/passwd\n", "garbage\n"):
        (git_dir / "HEAD").write_text(head)
        assert devpod.checked_out_commit(settings, "hello-world-pr1-abcdef") is None
