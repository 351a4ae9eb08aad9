#!/usr/bin/env python3
"""Prebuilds (issue 15): PR opened → environment ready with and without a prebuild, and builds per burst.

    .venv/bin/python bench/prebuilds.py                  # the default timing model
    .venv/bin/python bench/prebuilds.py --image-build 12 --pull 2 --json

The bot runs in this process (``tests.botserver.BotServer``: the real app on a real socket, signed
deliveries) against the GitHub emulator and the stand-in ``devpod``. The stand-in's timing model
(``standin-timing.json``): building the devcontainer's image takes ``--image-build`` seconds (in the
workspace when ``up`` finds no prebuild, on the builder for ``devpod build``), pulling a prebuilt image
``--pull`` seconds; everything else is the stand-in's own speed. Scale: the defaults (6 s and 1 s) stand
for a 6-minute Dockerfile build and a 1-minute pull.

(a) PR opened → ready: from the signed ``pull_request.opened`` delivery to the ``devenv`` check run's
success, once with no prebuild (the base branch never built) and once after a push to the base branch
built one (the build's own time is not counted: it happened before the PR).
(b) A burst of ``--burst`` pushes to the base branch, each changing the Dockerfile, ``--gap`` seconds
apart, while a build takes ``--image-build`` seconds: how many ``devpod build`` runs (target ≤ 2), and
that the newest commit is the one built last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.settings import config  # noqa: E402
from tests.botserver import BotServer, bot_environ  # noqa: E402
from tests.standin import DevPodStandIn  # noqa: E402

OWNER, REPO, INSTALLATION = "Codertocat", "Hello-World", 1
CONFIG = json.dumps({"name": "app", "build": {"dockerfile": "Dockerfile"}})


def tree(dockerfile: str) -> dict[str, str]:
    return {".devcontainer/devcontainer.json": CONFIG, ".devcontainer/Dockerfile": dockerfile}


class Rig:
    """One bot, emulator and stand-in in a temporary directory."""

    def __init__(self, tmp: Path, image_build: float, pull: float) -> None:
        self.tmp, self.image_build, self.pull = tmp, image_build, pull

    async def __aenter__(self) -> Rig:
        from tests import payloads
        from tests.github_emulator.server import GitHubEmulator

        self.payloads = payloads
        self.emu = GitHubEmulator()
        await self.emu.start()
        self.emu.add_installation(INSTALLATION, account=OWNER)
        self.emu.add_repo(OWNER, REPO, installation_id=INSTALLATION)
        self.emu.set_permission(OWNER, REPO, OWNER, "admin")
        self.opened = payloads.pull_request("opened")
        pr = self.opened["pull_request"]
        self.base, self.head = pr["base"]["sha"], pr["head"]["sha"]
        self.emu.add_pull(OWNER, REPO, pr["number"], head_sha=self.head, head_ref=pr["head"]["ref"], title=pr["title"])
        self.devpod = DevPodStandIn(self.tmp / "devpod-home")
        home = self.devpod.home
        (home / "standin-timing.json").write_text(json.dumps({"image_build": self.image_build, "pull": self.pull}))
        self.trees = {self.base: tree("FROM debian:12\n"), self.head: tree("FROM debian:12\n")}
        self.write_tree()
        (home / "standin-refs.json").write_text(json.dumps({f"{OWNER}/{REPO}": {
            f"refs/pull/{pr['number']}/head": self.head, "refs/heads/master": self.base}}))
        environ = bot_environ(self.emu, self.tmp / "state", **self.devpod.env(), LOG_LEVEL="warning",
                              DEVENV_PREBUILD_REPOSITORY="registry.example/devenv")
        self.srv = await BotServer(config.load(environ)).start()
        return self

    def write_tree(self) -> None:
        (self.devpod.home / "standin-tree.json").write_text(json.dumps({f"{OWNER}/{REPO}": self.trees}))

    async def __aexit__(self, *exc: object) -> None:
        await self.srv.stop()
        await self.emu.close()

    def push(self, sha: str) -> dict:
        from tests.test_prebuilds_e2e import push

        return push(sha)

    async def settle(self) -> None:
        await self.srv.settle()
        assert self.srv.bot.prebuilds is not None
        await self.srv.bot.prebuilds.idle()

    async def opened_to_ready(self) -> float:
        started = time.monotonic()
        await self.srv.deliver("pull_request", self.opened)
        while not any(r["name"] == "devenv" and r["conclusion"] == "success"
                      for r in self.emu.check_runs(OWNER, REPO)):
            await asyncio.sleep(0.01)
        return time.monotonic() - started


async def opened(tmp: Path, args: argparse.Namespace, *, prebuilt: bool) -> dict:
    async with Rig(tmp, args.image_build, args.pull) as rig:
        if prebuilt:
            await rig.srv.deliver("push", rig.push(rig.base))
            await rig.settle()
        seconds = await rig.opened_to_ready()
        await rig.settle()
        from bot.devpod import workspace_id

        number = rig.opened["pull_request"]["number"]
        log = rig.srv.bot.environments.operations.logs.last(workspace_id(OWNER, REPO, number))
        found = log is not None and any("Found existing prebuilt image" in line for line in log.lines)
        return {"seconds": round(seconds, 2), "prebuilt_image_used": found}


async def burst(tmp: Path, args: argparse.Namespace) -> dict:
    async with Rig(tmp, args.image_build, args.pull) as rig:
        shas = [f"{i:02x}" * 20 for i in range(1, args.burst + 1)]
        rig.trees.update({sha: tree(f"FROM debian:12\n# {sha}\n") for sha in shas})
        rig.write_tree()
        started = time.monotonic()
        for sha in shas:
            await rig.srv.deliver("push", rig.push(sha))
            await asyncio.sleep(args.gap)
        await rig.settle()
        built = [c["argv"][c["argv"].index("build") + 1].rsplit(":", 1)[1] for c in rig.devpod.calls("build")]
        runs = [r for r in rig.emu.check_runs(OWNER, REPO) if r["name"] == "devenv prebuild"]
        return {"pushes": len(shas), "builds": len(built), "newest_built_last": built[-1] == shas[-1],
                "check_runs": len(runs), "conclusions": sorted(r["conclusion"] for r in runs),
                "seconds": round(time.monotonic() - started, 2)}


async def main_async(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="devenv-bench-") as tmp:
        base = Path(tmp)
        scratch = await opened(base / "a", args, prebuilt=False)
        fast = await opened(base / "b", args, prebuilt=True)
        coalesced = await burst(base / "c", args)
    return {"model": {"image_build": args.image_build, "pull": args.pull},
            "opened_to_ready_scratch": scratch, "opened_to_ready_prebuilt": fast, "burst": coalesced}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-build", type=float, default=6.0, help="seconds to build the image (default 6)")
    parser.add_argument("--pull", type=float, default=1.0, help="seconds to pull a prebuilt image (default 1)")
    parser.add_argument("--burst", type=int, default=10, help="pushes in the burst (default 10)")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between the burst's pushes (default 0.2)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    m, s, f, b = results["model"], results["opened_to_ready_scratch"], results["opened_to_ready_prebuilt"], \
        results["burst"]
    print(f"timing model: image build {m['image_build']} s, pull of a prebuilt image {m['pull']} s")
    print(f"PR opened -> ready, no prebuild:   {s['seconds']:6.2f} s (prebuilt image used: {s['prebuilt_image_used']})")
    print(f"PR opened -> ready, with prebuild: {f['seconds']:6.2f} s (prebuilt image used: {f['prebuilt_image_used']})")
    print(f"burst of {b['pushes']} pushes: {b['builds']} builds (target <= 2), newest built last: "
          f"{b['newest_built_last']}, {b['check_runs']} check runs {b['conclusions']}, {b['seconds']} s")


if __name__ == "__main__":
    main()
