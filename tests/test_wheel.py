"""The package an operator installs works: a wheel in a fresh virtualenv, run from outside the checkout.

Editable installs read templates and ``app.yml`` straight from the checkout, so they cannot tell
whether those files ship in the wheel. These tests build the wheel, install it (with its runtime
dependencies only) into a new virtualenv in a temporary folder, and run the real flows with that
virtualenv's ``devenv-bot`` and nothing of the checkout on the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import aiohttp
import pytest

from tests import payloads
from tests.botserver import bot_environ
from tests.eventually import eventually
from tests.observe import OWNER, REPO, devenv_runs, sticky
from tests.payloads import PR_NUMBER
from tests.test_process import post
from tests.test_setup import Output, form_of, free_port, setup_environ, wait_ready

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtualenv outside the checkout with the project's wheel installed; returns its bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(work / "dist"),
                    str(REPO_ROOT)], check=True, cwd=work)
    [wheel] = (work / "dist").glob("devenv_bot-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    subprocess.run([str(work / "venv" / "bin" / "pip"), "install", "--quiet", str(wheel)], check=True, cwd=work)
    return work / "venv" / "bin"


def spawn(bin_dir: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    # No PYTHONPATH and a working directory outside the checkout: only the installed package can answer.
    full = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(cwd), **env}
    full.pop("PYTHONPATH", None)
    return subprocess.Popen([str(bin_dir / "devenv-bot"), "serve"], cwd=cwd, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_the_wheel_carries_the_templates_and_the_app_manifest(installed):
    [wheel] = (installed.parent.parent / "dist").glob("devenv_bot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bot/resources/app.yml" in names
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("bot/resources/templates/")}
    assert shipped == {p.name for p in (REPO_ROOT / "templates").iterdir()}


def test_the_installed_package_is_not_the_checkout(installed):
    where = subprocess.run([str(installed / "python"), "-c", "import bot; print(bot.__file__)"], check=True,
                           capture_output=True, text=True, cwd=installed.parent.parent).stdout.strip()
    assert str(REPO_ROOT) not in where and "site-packages" in where


async def test_the_installed_bot_serves_the_setup_page(installed, github, tmp_path):
    port = free_port()
    proc = spawn(installed, {**setup_environ(github, tmp_path), "PORT": str(port)}, tmp_path)
    output = Output(proc)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url, 503)
            async with session.get(output.setup_url()) as resp:
                status, page = resp.status, await resp.text()
    finally:
        proc.terminate()
        out = output.finish()
    assert status == 200, out
    _, manifest = form_of(page)
    assert manifest["hook_attributes"]["url"] == url + "/api/github/webhooks"
    assert "pull_request" in manifest["default_events"]


async def test_a_pr_opened_gets_its_check_run_and_sticky_comment_from_the_installed_bot(
        installed, repo, github, devpod, tmp_path):
    port = free_port()
    env = {**bot_environ(github, tmp_path / "state", **devpod.env()), "PORT": str(port)}
    proc = spawn(installed, env, tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url, 200)
            assert await post(session, url, github.webhook_secret, "pull_request",
                              payloads.pull_request("opened")) == 202
            await eventually(lambda: devenv_runs(github) and devenv_runs(github)[0]["status"] == "completed",
                             timeout=30, what="the devenv check run to conclude")
            # The sticky comment is written by its own publisher, possibly just after the check run.
            await eventually(lambda: any("🟢 Running" in c["body"] for c in github.comments(OWNER, REPO, PR_NUMBER)),
                             timeout=30, what="the sticky comment to say Running")
    finally:
        out = stop(proc)
    [run] = devenv_runs(github)
    assert run["conclusion"] == "success", out
    assert "🟢 Running" in sticky(github)
    assert devpod.calls("up")
    assert "TemplateNotFound" not in out and "Traceback" not in out


_ASKPASS_CHECK = """
import asyncio, pathlib, subprocess, sys
from bot.devpod import GitAccess

async def main():
    work = pathlib.Path(sys.argv[1])
    git = GitAccess(work / "askpass", work / "home", ttl=60)
    env = await git.grant("ghs_" + "t0ken" * 8, uses=1)
    got = await asyncio.to_thread(subprocess.run, [env["GIT_ASKPASS"], "Password: "], env=env,
                                  capture_output=True, text=True)
    print(got.stdout.strip())
    print(pathlib.Path(env["GIT_ASKPASS"]).read_text())
    await git.close()

asyncio.run(main())
"""


def test_the_git_askpass_helper_runs_from_the_installed_package(installed, tmp_path):
    out = subprocess.run([str(installed / "python"), "-c", _ASKPASS_CHECK, str(tmp_path)], check=True,
                         capture_output=True, text=True, cwd=tmp_path, timeout=60).stdout
    answer, script = out.split("\n", 1)
    assert answer == "ghs_" + "t0ken" * 8
    assert "site-packages" in script and str(REPO_ROOT) not in script
