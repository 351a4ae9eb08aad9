#!/usr/bin/env python3
"""Slash commands: from a ``/devenv up`` comment delivery to the 👀 reaction and the ``devenv`` check run.

    .venv/bin/python bench/commands.py                   # 30 commands on distinct PRs, after a warm-up
    .venv/bin/python bench/commands.py --commands 60 --json

The bot runs in this process (``tests.botserver.BotServer``: the real app on a real socket,
deliveries signed with the real HMAC) against the GitHub emulator (same event loop) and the
stand-in ``devpod`` (a real child process per DevPod call). Settings are the test ones
(``tests.botserver.bot_environ``) except ``DEVENV_PUBLISH_INTERVAL=3``, the production default,
so that the number of writes is what production would make.

Scenario. One repository, its PRs opened by its owner (Codertocat, admin: the PRs are trusted),
all on the same base commit, which has no ``.github/devenv.yml``. A writer (octocat) comments
``/devenv up`` on PRs that have no environment yet. A warm-up command on another PR comes first,
so the installation token is minted, octocat's and Codertocat's permissions are cached and the
settings file of the base commit is known: the measured commands are *warm*. Then ``--commands``
commands, one at a time, each on its own PR, each followed by ``await srv.settle()`` (every
operation and write done) before the next, so every GitHub call can be put down to one command.
``--fresh-permission`` has a different writer comment each time, so each command looks up the
commenter's permission (the bot caches an answer 60 s; in production most commands miss it).

Per command:

* delivery -> 👀: from just before the signed POST (``time.time()`` in this process) to the
  emulator *receiving* the ``POST .../reactions`` with ``content: eyes`` (``Call.time``, the same
  clock).
* delivery -> check run: to the emulator receiving the ``POST .../check-runs`` that creates the
  ``devenv`` check run (``queued`` when every DevPod slot is busy, else directly ``in_progress``).
* calls up to the check run: every emulator call from the delivery up to and including that
  creation (the permission check counts when it is made; warm, it is cached).
* calls in total: every emulator call from the delivery to ``settle()``: also the operation's
  later updates (check-run phases and conclusion, sticky comment, 🚀).
* emulator time: the emulator validates every request and answer against GitHub's OpenAPI
  description on the bot's event loop; its serving time before the check run is shown so it can
  be discounted. Against github.com each call is a network round trip (50-300 ms) instead.

Targets: p50 under 100 ms to 👀 and to the check run; <= 6 calls per command once warm.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.environments import EmulatorTimes, _describe, machine_busy, own_cpu  # noqa: E402
from bot import devpod as devpod_module  # noqa: E402
from bot.settings import config
from tests.botserver import BotServer, bot_environ  # noqa: E402
from tests.standin import DevPodStandIn  # noqa: E402

OWNER, REPO = "Codertocat", "Hello-World"
INSTALLATION = 1  # tests.payloads.INSTALLATION_ID
WRITER = "octocat"
LATENCY_TARGET_MS = 100.0
CALLS_TARGET = 6
TIMEOUT = 30.0  # seconds per command; longer is reported as failed


def pct(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of ``values``, in ms."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    rank = max(0, min(len(values) - 1, int(round(q / 100 * len(values) + 0.5)) - 1))
    return round(values[rank] * 1000, 1)


class Rig:
    def __init__(self, tmp: Path, publish_interval: str) -> None:
        self.tmp = tmp
        self.publish_interval = publish_interval
        self.emu = None
        self.srv: BotServer | None = None
        self.devpod: DevPodStandIn | None = None
        self.emu_times: EmulatorTimes | None = None
        self.base_sha = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"

    async def start(self, numbers: list[int]) -> None:
        from tests.github_emulator.server import GitHubEmulator

        self.emu = GitHubEmulator()
        await self.emu.start()
        self.emu_times = EmulatorTimes(self.emu)
        self.emu.add_installation(INSTALLATION, account=OWNER)
        self.emu.add_repo(OWNER, REPO, installation_id=INSTALLATION)
        self.emu.set_permission(OWNER, REPO, OWNER, "admin")
        self.emu.set_permission(OWNER, REPO, WRITER, "write")
        for n in numbers:
            self.emu.add_pull(OWNER, REPO, n, head_sha=f"{n:040x}", head_ref=f"bench-{n}", title=f"Bench PR {n}",
                              base_sha=self.base_sha)
        self.devpod = DevPodStandIn(self.tmp / "devpod-home")
        environ = bot_environ(self.emu, self.tmp / "state", **self.devpod.env(),
                              DEVENV_PUBLISH_INTERVAL=self.publish_interval, LOG_LEVEL="warning")
        self.srv = await BotServer(config.load(environ)).start()

    async def stop(self) -> None:
        if self.srv is not None:
            await self.srv.stop()
        if self.emu is not None:
            await self.emu.close()

    async def command(self, number: int, body: str = "/devenv up", user: str = WRITER) -> dict:
        """Comment ``body`` on PR ``number`` as ``user``, deliver it, settle, measure."""
        from tests import payloads

        assert self.srv is not None and self.emu is not None and self.emu_times is not None
        ws_id = devpod_module.workspace_id(OWNER, REPO, number)
        if user != WRITER:
            self.emu.set_permission(OWNER, REPO, user, "write")
        comment = self.emu.add_comment(OWNER, REPO, number, body, user=user)
        payload = payloads.pr_comment(body, user=user, number=number, comment_id=comment["id"])
        calls_before = len(self.emu.calls)
        t_send = time.time()
        status, _ = await self.srv.deliver("issue_comment", payload)
        t_answer = time.time()
        await asyncio.wait_for(self.srv.settle(), TIMEOUT)
        t_settled = time.time()

        calls = self.emu.calls[calls_before:]
        eyes = next((c for c in calls if c.method == "POST" and c.path.endswith(f"/comments/{comment['id']}/reactions")
                     and isinstance(c.json, dict) and c.json.get("content") == "eyes"), None)
        created = next((i for i, c in enumerate(calls) if c.method == "POST" and c.path.endswith("/check-runs")
                        and isinstance(c.json, dict) and c.json.get("external_id") == ws_id), None)
        check = calls[created] if created is not None else None
        before = calls[: created + 1] if created is not None else calls
        concluded = [c for c in calls if c.method == "PATCH" and "/check-runs/" in c.path
                     and isinstance(c.json, dict) and c.json.get("status") == "completed"]
        reactions = [c.json.get("content") for c in calls if c.method == "POST" and c.path.endswith("/reactions")
                     and isinstance(c.json, dict)]
        return {
            "number": number, "status": status,
            "answer": t_answer - t_send,
            "to_eyes": (eyes.time - t_send) if eyes else None,
            "to_check_run": (check.time - t_send) if check else None,
            "check_run_status": check.json.get("status") if check else None,
            "conclusion": concluded[-1].json.get("conclusion") if concluded else None,
            "reactions": reactions,
            "calls_to_check_run": len(before) if check else None,
            "calls_total": len(calls),
            "token_mints": sum(1 for c in calls if c.path.endswith("/access_tokens")),
            "permission_lookups": sum(1 for c in calls if c.path.endswith("/permission")),
            "settings_reads": sum(1 for c in calls if "/contents/" in c.path),
            "emulator_time_to_check_run": self.emu_times.between(t_send, check.time) if check else None,
            "total": t_settled - t_send,
            "before_check_run": [_describe(c) for c in before],
            "sequence": [_describe(c) for c in calls],
            "calls_by_op": dict(collections.Counter(f"{c.method} {c.operation_id or c.path}" for c in calls)),
        }


async def run(args: argparse.Namespace) -> dict:
    warm = 1000
    numbers = list(range(100, 100 + args.commands))
    out: dict = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "commands": args.commands,
                 "loadavg_before": os.getloadavg()[0],
                 "settings": {"DEVENV_PUBLISH_INTERVAL": args.publish_interval},
                 "fresh_permission": args.fresh_permission}
    with tempfile.TemporaryDirectory(prefix="devenv-bench-cmd-") as tmp:
        rig = Rig(Path(tmp), args.publish_interval)
        busy0, own0, wall0 = machine_busy(), own_cpu(), time.monotonic()
        try:
            await rig.start([warm, *numbers])
            cold = await rig.command(warm)
            # --fresh-permission: a different writer each time, so each command looks its permission up
            # (the cache keeps an answer 60 s; in production most commands find it expired).
            results = [await rig.command(n, user=f"writer-{n}" if args.fresh_permission else WRITER)
                       for n in numbers]
            validation_errors = list(rig.emu.validation_errors)
            spans = sorted(b - a for a, b in rig.emu_times.spans)
        finally:
            await rig.stop()
        wall = time.monotonic() - wall0
        own = own_cpu() - own0
        out["wall_s"] = round(wall, 2)
        out["own_cpu_s"] = round(own, 2)
        out["others_cpu_s"] = round(max(0.0, machine_busy() - busy0 - own), 2)
    out["loadavg_after"] = os.getloadavg()[0]
    out["warm_up"] = cold
    out["validation_errors"] = validation_errors[:5]
    out["emulator_ms_per_call_median"] = round(statistics.median(spans) * 1000, 2) if spans else None
    ok = [r for r in results if r["to_eyes"] is not None and r["to_check_run"] is not None]
    summary = {
        "measured": len(results), "complete": len(ok),
        "conclusions": dict(collections.Counter(str(r["conclusion"]) for r in results)),
        "check_run_created_as": dict(collections.Counter(str(r["check_run_status"]) for r in results)),
        "reactions": dict(collections.Counter(" ".join(r["reactions"]) for r in results)),
        "token_mints": sum(r["token_mints"] for r in results),
        "permission_lookups": sum(r["permission_lookups"] for r in results),
        "settings_reads": sum(r["settings_reads"] for r in results),
    }
    for key in ("answer", "to_eyes", "to_check_run", "emulator_time_to_check_run", "total"):
        values = [r[key] for r in results]
        summary[key] = {"p50_ms": pct(values, 50), "p95_ms": pct(values, 95), "max_ms": pct(values, 100),
                        "min_ms": pct(values, 0)}
    for key in ("calls_to_check_run", "calls_total"):
        values = [r[key] for r in results if r[key] is not None]
        summary[key] = {"median": statistics.median(values) if values else None,
                        "min": min(values, default=None), "max": max(values, default=None)}
    summary["ratio_eyes_p50_to_target"] = (round(summary["to_eyes"]["p50_ms"] / LATENCY_TARGET_MS, 2)
                                           if summary["to_eyes"]["p50_ms"] is not None else None)
    summary["ratio_check_run_p50_to_target"] = (round(summary["to_check_run"]["p50_ms"] / LATENCY_TARGET_MS, 2)
                                                if summary["to_check_run"]["p50_ms"] is not None else None)
    summary["ratio_calls_to_check_run_to_target"] = (round(summary["calls_to_check_run"]["max"] / CALLS_TARGET, 2)
                                                     if summary["calls_to_check_run"]["max"] is not None else None)
    summary["ratio_calls_total_to_target"] = (round(summary["calls_total"]["median"] / CALLS_TARGET, 2)
                                              if summary["calls_total"]["median"] is not None else None)
    out["summary"] = summary
    out["example_before_check_run"] = results[-1]["before_check_run"] if results else None
    out["example_sequence"] = results[-1]["sequence"] if results else None
    out["example_calls_by_op"] = results[-1]["calls_by_op"] if results else None
    if args.raw:
        out["raw"] = results
    return out


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return f"x{value / target:.2f} {'meets' if value <= target else 'MISSES'}"


def print_report(r: dict) -> None:
    s = r["summary"]
    print(f"devenv-bot slash commands, {r['date']}, {r['cores']} cores, load average "
          f"{r['loadavg_before']:.2f} before, {r['loadavg_after']:.2f} after")
    print(f"  bot in-process + GitHub emulator + stand-in devpod; DEVENV_PUBLISH_INTERVAL="
          f"{r['settings']['DEVENV_PUBLISH_INTERVAL']}; `/devenv up` by a writer on {s['measured']} distinct PRs, "
          "one at a time, after a warm-up command"
          + ("; a different writer each time (permission looked up)" if r["fresh_permission"] else
             "; one writer (permission cached)"))
    busy = r["others_cpu_s"] > 0.1 * r["wall_s"]
    print(f"  {r['wall_s']} s wall, {r['own_cpu_s']} CPU s by this bench and its devpod children, "
          f"{r['others_cpu_s']} CPU s by other processes" + ("  <- the machine was busy: times are inflated"
                                                            if busy else ""))
    print()
    header = f"  {'from the delivery to':<44} {'p50':>8} {'p95':>8} {'max':>8}   p50 vs target"
    print(header)
    rows = [("HTTP answer", "answer", None),
            ("👀 reaction received by GitHub", "to_eyes", LATENCY_TARGET_MS),
            ("`devenv` check run created", "to_check_run", LATENCY_TARGET_MS),
            ("  of which the emulator serving calls", "emulator_time_to_check_run", None),
            ("settled (op done, every write made)", "total", None)]
    for label, key, target in rows:
        v = s[key]
        note = verdict(v["p50_ms"], target) + f" (target {target:.0f} ms)" if target else ""
        print(f"  {label:<44} {v['p50_ms']!s:>8} {v['p95_ms']!s:>8} {v['max_ms']!s:>8}   {note}")
    print()
    c, t = s["calls_to_check_run"], s["calls_total"]
    print(f"  GitHub calls per command      median  min  max   vs target (<= {CALLS_TARGET})")
    print(f"  {'up to the check run creation':<30} {c['median']!s:>6} {c['min']!s:>4} {c['max']!s:>4}   "
          f"{verdict(c['max'], CALLS_TARGET)} (max)")
    print(f"  {'in total (incl. later updates)':<30} {t['median']!s:>6} {t['min']!s:>4} {t['max']!s:>4}   "
          f"{verdict(t['median'], CALLS_TARGET)} (median)")
    print(f"  warm: {s['token_mints']} token mints, {s['permission_lookups']} permission lookups, "
          f"{s['settings_reads']} settings reads over {s['measured']} commands")
    print(f"  check runs created as {s['check_run_created_as']}; conclusions {s['conclusions']}; "
          f"reactions {s['reactions']}")
    w = r["warm_up"]
    print(f"  warm-up command (cold): 👀 after {w['to_eyes'] * 1000:.1f} ms, check run after "
          f"{w['to_check_run'] * 1000:.1f} ms, {w['calls_to_check_run']} calls up to it, {w['calls_total']} in total "
          f"({w['token_mints']} mint, {w['permission_lookups']} permission lookups, {w['settings_reads']} settings read)")
    print(f"  emulator: {r['emulator_ms_per_call_median']} ms per API call (median), on the bot's event loop")
    print("\n  the last command, call by call (| marks the check run creation):")
    before = len(r["example_before_check_run"] or [])
    for i, line in enumerate(r["example_sequence"] or []):
        print(f"    {i + 1:>2}. {line}" + ("   |" if i + 1 == before else ""))
    if r["validation_errors"]:
        print(f"\n  emulator validation errors: {r['validation_errors']}")
    if s["complete"] != s["measured"]:
        print(f"\n  WARNING: {s['measured'] - s['complete']} command(s) got no 👀 or no check run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=30, help="measured commands, each on its own PR (default 30)")
    parser.add_argument("--publish-interval", default="3",
                        help="DEVENV_PUBLISH_INTERVAL in seconds (default 3, as in production)")
    parser.add_argument("--fresh-permission", action="store_true",
                        help="a different writer per command, so each one looks up its permission (not cached)")
    parser.add_argument("--raw", action="store_true", help="include every command's figures in --json output")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    args = parser.parse_args(argv)
    if args.commands < 1:
        parser.error("--commands must be at least 1")
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results, indent=1, default=str))
    else:
        print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
