"""The agent runs' ledger: one small file per run under ``<DEVENV_STATE_DIR>/agent-runs/``.

Runs live in memory while they go; this is what a crash leaves behind, so the next start can
end each one visibly (:meth:`bot.agent.runs.AgentRuns.recover`). A file is written when a run is
accepted, again once its ``devenv agent`` check run exists, and again when it ends, with the
final check-run write already rendered (``final``); it is removed once that write reached
GitHub. So on start-up an entry is either

* ``running``: the bot died during the run; it is concluded ``cancelled`` saying so, and the
  remote agent is ended if the workspace is running; or
* ``ended``: the outcome was decided but not (all) written; it is written again.

Each write replaces the file atomically (written to a temporary file, fsynced, renamed), as
:mod:`bot.environments.journal` does for environments; an unreadable file is moved aside and
logged, never silently dropped. The files hold no secret: not the prompt, no token.

With ``DEVENV_STATE_BACKEND=kubernetes`` the same entries live in the cluster instead
(:class:`bot.replicas.records_runs.ClusterRunLedger`, chosen by :func:`open_ledger`), where other
replicas see them: :meth:`Ledger.running_on` (who runs on a workspace), :meth:`Ledger.request_end`
and :meth:`Ledger.end_request` (one replica asks the one running a run to end it). One process has
nobody else to ask: the file ledger answers "none".
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from bot.core.files import set_aside, write_atomic
from bot.github.pulls import PullRef
from bot.replicas.records import ClusterRecords
from bot.replicas.records_runs import ClusterRunLedger

log = logging.getLogger(__name__)

__all__ = ["ClusterLedger", "Ledger", "RunEntry", "open_ledger"]


@dataclasses.dataclass
class RunEntry:
    """What the ledger keeps of one run."""

    run_id: str
    ws_id: str
    installation_id: int
    owner: str
    repo: str
    number: int
    head_sha: str
    requested_by: str
    started_at: float
    comment_id: int | None = None
    check_run_id: int | None = None
    state: str = "running"  # "running" | "ended"
    #: The final check-run write once the run ended: {"status", "conclusion", "output", "details_url"}.
    final: dict[str, Any] | None = None

    @property
    def ref(self) -> PullRef:
        return PullRef(self.installation_id, self.owner, self.repo, self.number)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class Ledger:
    """The files of the runs the bot has not finished with."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "agent-runs"

    def _path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.json"

    def save(self, entry: RunEntry) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self._path(entry.run_id), json.dumps(entry.to_json(), separators=(",", ":")), durable=True)

    def forget(self, run_id: str) -> None:
        self._path(run_id).unlink(missing_ok=True)

    def load_all(self) -> list[RunEntry]:
        entries = []
        for path in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                entries.append(RunEntry.from_json(json.loads(path.read_bytes())))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                try:
                    moved = f": moved to {set_aside(path)}"
                except OSError:
                    moved = ""
                log.error("agent run file %s cannot be read (%s)%s; its `devenv agent` check run, if any, stays "
                          "as it is", path, exc, moved)
        return entries

    def running_on(self, ws_id: str) -> list[RunEntry]:
        """Other replicas' unfinished runs on ``ws_id`` (one process: none)."""
        return []

    def request_end(self, entry: RunEntry, why: dict[str, Any], mark: str = "end") -> bool:
        """Ask the replica running ``entry`` to end it (``mark``: "end" for an environment operation, "stop"
        for ``agent stop``); False when it is not journalled (one process: never)."""
        return False

    def end_request(self, entry: RunEntry) -> dict[str, dict[str, Any]]:
        """What other replicas asked of ``entry``: {mark: why}, empty when nothing."""
        return {}


class ClusterLedger(Ledger):
    """The same verbs, the entries in the cluster (:class:`~bot.replicas.records_runs.ClusterRunLedger`)."""

    def __init__(self, store: ClusterRunLedger[RunEntry]) -> None:  # no directory: nothing on disk
        self.store = store

    def save(self, entry: RunEntry) -> None:
        self.store.save(entry)

    def forget(self, run_id: str) -> None:
        self.store.forget(run_id)

    def load_all(self) -> list[RunEntry]:
        return self.store.load_all()

    def running_on(self, ws_id: str) -> list[RunEntry]:
        found = []
        for run_id, item in self.store.items_of(ws_id).items():
            if item.get("replica") == self.store.replica or not isinstance(item.get("entry"), dict):
                continue
            try:
                entry = RunEntry.from_json(dict(item["entry"]))
            except (ValueError, TypeError, KeyError) as exc:
                log.error("agent run %s in DevEnvironment %s cannot be read (%s)", run_id, ws_id, exc)
                continue
            if entry.state != "ended":
                found.append(entry)
        return found

    def request_end(self, entry: RunEntry, why: dict[str, Any], mark: str = "end") -> bool:
        return self.store.request_end(entry.ws_id, entry.run_id, why, mark)

    def end_request(self, entry: RunEntry) -> dict[str, dict[str, Any]]:
        return self.store.end_request(entry.ws_id, entry.run_id)


def open_ledger(journal: object, state_dir: Path) -> Ledger:
    """Where runs are journalled: beside the environments' records (``journal``, the manager's): in
    their DevEnvironment objects when those are in the cluster, else in files under ``state_dir``."""
    if isinstance(journal, ClusterRecords):
        return ClusterLedger(ClusterRunLedger(journal, RunEntry.from_json))
    return Ledger(state_dir)
