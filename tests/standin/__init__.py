"""The stand-in ``devpod`` executable and a small handle for tests.

``DevPodStandIn(tmp_path / "devpod-home")`` gives a fresh DEVPOD_HOME. Point the bot at
it with ``standin.env()`` (``DEVPOD_BIN``, ``DEVPOD_HOME``), then assert on what the bot
ran with ``calls()``, inject failures with ``inject(...)`` and read the local state with
``workspace(id)``. See the docstring of ``tests/standin/devpod`` for the rules.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

BINARY = Path(__file__).with_name("devpod")

__all__ = ["BINARY", "DevPodStandIn"]


class DevPodStandIn:
    """Handle on one DEVPOD_HOME used by the stand-in binary."""

    def __init__(
        self, home: Path, *, provider_configured: bool = False, context: str = "default", version: str | None = None
    ) -> None:
        self.home = Path(home)
        self.binary = BINARY
        self.context = context
        self.version = version
        self.home.mkdir(parents=True, exist_ok=True)
        if provider_configured:
            cfg_path = self.home / "standin-config.json"
            cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {"contexts": {}}
            cc = cfg["contexts"].setdefault(context, {"defaultProvider": "", "providers": {}, "options": {}})
            cc["providers"]["kubernetes"] = {"initialized": True, "options": {}, "creationTimestamp": None}
            cc["defaultProvider"] = "kubernetes"
            cfg_path.write_text(json.dumps(cfg))

    @property
    def search_path(self) -> str:
        """PATH with the test interpreter's directory first.

        The stand-in's ``#!/usr/bin/env python3`` then skips slow launcher shims (a pyenv
        shim costs ~150 ms per call); it only needs the standard library.
        """
        return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])

    def env(self) -> dict[str, str]:
        """Environment variables that point the bot at this stand-in (DEVPOD_BIN, DEVPOD_HOME, PATH)."""
        env = {"DEVPOD_BIN": str(self.binary), "DEVPOD_HOME": str(self.home), "PATH": self.search_path}
        if self.version:
            env["DEVPOD_STANDIN_VERSION"] = self.version
        return env

    def calls(self, command: str | None = None) -> list[dict]:
        """Every recorded invocation, oldest first; ``command`` like "up" or "provider add"."""
        path = self.home / "standin-calls.jsonl"
        if not path.exists():
            return []
        calls = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [c for c in calls if command is None or c["command"] == command]

    def inject(self, **rule: object) -> None:
        """Append a fault rule, e.g. ``inject(command="up", exit=1, stderr_lines=[...])``."""
        path = self.home / "standin-faults.json"
        with open(self.home / ".standin-faults.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            rules = json.loads(path.read_text()) if path.exists() else []
            rules.append(rule)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(rules))
            os.replace(tmp, path)

    def op_spans(self) -> list[dict]:
        """Every run of ``up``, ``stop`` or ``delete``: {"ws", "command", "pid", "start", "end"} (end None:
        it never said it ended, e.g. SIGKILLed), from the stand-in's ``standin-ops.jsonl``."""
        path = self.home / "standin-ops.jsonl"
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        spans: list[dict] = []
        running: dict[int, dict] = {}
        for e in lines:
            if e["edge"] == "start":
                running[e["pid"]] = {"ws": e["ws"], "command": e["command"], "pid": e["pid"], "start": e["time"],
                                     "end": None}
                spans.append(running[e["pid"]])
            elif e["pid"] in running:
                running.pop(e["pid"])["end"] = e["time"]
        return spans

    def overlaps(self) -> list[tuple[dict, dict]]:
        """Pairs of runs by two processes on one workspace at the same time (DevPod's own workspace lock
        aside: the bot must never ask for that). A run that never ended counts as running to the end."""
        found = []
        spans = self.op_spans()
        for i, a in enumerate(spans):
            for b in spans[i + 1:]:
                a_end = a["end"] if a["end"] is not None else float("inf")
                b_end = b["end"] if b["end"] is not None else float("inf")
                if a["ws"] == b["ws"] and a["pid"] != b["pid"] and a["start"] < b_end and b["start"] < a_end:
                    found.append((a, b))
        return found

    def assert_no_overlap(self) -> None:
        """No two processes ever ran operations on one workspace at the same time."""
        found = self.overlaps()
        assert not found, "two DevPod processes ran on one workspace at once:\n" + "\n".join(
            f"{a['command']} (pid {a['pid']}) and {b['command']} (pid {b['pid']}) on {a['ws']}" for a, b in found)

    def faults(self) -> list[dict]:
        """Rules not consumed yet."""
        path = self.home / "standin-faults.json"
        return json.loads(path.read_text()) if path.exists() else []

    def hanging(self) -> bool:
        """Whether a ``hang`` rule has fired (a phase rule is taken at start but fires later)."""
        return (self.home / "standin-hanging").exists()

    def workspace(self, ws_id: str) -> dict | None:
        """The stored ``workspace.json`` of ``ws_id``, or None."""
        path = self.home / "contexts" / self.context / "workspaces" / ws_id / "workspace.json"
        return json.loads(path.read_text()) if path.exists() else None

    def workspace_result(self, ws_id: str) -> dict | None:
        path = self.home / "contexts" / self.context / "workspaces" / ws_id / "workspace_result.json"
        return json.loads(path.read_text()) if path.exists() else None

    def cluster(self, ws_id: str) -> dict | None:
        """The emulated cluster objects of ``ws_id``: ``{"pvc": bool, "pod": "Running"|None, "starts": n}``."""
        ws = self.workspace(ws_id)
        if ws is None:
            return None
        path = self.home / "standin-cluster" / f"{ws['uid']}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def set_cluster(self, ws_id: str, **changes: object) -> None:
        """Change the emulated cluster, e.g. ``set_cluster(ws, pod="Failed")`` or ``pvc=False``."""
        ws = self.workspace(ws_id)
        assert ws is not None, f"no workspace {ws_id}"
        path = self.home / "standin-cluster" / f"{ws['uid']}.json"
        state = json.loads(path.read_text()) if path.exists() else {"pvc": False, "pod": None, "starts": 0}
        state.update(changes)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state))

    def set_refs(self, repo: str, refs: dict[str, str]) -> None:
        """What the remote ``repo`` ("owner/repo") has, e.g. ``{"refs/pull/2/head": sha}``: what ``up`` clones."""
        path = self.home / "standin-refs.json"
        known = json.loads(path.read_text()) if path.exists() else {}
        known.setdefault(repo, {}).update(refs)
        path.write_text(json.dumps(known))

    def content_dir(self, ws_id: str) -> Path:
        """Where ``up`` clones the source on the bot's host (DevPod's local agent; CONTRACT §1.2)."""
        return self.home / "agent" / "contexts" / self.context / "workspaces" / ws_id / "content"

    def container_dir(self, ws_id: str) -> Path:
        """Where ``ssh --command`` runs: the emulated container's workspace folder."""
        return self.home / "standin-workspaces" / ws_id

    def context_options(self) -> dict[str, str]:
        path = self.home / "standin-config.json"
        if not path.exists():
            return {}
        cfg = json.loads(path.read_text())
        return cfg["contexts"].get(self.context, {}).get("options", {})

    def provider_options(self, name: str = "kubernetes") -> dict[str, str] | None:
        path = self.home / "standin-config.json"
        if not path.exists():
            return None
        cfg = json.loads(path.read_text())
        provider = cfg["contexts"].get(self.context, {}).get("providers", {}).get(name)
        return None if provider is None else provider.get("options", {})
