"""Prebuilds in parts (issue 15): the pure decisions, the repository settings, the argv, the stand-in's
``build`` and the check-run texts (golden files), and a build a restart left unfinished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import devpod
from bot.prebuilds import plan
from bot.prebuilds.builder import Prebuilds
from bot.prebuilds.checks import Job, texts
from bot.prebuilds.ledger import PrebuildLedger
from bot.repo_settings.schema import RepoPrebuildSettings, SettingsError
from bot.repo_settings.validate import parse_settings
from bot.settings.prebuilds import PrebuildSettings
from tests.devpod_rig import settings, standin  # noqa: F401  (fixtures)
from tests.eventually import eventually
from tests.standin import BINARY

GOLDEN = Path(__file__).with_name("golden")
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


# --------------------------------------------------------------------------- when to build


def commit(*modified: str, added: tuple[str, ...] = (), removed: tuple[str, ...] = ()) -> dict:
    return {"id": SHA, "added": list(added), "modified": list(modified), "removed": list(removed)}


@pytest.mark.parametrize(("commits", "path", "expected"), [
    ([commit("README.md", "src/app.py")], None, None),
    ([commit(".devcontainer/Dockerfile")], None, ".devcontainer/Dockerfile changed"),
    ([commit(added=(".devcontainer/features/x.sh",))], None, ".devcontainer/features/x.sh changed"),
    ([commit(removed=(".devcontainer.json",))], None, ".devcontainer.json changed"),
    ([commit(".github/devenv.yml")], None, ".github/devenv.yml changed"),
    ([commit("build/python/Dockerfile")], "build/python/devcontainer.json", "build/python/Dockerfile changed"),
    ([commit("build/node/Dockerfile")], "build/python/devcontainer.json", None),
    ([commit("README.md")] * 20, None, "the push lists too many commits to tell"),
    ([{"id": SHA}], None, "a commit of the push does not list its files"),
])
def test_a_push_needs_a_prebuild_only_when_the_devcontainer_changes(commits, path, expected):
    assert plan.devcontainer_change({"commits": commits}, path, has_prebuild=True) == expected


def test_a_branch_without_a_prebuild_or_a_new_or_forced_branch_is_always_built():
    quiet = {"commits": [commit("README.md")]}
    assert plan.devcontainer_change(quiet, None, has_prebuild=False) == "the branch has no prebuild yet"
    assert plan.devcontainer_change({**quiet, "forced": True}, None, has_prebuild=True)
    assert plan.devcontainer_change({**quiet, "created": True}, None, has_prebuild=True)


@pytest.mark.parametrize(("enabled", "branches", "branch", "expected"), [
    (True, None, "main", True), (True, None, "feature", False), (False, None, "main", False),
    (True, ("main", "release/*"), "release/1.2", True), (True, ("develop",), "main", False),
])
def test_which_branches_get_prebuilds(enabled, branches, branch, expected):
    assert plan.wants_branch(enabled, branches, branch, "main") is expected


def test_each_repository_has_its_own_image_repository_in_dockers_spelling():
    assert plan.image_repository("ghcr.io/acme/pre/", "Code_Rtocat", "Hello.World") == \
        "ghcr.io/acme/pre/code-rtocat/hello-world"


# --------------------------------------------------------------------------- settings and argv


def test_the_repository_settings_read_prebuild_and_clone_strategy():
    assert parse_settings("").prebuild == RepoPrebuildSettings() and parse_settings("").clone_strategy == "blobless"
    assert parse_settings("prebuild: false\n").prebuild.enabled is False
    got = parse_settings("prebuild: {branches: [main, release/*]}\nclone_strategy: full\n")
    assert got.prebuild.branches == ("main", "release/*") and got.clone_strategy == "full"
    with pytest.raises(SettingsError) as err:
        parse_settings("prebuild: {enabled: maybe, branches: [--force]}\nclone_strategy: deep\n")
    assert len(err.value.problems) == 3


def test_up_passes_the_prebuild_repository_and_the_clone_strategy(settings):  # noqa: F811
    argv = devpod.up_argv(settings, "hello-world-pr1-abcdef", "git:https://github.com/o/r@pull/1/head",
                          prebuild_repositories=("ghcr.io/acme/pre/o/r",), clone_strategy="blobless")
    assert argv[argv.index("--prebuild-repository") + 1] == "ghcr.io/acme/pre/o/r"
    assert argv[argv.index("--git-clone-strategy") + 1] == "blobless"
    with pytest.raises(ValueError):
        devpod.up_argv(settings, "hello-world-pr1-abcdef", "git:https://github.com/o/r@pull/1/head",
                       prebuild_repositories=("--debug",))


def test_the_docker_provider_is_added_once_with_the_daemon_it_uses(settings):  # noqa: F811
    argv = devpod.docker_provider_argv(settings, "tcp://127.0.0.1:2375", exists=False)
    assert argv[1:4] == ["provider", "add", "docker"] and "DOCKER_HOST=tcp://127.0.0.1:2375" in argv
    assert devpod.docker_provider_argv(settings, None, exists=True) is None
    assert devpod.docker_provider_argv(settings, "ssh://b", exists=True)[1:4] == ["provider", "set-options", "docker"]


def test_build_uses_the_docker_provider_and_refuses_a_flag_as_source(settings):  # noqa: F811
    argv = devpod.build_argv(settings, f"https://github.com/o/r@sha256:{SHA}", "ghcr.io/acme/pre/o/r",
                             clone_strategy="blobless", platform="linux/arm64")
    assert argv[1:5] == ["build", f"https://github.com/o/r@sha256:{SHA}", "--provider", "docker"]
    assert argv[argv.index("--platform") + 1] == "linux/arm64"
    with pytest.raises(ValueError):
        devpod.build_argv(settings, "--help", "ghcr.io/acme/pre/o/r")


# --------------------------------------------------------------------------- the stand-in


def run_standin(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"DEVPOD_HOME": str(home), "PATH": os.environ["PATH"]}
    return subprocess.run([sys.executable, str(BINARY), *args], capture_output=True, text=True, env=env, timeout=30)


def test_the_standin_builds_only_with_the_docker_driver_and_pushes_by_hash(tmp_path):
    (tmp_path / "standin-refs.json").write_text(json.dumps({"o/r": {"refs/heads/main": SHA}}))
    (tmp_path / "standin-tree.json").write_text(json.dumps({"o/r": {SHA: {
        ".devcontainer/devcontainer.json": '{"build": {"dockerfile": "Dockerfile"}}',
        ".devcontainer/Dockerfile": "FROM debian"}}}))
    missing = run_standin(tmp_path, "build", "https://github.com/o/r@main", "--provider", "docker",
                          "--repository", "reg.example/x")
    assert missing.returncode == 1 and "couldn't find provider with name docker" in missing.stderr
    for provider in ("kubernetes", "docker"):
        assert run_standin(tmp_path, "provider", "add", provider).returncode == 0
    refused = run_standin(tmp_path, "build", "https://github.com/o/r@main", "--provider", "kubernetes",
                          "--repository", "reg.example/x")
    assert refused.returncode == 1 and "building only supported with docker driver" in refused.stderr
    built = run_standin(tmp_path, "build", "https://github.com/o/r@main", "--provider", "docker",
                        "--repository", "reg.example/x", "--git-clone-strategy", "blobless")
    assert built.returncode == 0, built.stderr
    [line] = [ln for ln in built.stdout.splitlines() if "Successfully build and pushed image" in ln]
    ref = line.rsplit(" ", 1)[1]
    assert ref.startswith("reg.example/x:devpod-") and len(ref.split(":devpod-")[1]) == 32
    again = run_standin(tmp_path, "build", f"https://github.com/o/r@sha256:{SHA}", "--provider", "docker",
                        "--repository", "reg.example/x")
    assert ref in again.stdout  # the same inputs, the same hash
    bad = run_standin(tmp_path, "build", "https://github.com/o/r@main", "--provider", "docker",
                      "--repository", "reg.example/x", "--git-clone-strategy", "deep")
    assert bad.returncode == 1


# --------------------------------------------------------------------------- the check run's texts


def job(**changes) -> Job:
    base = Job(installation_id=1, owner="Codertocat", repo="Hello-World", branch="main", sha=SHA,
               why=".devcontainer/Dockerfile changed")
    for key, value in changes.items():
        setattr(base, key, value)
    return base


TEXT_CASES = {
    "prebuild_queued": job(behind="1" * 40),
    "prebuild_in_progress": job(status="in_progress", phase="building the image"),
    "prebuild_success": job(status="completed", conclusion="success",
                            image="ghcr.io/acme/pre/codertocat/hello-world:devpod-0123456789abcdef0123456789abcdef"),
    "prebuild_failure": job(status="completed", conclusion="failure", errors=(
        "cannot push to ghcr.io/acme/pre/codertocat/hello-world, please make sure you have push permissions",)),
    "prebuild_skipped": job(status="completed", conclusion="skipped", superseded_by="2" * 40),
}


@pytest.mark.parametrize("name", sorted(TEXT_CASES))
def test_each_prebuild_check_run_state_matches_its_golden_file(name):
    output = texts(TEXT_CASES[name], "/devenv")
    text = f"title: {output['title']}\n---\n{output['summary']}"
    path = GOLDEN / f"{name}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


# --------------------------------------------------------------------------- a restart


class Runner:
    def __init__(self, dp: devpod.DevPodSettings) -> None:
        self.dp, self.masker, self.git_access = dp, devpod.Masker(), None
        self.argvs: list[list[str]] = []

    async def run(self, argv, timeout, **kwargs):
        self.argvs.append(argv)
        return await devpod.run(argv, settings=self.dp, timeout=timeout, masker=self.masker, **kwargs)

    async def mint(self, installation_id, repo, contents):
        return None


class Checks:
    """Records what would be shown on the check run (its writing is tests/test_prebuilds_e2e.py's)."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str | None, int | None]] = []
        self.publisher = self

    def tasks(self) -> list:
        return []

    def show(self, job: Job, *, urgent: bool = False) -> None:
        self.shown.append((job.status, job.conclusion, job.check_run_id))

    async def close(self) -> None:
        pass


async def test_a_build_a_stop_interrupted_runs_again_at_the_next_start_on_the_same_check_run(tmp_path, standin,  # noqa: F811
                                                                                              settings):  # noqa: F811
    standin.inject(command="build", hang=True)
    (standin.home / "standin-refs.json").write_text(json.dumps({"Codertocat/Hello-World": {"refs/heads/main": SHA}}))
    config = PrebuildSettings(repository="registry.example/pre")
    first = Prebuilds(config, settings, runner=Runner(settings), checks=Checks(), ledger=PrebuildLedger(tmp_path),
                      github_url="https://github.com")
    first.request(job(check_run_id=77))
    await eventually(lambda: (standin.home / "standin-hanging").exists(), what="the build to hang")
    await first.drain(5)  # a SIGTERM to the bot: the build is stopped, the job kept
    checks = Checks()
    again = Prebuilds(config, settings, runner=Runner(settings), checks=checks, ledger=PrebuildLedger(tmp_path),
                      github_url="https://github.com")
    again.resume()
    await again.idle()
    assert checks.shown[-1] == ("completed", "success", 77)  # the same check run, concluded
    assert again.ledger.last("Codertocat/Hello-World", "main").sha == SHA


class FakeGitHub:
    """Answers the check-run writes as GitHub would (their shape is tests/test_prebuilds_e2e.py's)."""

    def installation(self, installation_id: int) -> FakeGitHub:
        return self

    async def post(self, url: str, data: dict) -> dict:
        return {"id": 5}

    async def patch(self, url: str, data: dict) -> None:
        return None


async def test_the_new_check_runs_id_is_kept_at_once_so_a_crash_mid_build_never_makes_a_second(
        tmp_path, standin, settings):  # noqa: F811
    from bot.prebuilds.checks import PrebuildChecks

    standin.inject(command="build", hang=True)
    queue = Prebuilds(PrebuildSettings(repository="registry.example/pre"), settings, runner=Runner(settings),
                      checks=PrebuildChecks(FakeGitHub(), prefix="/devenv", min_interval=0),
                      ledger=PrebuildLedger(tmp_path), github_url="https://github.com")
    queue.request(job())
    await eventually(lambda: (standin.home / "standin-hanging").exists(), what="the build to hang")

    def saved_ids() -> list:  # what a crash now, mid-build, would leave for the next start
        return [j["check_run_id"] for j in json.loads((tmp_path / "prebuild-jobs.json").read_text())]

    await eventually(lambda: saved_ids() == [5], timeout=5, what="the check run's id to be kept")
    await queue.drain(5)
