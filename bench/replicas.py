#!/usr/bin/env python3
"""Several replicas against one cluster: deliveries per second, and what each costs in Kubernetes API requests.

    .venv/bin/python bench/replicas.py                     # file x1, kubernetes x1, x2, x3; the default mix
    .venv/bin/python bench/replicas.py --n 300 --c 20 --repeat 3 --replicas 1,3 --json
    .venv/bin/python bench/replicas.py --no-file --no-ops --idle 5   # quicker, throughput and intake only

The parties are those of bench/webhooks.py, with the multi-replica rig of tests/replicas.py:

* the GitHub emulator (tests/github_emulator) on its own event loop in a thread of this process;
* one Kubernetes API fake (tests/k8s_fake, its own thread) enforcing deploy/'s RBAC
  (``tests.replicas.cluster``), which records every request in ``FakeKube.calls``;
* N real ``devenv-bot serve`` processes (``tests.replicas.Replicas``, their output to files in the
  bench's directory rather than a pipe) with ``DEVENV_STATE_BACKEND=kubernetes``, one DevPod stand-in;
  and, for reference, one process with the file backend (``--no-file`` leaves it out);
* the load generator: an aiohttp client in this process, ``--c`` deliveries in flight, delivery ``i``
  to replica ``i % N`` (round-robin, as a Service spreads them), each signed for real with its own
  ``X-GitHub-Delivery`` (bench/webhooks.py's ``Deliveries``: the same mix of 20, 13 cheap "no handler"
  ones, 2 ``closed`` of unknown PRs and 5 ordinary comments whose handlers run in the background).

What is measured, per configuration:

1. deliveries/s over ``--repeat`` rounds of ``--n`` (median of rounds), answer time median and p99,
   "lost" (not answered 2xx), the replicas' CPU seconds and the "others" CPU (every other process on
   the machine meanwhile: other jobs disturb the figures);
2. Kubernetes API requests per delivery, by verb and resource, in the measured rounds (including
   the handlers' requests after the answer: the bench waits until the cluster is quiet), and per
   kind of delivery (``--per-kind`` deliveries of each kind, sent alone);
3. the background rate with no deliveries (``--idle`` seconds): Lease renewals, the leader's
   rounds, per replica per minute. Requests per delivery and per operation are net of it (the
   background expected over the window is subtracted, per verb and resource).

Then, on the largest configuration (``--no-ops`` leaves it out), one DevPod ``up`` (a PR opened),
``stop`` and ``delete`` (commands), each delivered to the next replica, each counted from its
delivery until the environment has settled and its check run concluded.

On a 2-CPU machine the replicas share the CPUs with each other, the emulators and the load
generator: more replicas cannot mean more deliveries per second here. The point is the cost per
delivery (CPU and API requests), and that nothing is lost or done twice.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench import webhooks  # noqa: E402
from bench.webhooks import MIX_PATTERN, WEBHOOK_PATH, Deliveries, EmulatorThread  # noqa: E402
from tests import payloads  # noqa: E402
from tests.replicas import NAMESPACE, Replicas, cluster  # noqa: E402
from tests.standin import DevPodStandIn  # noqa: E402
from tests.test_setup import free_port, wait_ready  # noqa: E402

OWNER, REPO = "Codertocat", "Hello-World"
WS = "hello-world-pr2-4d960c"  # the workspace of payloads.PR_NUMBER (tests/test_commands_e2e.py)
_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/[^/]+)?/(?P<plural>[^/]+)(?P<name>/[^/]+)?")
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


# ----------------------------------------------------------------------------- counting FakeKube.calls

#: Names of the bot's objects by what they are for (bot/replicas), so the leader's Lease is told from a workspace's.
PURPOSES = (("devenv-bot-leader", "leader"), ("devenv-ws-", "workspace"), ("devenv-slot-", "slot"),
            ("devenv-delivery-", "delivery"))


def classify(call: Any) -> str:
    """"verb resource(purpose) [status]" of one request, verbs as RBAC names them: "get leases(leader)",
    "create configmaps(delivery) 409", "list devenvironments". The status is shown when not 2xx."""
    m = _PATH.match(call.path)
    if m is None:
        return f"{call.method} {call.path}"
    rest = call.path[m.end():]
    resource = m["plural"] + rest if m["name"] and rest else m["plural"]  # pods/log
    name = m["name"][1:] if m["name"] else (call.body or {}).get("metadata", {}).get("name", "") \
        if isinstance(call.body, dict) else ""
    purpose = next((p for prefix, p in PURPOSES if name.startswith(prefix)), None)
    verb = VERBS.get(call.method) or ("get" if m["name"] else "list")
    status = "" if 200 <= call.status < 300 else f" {call.status}"
    return f"{verb} {resource}" + (f"({purpose})" if purpose else "") + status


def count(calls: list[Any]) -> dict[str, int]:
    """Requests by :func:`classify`, most frequent first."""
    return dict(collections.Counter(classify(c) for c in calls).most_common())


def net(window: dict[str, int], seconds: float, background: dict[str, float], per: int = 1) -> dict[str, float]:
    """Requests in a window less the background expected over it (``background``: per minute), per ``per``.
    The leader's Lease is background by definition and left out altogether: in a window of a few seconds its
    renewal every 5 s would show up, or not, by chance."""
    out = {}
    for key in sorted(set(window) | set(background)):
        if "(leader)" in key:
            continue
        value = (window.get(key, 0) - background.get(key, 0.0) * seconds / 60) / per
        if value > 0.005:
            out[key] = round(value, 2)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


async def quiet(kube: Any, *, still: float = 0.6, limit: float = 15.0, ignore: tuple[str, ...] = ("leases",)) -> None:
    """Until the cluster saw no request for ``still`` s other than the background's (Leases), or ``limit``."""
    deadline = time.monotonic() + limit
    seen, since = len(kube.calls), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = len(kube.calls)
        if now != seen:
            fresh = [c for c in kube.calls[seen:now] if not any(f"/{r}" in c.path for r in ignore)]
            seen = now
            if fresh:
                since = time.monotonic()
        elif time.monotonic() - since >= still:
            return


# ----------------------------------------------------------------------------- the replicas

class Rig(Replicas):
    """tests/replicas.py's rig, each replica writing its output to a file: a pipe nobody reads fills up
    under load and would stall the bot."""

    def environ(self, index: int, port: int) -> dict[str, str]:
        """Each replica its own DEVPOD_HOME: DevPod's state of a workspace travels through the cluster (a Secret)."""
        return {**super().environ(index, port), **self.devpods[index].env()}

    async def start(self) -> Rig:
        self.devpods = [DevPodStandIn(self.tmp_path / f"devpod-{i}") for i in range(self.count)]
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.logs = []
        for index in range(self.count):
            port = free_port()
            home = self.tmp_path / f"replica-{index}"
            env = {"PYTHONPATH": str(ROOT), "HOME": str(home), **self.environ(index, port)}
            log = open(self.tmp_path / f"replica-{index}.log", "w")
            self.logs.append(log)
            self.procs.append(subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=home, env=env,
                                               stdout=log, stderr=subprocess.STDOUT, text=True))
            self.urls.append(f"http://127.0.0.1:{port}")
        for url in self.urls:
            await wait_ready(self.session, url, 200, timeout=90)
        return self

    async def stop(self) -> list[str]:
        outputs = await super().stop()
        for log in getattr(self, "logs", []):
            log.close()
        return outputs

    def devpod_calls(self, verb: str) -> list[dict]:
        return [c for d in self.devpods for c in d.calls(verb)]

    def cpu(self) -> float:
        return sum(sum(webhooks.proc_cpu(p.pid)[:2]) for p in self.procs)

    def log_errors(self) -> int:
        return sum(1 for i in range(self.count)
                   for line in (self.tmp_path / f"replica-{i}.log").read_text(errors="replace").splitlines()
                   if " ERROR " in line or "Traceback" in line)


async def send_spread(session: aiohttp.ClientSession, urls: list[str], items: list, concurrency: int,
                      timeout: float) -> tuple[list[float], list[object]]:
    """Send ``items``, item i to ``urls[i % len(urls)]``, ``concurrency`` in flight; latencies and statuses."""
    latencies: list[float] = [float("nan")] * len(items)
    statuses: list[object] = ["not sent"] * len(items)
    indices = iter(range(len(items)))
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async def worker() -> None:
        for i in indices:
            body, headers, _ = items[i]
            t0 = time.perf_counter()
            try:
                async with session.post(urls[i % len(urls)] + WEBHOOK_PATH, data=body, headers=headers,
                                        timeout=client_timeout) as resp:
                    await resp.read()
                    statuses[i] = resp.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                statuses[i] = type(exc).__name__
            latencies[i] = time.perf_counter() - t0

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses


# ----------------------------------------------------------------------------- one configuration

async def measure_rounds(rig: Rig, kube: Any, deliveries: Deliveries, args: argparse.Namespace,
                         background: dict[str, float]) -> list[dict]:
    rounds = []
    for _ in range(args.repeat):
        items = deliveries.make(args.n)
        first = len(kube.calls) if kube is not None else 0
        cpu0, gen0, busy0 = rig.cpu(), webhooks.self_cpu(), webhooks.machine_busy()
        t0 = time.perf_counter()
        latencies, statuses = await send_spread(rig.session, rig.urls, items, args.c, args.request_timeout)
        wall = time.perf_counter() - t0
        cpu, gen, busy = rig.cpu() - cpu0, webhooks.self_cpu() - gen0, webhooks.machine_busy() - busy0
        answered = sorted(x for x, s in zip(latencies, statuses) if isinstance(s, int))
        row = {"wall_s": round(wall, 3), "deliveries_per_s": round(len(answered) / wall, 1),
               "median_ms": round(statistics.median(answered) * 1000, 2) if answered else None,
               "p99_ms": round(webhooks.percentile(answered, 99) * 1000, 2),
               "lost": sum(1 for s in statuses if not (isinstance(s, int) and 200 <= s < 300)),
               "replicas_cpu_s": round(cpu, 2), "cpu_ms_per_delivery": round(cpu / max(1, len(answered)) * 1000, 3),
               "loadgen_cpu_s": round(gen, 2), "others_cpu_s": round(max(0.0, busy - cpu - gen), 2)}
        if kube is not None:
            await quiet(kube)
            window = kube.calls[first:]
            row["kube_requests"] = len(window)
            row["kube_by_kind"] = count(window)
            row["kube_window_s"] = round(time.perf_counter() - t0, 2)
            row["kube_per_delivery"] = net(row["kube_by_kind"], row["kube_window_s"], background, args.n)
        rounds.append(row)
        await asyncio.sleep(0.2)
    return rounds


async def idle_rate(kube: Any, seconds: float) -> dict[str, float]:
    """Requests per minute by "verb resource" with no deliveries."""
    first, t0 = len(kube.calls), time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    return {k: round(v * 60 / elapsed, 1) for k, v in count(kube.calls[first:]).items()}


async def per_kind(rig: Rig, kube: Any, deliveries: Deliveries, args: argparse.Namespace,
                   background: dict[str, float]) -> dict[str, dict[str, float]]:
    """Net requests per delivery of each kind of the mix, ``--per-kind`` of it sent alone."""
    out = {}
    for kind in dict.fromkeys(MIX_PATTERN):
        items = make_kind(deliveries, kind, args.per_kind)
        first, t0 = len(kube.calls), time.monotonic()
        await send_spread(rig.session, rig.urls, items, args.c, args.request_timeout)
        await quiet(kube)
        out[kind] = net(count(kube.calls[first:]), time.monotonic() - t0, background, len(items))
    return out


async def run_config(emu_thread: EmulatorThread, backend: str, replicas: int, args: argparse.Namespace,
                     tmp: Path, *, with_ops: bool = False, kube: Any = None) -> dict:
    """Start ``replicas`` bots on ``backend``, measure, stop; the figures (and ``kube``, if one was used)."""
    emu = emu_thread.emu
    own_kube = kube is None and backend == "kubernetes"
    if own_kube:
        kube = cluster()
    where = tmp / f"{backend}-{replicas}"
    where.mkdir()
    devpod = DevPodStandIn(where / "devpod-home")  # the rig's; each replica gets its own home (Rig.environ)
    extra = {"LOG_LEVEL": args.log_level, "DEVENV_STATE_BACKEND": backend, "LANG": "C.UTF-8",
             "DEVENV_ENV_FILE": str(where / "no.env")}
    result: dict[str, Any] = {"backend": backend, "replicas": replicas}
    rig = Rig(emu, devpod, kube or cluster_stub(), where, count=replicas, **extra)
    deliveries = Deliveries(emu.webhook_secret, "mix", first_number=100_000 * (replicas + (backend == "file") * 10))
    try:
        t0 = time.monotonic()
        await rig.start()
        result["ready_s"] = round(time.monotonic() - t0, 1)
        await send_spread(rig.session, rig.urls, deliveries.make(args.warmup), args.c, args.request_timeout)
        background: dict[str, float] = {}
        if kube is not None:
            await quiet(kube)
            background = await idle_rate(kube, args.idle)
            result["idle_per_minute"] = background
            result["idle_per_replica_minute"] = round(sum(background.values()) / replicas, 1)
        result["rounds"] = await measure_rounds(rig, kube, deliveries, args, background)
        if kube is not None and args.per_kind:
            result["per_kind"] = await per_kind(rig, kube, deliveries, args, background)
        if kube is not None and with_ops:
            result["ops"] = await devpod_ops(emu_thread, rig, kube, background)
        summarize(result)
    finally:
        await rig.stop()
        result["exit_codes"] = [p.returncode for p in rig.procs]
        result["log_errors"] = rig.log_errors() if rig.procs else None
        if own_kube:
            kube.close()
            result["kube_forbidden"] = len(kube.forbidden)
            result["kube_invalid"] = len(kube.errors)
    return result


def cluster_stub() -> Any:
    """The file backend needs no cluster; the rig still writes a kubeconfig, to nowhere."""
    class Stub:
        def write_kubeconfig(self, path: Path, namespace: str) -> Path:
            path.write_text("")
            return path
    return Stub()


def summarize(result: dict) -> None:
    rounds = result["rounds"]
    for key in ("deliveries_per_s", "median_ms", "p99_ms", "cpu_ms_per_delivery"):
        result[key] = round(statistics.median(r[key] for r in rounds), 3)
    result["lost"] = sum(r["lost"] for r in rounds)
    result["others_cpu_share"] = round(sum(r["others_cpu_s"] for r in rounds) / sum(r["wall_s"] for r in rounds), 2)
    if "kube_requests" in rounds[0]:
        keys = {k for r in rounds for k in r["kube_per_delivery"]}
        result["kube_per_delivery"] = dict(sorted(
            ((k, round(statistics.median(r["kube_per_delivery"].get(k, 0.0) for r in rounds), 2)) for k in keys),
            key=lambda kv: -kv[1]))
        result["kube_per_delivery_total"] = round(sum(result["kube_per_delivery"].values()), 2)


# ----------------------------------------------------------------------------- DevPod operations

async def devpod_ops(emu_thread: EmulatorThread, rig: Rig, kube: Any, background: dict[str, float]) -> dict[str, dict]:
    """An up, a stop and a delete of one environment, each delivered to the next replica; requests of each."""
    emu = emu_thread.emu

    def on_emu(fn: Any, *a: Any, **kw: Any) -> Any:
        async def call() -> Any:
            return fn(*a, **kw)
        return asyncio.run_coroutine_threadsafe(call(), emu_thread.loop).result(30)

    def settled(state: str | None, devpod_verb: str) -> bool:
        obj = kube.get("devenvironments", NAMESPACE, WS)
        runs = [c for c in on_emu(emu.check_runs, OWNER, REPO) if c["name"] == "devenv"]
        return (bool(rig.devpod_calls(devpod_verb)) and bool(runs) and all(c["status"] == "completed" for c in runs)
                and (obj is None if state is None else obj is not None and obj["spec"]["state"] == state))

    def comment(body: str) -> dict:
        made = on_emu(emu.add_comment, OWNER, REPO, payloads.PR_NUMBER, body, user=OWNER)
        return payloads.pr_comment(body, user=OWNER, comment_id=made["id"])

    steps = [("up", "pull_request", lambda: payloads.pull_request("opened"), "running", "up"),
             ("stop", "issue_comment", lambda: comment("/devenv stop"), "stopped", "stop"),
             ("delete", "issue_comment", lambda: comment("/devenv delete"), None, "delete")]
    out = {}
    for index, (name, event, payload, state, verb) in enumerate(steps):
        first, t0 = len(kube.calls), time.monotonic()
        status = await rig.deliver(index % rig.count, event, payload())
        deadline = time.monotonic() + 90
        while not settled(state, verb) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        ok = settled(state, verb)
        await quiet(kube, still=1.0)
        window = count(kube.calls[first:])
        out[name] = {"replica": index % rig.count, "status": status, "settled": ok,
                     "seconds": round(time.monotonic() - t0, 2), "requests": sum(window.values()),
                     "net": net(window, time.monotonic() - t0, background)}
    return out


# ----------------------------------------------------------------------------- the whole bench

def make_kind(deliveries: Deliveries, kind: str, n: int) -> list:
    """``n`` prepared deliveries of one kind of the mix (Deliveries.make follows the mix's pattern)."""
    saved = deliveries.kind_for
    deliveries.kind_for = lambda i: kind  # type: ignore[method-assign]
    try:
        return deliveries.make(n)
    finally:
        deliveries.kind_for = saved  # type: ignore[method-assign]


async def run(args: argparse.Namespace) -> dict:
    configs = ([("file", 1)] if not args.no_file else []) + [("kubernetes", n) for n in args.replicas]
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "n": args.n, "c": args.c,
                               "repeat": args.repeat, "warmup": args.warmup, "idle_s": args.idle,
                               "per_kind": args.per_kind, "log_level": args.log_level,
                               "loadavg_before": os.getloadavg()[0], "configs": []}
    emu_thread = EmulatorThread()
    emu = emu_thread.start()
    tmp = Path(tempfile.mkdtemp(prefix="devenv-bench-replicas-"))
    results["dir"] = str(tmp)
    try:
        emu.add_installation(payloads.INSTALLATION_ID, account=OWNER)
        emu.add_repo(OWNER, REPO, installation_id=payloads.INSTALLATION_ID)
        emu.set_permission(OWNER, REPO, OWNER, "admin")
        pr = payloads.pull_request("opened")["pull_request"]
        emu.add_pull(OWNER, REPO, payloads.PR_NUMBER, head_sha=pr["head"]["sha"], head_ref=pr["head"]["ref"],
                     title=pr["title"])
        largest = max(args.replicas) if args.replicas else None
        for backend, count_ in configs:
            with_ops = not args.no_ops and backend == "kubernetes" and count_ == largest
            results["configs"].append(await run_config(emu_thread, backend, count_, args, tmp, with_ops=with_ops))
    finally:
        emu_thread.stop()
        emu_thread.loop.close()
        results["emulator_validation_errors"] = len(emu.validation_errors)
        results["loadavg_after"] = os.getloadavg()[0]
    results["lost"] = sum(c.get("lost", args.n * args.repeat) for c in results["configs"])
    return results


def print_table(r: dict) -> None:
    print(f"devenv-bot replicas, {r['date']}, {r['cores']} cores, LOG_LEVEL={r['log_level']}, load average "
          f"{r['loadavg_before']:.2f} before, {r['loadavg_after']:.2f} after; {r['repeat']} rounds of {r['n']} "
          f"deliveries (the mix of bench/webhooks.py), {r['c']} in flight, round-robin over the replicas")
    print(f"  {'backend':>10} {'repl.':>5} {'deliv/s':>8} {'median':>7} {'p99':>7} {'lost':>5} {'CPU ms/d':>8} "
          f"{'others':>6} {'kube req/d':>10} {'idle req/repl/min':>17}")
    for c in r["configs"]:
        if "rounds" not in c:
            print(f"  {c['backend']:>10} {c['replicas']:>5}  did not run")
            continue
        print(f"  {c['backend']:>10} {c['replicas']:>5} {c['deliveries_per_s']:>8} {c['median_ms']:>7} "
              f"{c['p99_ms']:>7} {c['lost']:>5} {c['cpu_ms_per_delivery']:>8} {c['others_cpu_share']:>6} "
              f"{c.get('kube_per_delivery_total', '-'):>10} {c.get('idle_per_replica_minute', '-'):>17}")
    print("  (times in ms; 'CPU ms/d': the replicas' CPU per delivery; 'others': CPUs used by other processes "
          "meanwhile; 'kube req/d': Kubernetes API requests per delivery, net of the background)")
    for c in r["configs"]:
        name = f"{c['backend']} x{c['replicas']}"
        if c.get("kube_per_delivery"):
            print(f"  {name}: requests per delivery {fmt(c['kube_per_delivery'])}")
        if c.get("idle_per_minute"):
            print(f"  {name}: background per minute (all replicas) {fmt(c['idle_per_minute'])}")
        for kind, counts in c.get("per_kind", {}).items():
            print(f"  {name}: one {kind}: {fmt(counts) or 'none'}")
        for op, o in c.get("ops", {}).items():
            print(f"  {name}: DevPod {op} on replica {o['replica']} ({'settled' if o['settled'] else 'NOT SETTLED'} in "
                  f"{o['seconds']} s): {fmt(o['net'])}")
        print(f"  {name}: exit codes {c.get('exit_codes')}, errors in logs {c.get('log_errors')}, RBAC refusals "
              f"{c.get('kube_forbidden', '-')}, invalid objects {c.get('kube_invalid', '-')}")
    print(f"  lost {r['lost']}; GitHub emulator validation errors {r['emulator_validation_errors']}; files in {r['dir']}")


def fmt(counts: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in counts.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400, help="deliveries per measured round (default 400)")
    parser.add_argument("--c", type=int, default=20, help="deliveries in flight (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds per configuration (default 3)")
    parser.add_argument("--replicas", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3],
                        help="replica counts with the kubernetes backend, comma-separated (default 1,2,3)")
    parser.add_argument("--no-file", action="store_true", help="leave out the reference run: 1 bot, file backend")
    parser.add_argument("--no-ops", action="store_true", help="leave out the DevPod up, stop and delete")
    parser.add_argument("--warmup", type=int, default=40, help="unmeasured deliveries first (default 40)")
    parser.add_argument("--idle", type=float, default=15.0,
                        help="seconds without deliveries to measure the background rate (default 15)")
    parser.add_argument("--per-kind", type=int, default=10,
                        help="deliveries of each kind sent alone to count its requests (default 10; 0: skip)")
    parser.add_argument("--log-level", default="info", help="the bots' LOG_LEVEL (default info)")
    parser.add_argument("--request-timeout", type=float, default=10.0, help="per delivery, seconds (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.n < 1 or args.c < 1 or args.repeat < 1 or any(x < 1 for x in args.replicas):
        parser.error("--n, --c, --repeat and --replicas must be at least 1")
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print_table(results)
    return 0 if results["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
