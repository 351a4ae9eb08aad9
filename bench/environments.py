#!/usr/bin/env python3
"""Environment operations: the bot's own overhead around DevPod, GitHub calls per flow, memory per environment.

    .venv/bin/python bench/environments.py              # 20 PR-opened flows, 20 pushes, 1,000 records
    .venv/bin/python bench/environments.py --flows 40 --records 5000 --json

The bot runs in this process (``tests.botserver.BotServer``: the real app on a real socket,
deliveries signed with the real HMAC), against the GitHub emulator (same event loop) and the
stand-in ``devpod`` (a real child process per DevPod call). Settings are the test ones
(``tests.botserver.bot_environ``) with ``DEVENV_PUBLISH_INTERVAL=0`` (every change is written as
soon as the previous write of that target is done: nothing is held back to save API calls) and
``DEVENV_SYNC_DEBOUNCE=0.05`` (a push is followed after 50 ms instead of 5 s), so the times are
overhead, not deliberate waiting. A second, shorter pass repeats the call counts with the
production ``DEVENV_PUBLISH_INTERVAL=3``.

(a) Overhead per operation, for each flow (one delivery, then ``await srv.settle()``):

* delivery -> ``up`` spawned: from just before the signed POST to the moment the bot calls
  ``bot.devpod.run`` for ``up`` (the bench wraps that function; it records wall clock times and
  calls the real one). It includes the HTTP answer, the handler, the journal writes and the
  check-run creation, which the bot awaits before starting DevPod.
* delivery -> stand-in running: to the ``time`` the stand-in wrote in ``standin-calls.jsonl``,
  i.e. also the fork/exec and the stand-in's Python start-up (a real, Go, ``devpod`` starts faster).
* DevPod run: as the bot saw it (``RunResult.duration``: spawn to exit and pipes drained). The
  stand-in does no real work; this is not bot overhead and is reported only for scale.
* DevPod exit -> check run concluded: from ``bot.devpod.run`` returning to the emulator receiving
  the ``PATCH .../check-runs/{id}`` with ``status: completed`` (``Call.time``).
* DevPod exit -> settled: to ``srv.settle()`` returning (every write done, incl. the sticky comment).
* of which GitHub (emulator) time: the emulator serves requests on the same event loop and
  validates each against GitHub's OpenAPI description; its time per request is measured by
  wrapping its request handler, and the per-flow total is reported so it can be subtracted.
  Against github.com each of those requests is a network round trip (typically 50-300 ms) instead.

(b) GitHub API calls per flow: emulator calls between the delivery and ``settle()``, by operation,
for the first PR opened (cold: the installation token is minted), the other PRs opened (token
cached) and pushes (``synchronize``) to PRs whose environment is running (warm). Target for a push:
<= 6 calls and no token mint.

(c) Memory with many tracked environments: in a fresh bot, ``--records`` EnvRecords made through
``manager.record_for(PullInfo(...))``, filled in as a running environment would be (state, env_sha,
check run and comment ids, last action) and saved to the journal (``manager.store.save``). Reported: RSS
growth of this process (VmRSS, after ``gc.collect()``), Python allocations (tracemalloc), the
journal's size on disk, and how long saving and re-loading (``journal.load_all()``, what start-up
does) take.

(d) Parallel workspaces: two PRs opened at the same moment, the stand-in's ``up`` taking 800 ms each:
how far apart the two ``up`` processes started (well under 800 ms: neither waited for the other).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot import devpod as devpod_module  # noqa: E402
from bot.environments.journal import Action  # noqa: E402
from bot.environments.manager import PullInfo  # noqa: E402
from bot.environments.states import State  # noqa: E402
from bot.github.pulls import PullRef  # noqa: E402
from bot.settings import config
from tests.botserver import BotServer, bot_environ  # noqa: E402
from tests.standin import DevPodStandIn  # noqa: E402

# tests.payloads (jsonschema) and the emulator (openapi) are imported where used, so that the
# lean child process of (c) does not carry them in its RSS.

OWNER, REPO = "Codertocat", "Hello-World"
INSTALLATION = 1  # tests.payloads.INSTALLATION_ID
PUSH_TARGET_CALLS = 6
FLOW_TIMEOUT = 30.0  # seconds; a flow that takes longer is reported as failed


def rss_bytes(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds used by all processes (user, nice, system, irq, softirq, steal), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu() -> float:
    """CPU seconds of this process and of its children that ended (the stand-in devpod runs)."""
    import resource

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def med(values: list[float], scale: float = 1000.0, digits: int = 1) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values) * scale, digits) if values else None


def spread(values: list[float], scale: float = 1000.0) -> str:
    values = sorted(v for v in values if v is not None)
    if not values:
        return "-"
    return f"{values[0] * scale:.1f}..{values[-1] * scale:.1f}"


# ----------------------------------------------------------------------------- instrumentation

class DevPodRuns:
    """Wraps ``bot.devpod.run``: wall-clock start and end of every DevPod process the bot runs."""

    def __init__(self) -> None:
        self.runs: list[dict] = []
        self._real = devpod_module.run

    def install(self) -> None:
        real = self._real

        async def timed_run(argv, **kwargs):
            entry = {"command": argv[1] if len(argv) > 1 else "", "argv": list(argv), "start": time.time()}
            self.runs.append(entry)
            try:
                result = await real(argv, **kwargs)
            finally:
                entry["end"] = time.time()
            entry["duration"] = result.duration
            entry["exit_code"] = result.exit_code
            return result

        devpod_module.run = timed_run

    def uninstall(self) -> None:
        devpod_module.run = self._real


class EmulatorTimes:
    """Wraps the emulator's request pipeline: how long it took to serve each API call."""

    def __init__(self, emu) -> None:
        self.spans: list[tuple[float, float]] = []
        real = emu._serve_api

        async def timed(request, route):
            t0 = time.time()
            try:
                return await real(request, route)
            finally:
                self.spans.append((t0, time.time()))

        emu._serve_api = timed  # the routes call self._serve_api at request time

    def between(self, start: float, end: float) -> float:
        return sum(min(b, end) - max(a, start) for a, b in self.spans if b > start and a < end)


# ----------------------------------------------------------------------------- the flows

class Rig:
    def __init__(self, tmp: Path, publish_interval: str, sync_debounce: str) -> None:
        self.tmp = tmp
        self.publish_interval = publish_interval
        self.sync_debounce = sync_debounce
        self.emu = None
        self.srv: BotServer | None = None
        self.devpod: DevPodStandIn | None = None
        self.emu_times: EmulatorTimes | None = None

    async def start(self, numbers: list[int]) -> None:
        from tests.github_emulator.server import GitHubEmulator

        self.emu = GitHubEmulator()
        await self.emu.start()
        self.emu_times = EmulatorTimes(self.emu)
        self.emu.add_installation(INSTALLATION, account=OWNER)
        self.emu.add_repo(OWNER, REPO, installation_id=INSTALLATION)
        # The PR author (Codertocat, as in GitHub's examples) owns the repo: its PRs are trusted.
        self.emu.set_permission(OWNER, REPO, OWNER, "admin")
        for n in numbers:
            self.emu.add_pull(OWNER, REPO, n, head_sha=f"{n:040x}", head_ref=f"bench-{n}", title=f"Bench PR {n}")
        self.devpod = DevPodStandIn(self.tmp / "devpod-home")
        environ = bot_environ(self.emu, self.tmp / "state", **self.devpod.env(),
                              DEVENV_PUBLISH_INTERVAL=self.publish_interval,
                              DEVENV_SYNC_DEBOUNCE=self.sync_debounce, LOG_LEVEL="info")
        self.srv = await BotServer(config.load(environ)).start()

    async def stop(self) -> None:
        if self.srv is not None:
            await self.srv.stop()
        if self.emu is not None:
            await self.emu.close()

    async def flow(self, runs: DevPodRuns, event_payload: dict, number: int) -> dict:
        """Deliver one pull_request event, wait until settled, and take its measurements."""
        assert self.srv is not None and self.emu is not None and self.devpod is not None
        ws_id = devpod_module.workspace_id(OWNER, REPO, number)
        calls_before = len(self.emu.calls)
        runs_before = len(runs.runs)
        standin_before = len(self.devpod.calls())
        t_send = time.time()
        status, _ = await self.srv.deliver("pull_request", event_payload)
        t_answer = time.time()
        await asyncio.wait_for(self.srv.settle(), FLOW_TIMEOUT)
        t_settled = time.time()

        calls = self.emu.calls[calls_before:]
        mine = runs.runs[runs_before:]
        up = next((r for r in mine if r["command"] == "up" and ws_id in r["argv"]), None)
        standin_up = next((c for c in self.devpod.calls()[standin_before:]
                           if c["command"] == "up" and ws_id in c["argv"]), None)
        completed = [c for c in calls if c.method == "PATCH" and "/check-runs/" in c.path
                     and isinstance(c.json, dict) and c.json.get("status") == "completed"]
        conclusion = completed[-1].json.get("conclusion") if completed else None
        first_run = mine[0] if mine else None
        out = {
            "number": number, "status": status, "conclusion": conclusion,
            "answer": t_answer - t_send,
            "to_first_devpod": (first_run["start"] - t_send) if first_run else None,
            "first_devpod": first_run["command"] if first_run else None,
            "to_up_spawn": (up["start"] - t_send) if up else None,
            "to_standin_up": (standin_up["time"] - t_send) if standin_up else None,
            "devpod_runs": [r["command"] for r in mine],
            "up_duration": up["duration"] if up else None,
            "devpod_total": sum(r["duration"] for r in mine if "duration" in r),
            "exit_to_check_completed": (completed[-1].time - up["end"]) if (up and completed) else None,
            "exit_to_settled": (t_settled - up["end"]) if up else None,
            "total": t_settled - t_send,
            "calls": len(calls),
            "calls_by_op": dict(collections.Counter(f"{c.method} {c.operation_id or c.path}" for c in calls)),
            "token_mints": sum(1 for c in calls if c.path.endswith("/access_tokens")),
            "github_time": self.emu_times.between(t_send, t_settled) if self.emu_times else None,
            "github_time_before_up": self.emu_times.between(t_send, up["start"]) if (self.emu_times and up) else None,
            "github_time_after_exit": self.emu_times.between(up["end"], t_settled) if (self.emu_times and up) else None,
        }
        out["bot_overhead"] = (out["total"] - out["devpod_total"])
        before_up = [r for r in mine if up is not None and r is not up and r.get("end", 0) <= up["start"]]
        out["between_runs"] = (up["start"] - before_up[-1]["end"]) if before_up else None
        out["sequence"] = [_describe(c) for c in calls]
        return out


def _describe(call) -> str:
    """One API call as "METHOD operation: what it wrote" (check status/title, comment state line)."""
    text = f"{call.method} {call.operation_id or call.path}"
    body = call.json if isinstance(call.json, dict) else {}
    if "status" in body or "output" in body:
        text += f" [{body.get('status', '')}{'/' + body['conclusion'] if body.get('conclusion') else ''}] " \
                f"{(body.get('output') or {}).get('title', '')}"
    elif "body" in body:
        lines = [ln for ln in body["body"].splitlines() if ln.strip() and not ln.startswith("<!--")]
        text += f" {lines[0][:60] if lines else ''}"
    return text


async def run_flows(tmp: Path, flows: int, publish_interval: str, sync_debounce: str, deadline: float) -> dict:
    from tests import payloads

    numbers = list(range(100, 100 + flows))
    rig = Rig(tmp, publish_interval, sync_debounce)
    runs = DevPodRuns()
    opened: list[dict] = []
    pushes: list[dict] = []
    runs.install()
    try:
        await rig.start(numbers)
        for n in numbers:
            if time.monotonic() > deadline:
                break
            opened.append(await rig.flow(runs, payloads.pull_request("opened", number=n, head_sha=f"{n:040x}"), n))
        for n in numbers[:len(opened)]:
            if time.monotonic() > deadline:
                break
            head = f"{n + 0xabc000:040x}"
            pushes.append(await rig.flow(runs, payloads.pull_request("synchronize", number=n, head_sha=head), n))
        validation_errors = list(rig.emu.validation_errors)
        spans = sorted(b - a for a, b in rig.emu_times.spans)
        emulator_ms_per_call = round(statistics.median(spans) * 1000, 2) if spans else None
    finally:
        runs.uninstall()
        await rig.stop()
    return {"opened": opened, "pushes": pushes, "validation_errors": validation_errors,
            "emulator_ms_per_call": emulator_ms_per_call}


# ----------------------------------------------------------------------------- (d) parallel workspaces

PARALLEL_UP_SLEEP = 0.8


async def parallel_ups(tmp: Path) -> dict:
    """(d) Two PRs opened at once; how far apart their ``up`` processes started."""
    from tests import payloads

    rig = Rig(tmp, "0", "0.05")
    runs = DevPodRuns()
    runs.install()
    try:
        await rig.start([200, 201])
        assert rig.srv is not None and rig.devpod is not None
        rig.devpod.inject(command="up", sleep=PARALLEL_UP_SLEEP, times=2)
        await asyncio.gather(*(rig.srv.deliver("pull_request", payloads.pull_request("opened", number=n,
                                                                                      head_sha=f"{n:040x}"))
                               for n in (200, 201)))
        await asyncio.wait_for(rig.srv.settle(), FLOW_TIMEOUT)
        starts = sorted(r["start"] for r in runs.runs if r["command"] == "up")
    finally:
        runs.uninstall()
        await rig.stop()
    return {"ups": len(starts), "up_ms": PARALLEL_UP_SLEEP * 1000,
            "apart_ms": round((starts[1] - starts[0]) * 1000, 1) if len(starts) == 2 else None}


# ----------------------------------------------------------------------------- (c) many records

class _FakeApp:
    """What ``bot_environ`` reads from the emulator, without starting one (it would load GitHub's
    13 MB OpenAPI description into this process and blur its RSS). Nothing here contacts GitHub."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()).decode()
        self.app_id, self.webhook_secret = 4242, "bench-secret"
        self.client_id, self.client_secret = "Iv1.bench", "bench-client-secret"
        self.host = "127.0.0.1:9"


async def records_child(tmp: Path, count: int, mode: str) -> dict:
    """In a fresh process: the bot's services started (no web server), then ``count`` records."""
    from bot.services import build
    from handlers import ROUTERS

    standin = DevPodStandIn(tmp / "devpod-home")
    environ = bot_environ(_FakeApp(), tmp / "state", **standin.env(), LOG_LEVEL="warning")
    gc.collect()
    rss_imported = rss_bytes()
    bot = build(config.load(environ), ROUTERS)
    t0 = time.perf_counter()
    await bot.start()
    start_s = time.perf_counter() - t0
    try:
        manager = bot.environments
        assert manager is not None
        gc.collect()
        out = {"mode": mode, "rss_imported_mb": round(rss_imported / 2**20, 1), "start_s": round(start_s, 3),
               "records_at_start": len(manager.records), "rss_started_mb": round(rss_bytes() / 2**20, 1)}
        if mode == "load":
            return out
        rss0 = rss_bytes()
        if mode == "trace":
            tracemalloc.start()
        t0 = time.perf_counter()
        for i in range(count):
            n = 10_000 + i
            info = PullInfo(ref=PullRef(INSTALLATION, OWNER, REPO, n), head_sha=f"{n:040x}",
                            head_ref=f"feature/bench-{n}", title=f"Make the widget faster, part {n}",
                            author="Codertocat", fork=False, private=False)
            record = manager.record_for(info)
            record.state, record.env_sha = State.RUNNING, info.head_sha
            record.comment_id, record.check_run_id, record.check_sha = 5_000_000 + n, 9_000_000 + n, info.head_sha
            record.last_action = Action(verb="up", by="Codertocat", at=time.time(), outcome="succeeded")
            manager.store.save(record)
        save_s = time.perf_counter() - t0
        gc.collect()
        if mode == "trace":  # tracemalloc's own bookkeeping inflates RSS: only allocations count here
            traced, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            return {"python_alloc_mb": round(traced / 2**20, 2),
                    "python_alloc_per_record_kb": round(traced / count / 1024, 2)}
        rss1 = rss_bytes()
        files = list(manager.store.journal.dir.glob("*.json"))
        size = sum(f.stat().st_size for f in files)
        out.update({
            "records": len(manager.records), "rss_after_mb": round(rss1 / 2**20, 1),
            "rss_growth_mb": round((rss1 - rss0) / 2**20, 2),
            "rss_growth_per_record_kb": round((rss1 - rss0) / count / 1024, 2),
            "journal_files": len(files), "journal_bytes": size,
            "journal_disk_bytes": sum(f.stat().st_blocks * 512 for f in files),
            "journal_bytes_per_record": round(size / max(1, len(files))),
            "save_all_s": round(save_s, 3), "save_per_record_ms": round(save_s / count * 1000, 3),
        })
        return out
    finally:
        await bot.stop()


def many_records(tmp: Path, count: int) -> dict:
    """(c) in fresh processes: one makes ``count`` records, the next starts on that journal, a third
    makes them again (in its own directory) under tracemalloc."""
    tmp.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    for mode in ("create", "load", "trace"):
        where = tmp / ("trace" if mode == "trace" else "main")
        proc = subprocess.run([sys.executable, __file__, "--records-child", mode, "--records", str(count),
                               "--child-dir", str(where)], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"records child ({mode}) failed:\n{proc.stderr[-3000:]}")
        out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    create, load = out["create"], out["load"]
    return {**create, **out["trace"], "restart_start_s": load["start_s"], "restart_records": load["records_at_start"],
            "restart_rss_started_mb": load["rss_started_mb"],
            "restart_rss_growth_mb": round(load["rss_started_mb"] - create["rss_started_mb"], 1)}


# ----------------------------------------------------------------------------- report

def summarize_flows(flows: list[dict]) -> dict:
    keys = ["answer", "to_first_devpod", "between_runs", "to_up_spawn", "to_standin_up", "up_duration", "exit_to_check_completed",
            "exit_to_settled", "total", "bot_overhead", "github_time", "github_time_before_up",
            "github_time_after_exit"]
    out = {k + "_ms": med([f[k] for f in flows]) for k in keys}
    out["ranges_ms"] = {k: spread([f[k] for f in flows]) for k in keys}
    out["count"] = len(flows)
    out["conclusions"] = dict(collections.Counter(str(f["conclusion"]) for f in flows))
    out["calls_median"] = statistics.median(f["calls"] for f in flows) if flows else None
    out["calls_max"] = max((f["calls"] for f in flows), default=None)
    out["token_mints"] = sum(f["token_mints"] for f in flows)
    return out


def calls_table(flow: dict) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(flow["calls_by_op"].items()))


async def main_async(args: argparse.Namespace) -> dict:
    deadline = time.monotonic() + args.max_seconds
    results: dict = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "flows": args.flows,
                     "loadavg_before": os.getloadavg()[0],
                     "settings": {"DEVENV_PUBLISH_INTERVAL": "0", "DEVENV_SYNC_DEBOUNCE": args.sync_debounce}}
    with tempfile.TemporaryDirectory(prefix="devenv-bench-env-") as tmp:
        busy0, own0, wall0 = machine_busy(), own_cpu(), time.monotonic()
        raw = await run_flows(Path(tmp) / "a", args.flows, "0", args.sync_debounce, deadline)
        results["flows_wall_s"] = round(time.monotonic() - wall0, 2)
        results["flows_own_cpu_s"] = round(own_cpu() - own0, 2)
        # CPU used meanwhile by processes that are not this bench (other jobs disturb the times)
        results["flows_others_cpu_s"] = round(max(0.0, machine_busy() - busy0 - results["flows_own_cpu_s"]), 2)
        opened, pushes = raw["opened"], raw["pushes"]
        results["opened_cold"] = opened[0] if opened else None
        results["opened"] = summarize_flows(opened[1:])
        results["pushes"] = summarize_flows(pushes)
        results["push_calls_by_op"] = pushes[-1]["calls_by_op"] if pushes else None
        results["push_sequence"] = pushes[-1]["sequence"] if pushes else None
        results["opened_sequence"] = opened[-1]["sequence"] if opened else None
        results["opened_calls_by_op"] = opened[-1]["calls_by_op"] if opened else None
        results["validation_errors"] = raw["validation_errors"][:5]
        results["emulator_ms_per_call_median"] = raw["emulator_ms_per_call"]
        if args.prod_flows:
            prod = await run_flows(Path(tmp) / "b", args.prod_flows, "3", args.sync_debounce, deadline)
            results["production_publish_interval"] = {
                "flows": args.prod_flows,
                "opened_warm": summarize_flows(prod["opened"][1:]),
                "pushes": summarize_flows(prod["pushes"]),
                "push_calls_by_op": prod["pushes"][-1]["calls_by_op"] if prod["pushes"] else None,
            }
        if args.records:
            results["records"] = await asyncio.to_thread(many_records, Path(tmp) / "c", args.records)
        results["parallel"] = await parallel_ups(Path(tmp) / "d")
        if args.raw:
            results["raw"] = {"opened": opened, "pushes": pushes}
    results["loadavg_after"] = os.getloadavg()[0]
    return results


def print_report(r: dict) -> None:
    print(f"devenv-bot environment operations, {r['date']}, {r['cores']} cores, load average "
          f"{r['loadavg_before']:.2f} before, {r['loadavg_after']:.2f} after")
    print(f"  bot in-process + GitHub emulator + stand-in devpod; DEVENV_PUBLISH_INTERVAL=0, "
          f"DEVENV_SYNC_DEBOUNCE={r['settings']['DEVENV_SYNC_DEBOUNCE']}")
    print(f"  flows: {r['flows_wall_s']} s wall, {r['flows_own_cpu_s']} CPU s by this bench and its devpod children, "
          f"{r['flows_others_cpu_s']} CPU s by other processes"
          + ("  <- the machine was busy: times are inflated" if r["flows_others_cpu_s"] > 0.1 * r["flows_wall_s"]
             else ""))
    print("\n(a) time per flow, median [min..max] in ms")
    rows = [
        ("HTTP answer", "answer"),
        ("delivery -> first devpod spawn", "to_first_devpod"),
        ("previous devpod exit -> `up` spawned", "between_runs"),
        ("delivery -> `up` spawned by the bot", "to_up_spawn"),
        ("delivery -> stand-in `up` running", "to_standin_up"),
        ("  (DevPod `up` run, stand-in, not bot)", "up_duration"),
        ("DevPod exit -> check run concluded", "exit_to_check_completed"),
        ("DevPod exit -> settled (all writes)", "exit_to_settled"),
        ("delivery -> settled", "total"),
        ("bot overhead (total - DevPod runs)", "bot_overhead"),
        ("  of which GitHub emulator serving", "github_time"),
        ("  emulator before `up`", "github_time_before_up"),
        ("  emulator after exit", "github_time_after_exit"),
    ]
    o, p = r["opened"], r["pushes"]
    width = max(len(label) for label, _ in rows)
    print(f"  {'':<{width}}  {'PR opened (warm, n=' + str(o['count']) + ')':<30} {'push (n=' + str(p['count']) + ')':<30}")
    for label, key in rows:
        a = f"{o[key + '_ms']} [{o['ranges_ms'][key]}]"
        b = f"{p[key + '_ms']} [{p['ranges_ms'][key]}]"
        print(f"  {label:<{width}}  {a:<30} {b:<30}")
    cold = r["opened_cold"]
    if cold and cold["to_up_spawn"] is None:
        print("  WARNING: the first PR opened ran no `devpod up`: see --json --raw for its API calls")
    elif cold:
        print(f"  first PR opened (cold): delivery -> `up` {cold['to_up_spawn'] * 1000:.1f} ms "
              f"(emulator {cold['github_time_before_up'] * 1000:.1f} ms of it, incl. the token mint), "
              f"exit -> concluded {cold['exit_to_check_completed'] * 1000:.1f} ms, total {cold['total'] * 1000:.1f} ms")
    if o["conclusions"] != {"success": o["count"]} or p["conclusions"] != {"success": p["count"]}:
        print("  WARNING: not every flow ended with a successful check run; the figures above are suspect")
    print(f"  conclusions: opened {o['conclusions']}, pushes {p['conclusions']}; the emulator took "
          f"{r['emulator_ms_per_call_median']} ms per API call (median), on the bot's event loop")
    print(f"  a push waits DEVENV_SYNC_DEBOUNCE={r['settings']['DEVENV_SYNC_DEBOUNCE']} s before its first devpod run "
          f"(`ssh ... git status`, then `up --reset`): both push times above include it")
    print("\n(b) GitHub API calls per flow (PUBLISH_INTERVAL=0)")
    if cold:
        print(f"  first PR opened (cold): {cold['calls']} calls, {cold['token_mints']} token mint(s): {calls_table(cold)}")
    print(f"  PR opened (warm): median {o['calls_median']}, max {o['calls_max']}, token mints {o['token_mints']}: "
          f"{', '.join(f'{k} x{v}' for k, v in sorted((r['opened_calls_by_op'] or {}).items()))}")
    verdict = "meets" if p["calls_max"] is not None and p["calls_max"] <= PUSH_TARGET_CALLS and not p["token_mints"] \
        else "MISSES"
    print(f"  push (warm): median {p['calls_median']}, max {p['calls_max']}, token mints {p['token_mints']} -> {verdict} "
          f"the <= {PUSH_TARGET_CALLS} calls, no mint target: "
          f"{', '.join(f'{k} x{v}' for k, v in sorted((r['push_calls_by_op'] or {}).items()))}")
    print(f"  the {p['count']}th push, call by call: " + "; ".join(r["push_sequence"] or []))
    prod = r.get("production_publish_interval")
    if prod:
        po, pp = prod["opened_warm"], prod["pushes"]
        print(f"  with the production DEVENV_PUBLISH_INTERVAL=3 ({prod['flows']} flows): PR opened median "
              f"{po['calls_median']} (max {po['calls_max']}), push median {pp['calls_median']} (max {pp['calls_max']}), "
              f"push total {pp['total_ms']} ms: "
              f"{', '.join(f'{k} x{v}' for k, v in sorted((prod['push_calls_by_op'] or {}).items()))}")
    rec = r.get("records")
    if rec:
        print(f"\n(c) {rec['records']} tracked environments (a fresh bot process, services started, no web server)")
        print(f"  RSS: {rec['rss_imported_mb']} MiB after imports, {rec['rss_started_mb']} MiB started with 0 envs, "
              f"{rec['rss_after_mb']} MiB with {rec['records']} (+{rec['rss_growth_mb']} MiB, "
              f"{rec['rss_growth_per_record_kb']} KiB/env)")
        print(f"  Python allocations kept: +{rec['python_alloc_mb']} MiB ({rec['python_alloc_per_record_kb']} KiB/env)")
        print(f"  journal: {rec['journal_files']} files, {rec['journal_bytes'] / 2**20:.2f} MiB "
              f"({rec['journal_bytes_per_record']} B/env), {rec['journal_disk_bytes'] / 2**20:.2f} MiB of disk blocks")
        print(f"  saving each once: {rec['save_all_s']} s ({rec['save_per_record_ms']} ms/save, on the event loop)")
        print(f"  restart on that journal: start {rec['restart_start_s']} s (vs {rec['start_s']} s empty), "
              f"{rec['restart_records']} records loaded, RSS {rec['restart_rss_started_mb']} MiB "
              f"(+{rec['restart_rss_growth_mb']} MiB vs an empty start)")
    par = r.get("parallel")
    if par:
        verdict = ("in parallel" if par["apart_ms"] is not None and par["apart_ms"] < 0.875 * par["up_ms"]
                   else "NOT in parallel: one waited for the other")
        print(f"\n(d) two PRs opened at once: {par['ups']} `up`s started {par['apart_ms']} ms apart "
              f"(each takes {par['up_ms']:.0f} ms in the stand-in) -> {verdict}")
    if r["validation_errors"]:
        print(f"\n  emulator validation errors: {r['validation_errors']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=20, help="PR-opened flows, then as many pushes (default 20)")
    parser.add_argument("--prod-flows", type=int, default=5,
                        help="flows repeated with DEVENV_PUBLISH_INTERVAL=3 for call counts (default 5, 0: skip)")
    parser.add_argument("--records", type=int, default=1000, help="tracked environments for (c) (default 1000, 0: skip)")
    parser.add_argument("--sync-debounce", default="0.05", help="DEVENV_SYNC_DEBOUNCE in seconds (default 0.05)")
    parser.add_argument("--max-seconds", type=float, default=100.0, help="stop starting flows after this long")
    parser.add_argument("--records-child", choices=["create", "load", "trace"], help=argparse.SUPPRESS)
    parser.add_argument("--child-dir", help=argparse.SUPPRESS)
    parser.add_argument("--raw", action="store_true", help="include every flow's figures in --json output")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    args = parser.parse_args(argv)
    if args.records_child:
        print(json.dumps(asyncio.run(records_child(Path(args.child_dir), args.records, args.records_child))))
        return 0
    if args.flows < 2:
        parser.error("--flows must be at least 2 (the first one is the cold start)")
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(results, indent=1, default=str))
    else:
        print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
