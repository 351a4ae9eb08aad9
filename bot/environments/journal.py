"""The bot's small on-disk memory of each PR environment, and the records it holds.

One JSON file per workspace under ``<state dir>/environments/``, replaced
atomically on every change.  It records what the bot knows (PR head, the
commit the environment is at, the sticky comment and check run ids) and the
operation in progress, so that after a crash or SIGKILL the bot finds its
unfinished work on start-up and resumes or concludes it visibly.

:class:`Records` is the one place records live in memory: every part of the
environment service reads and saves them through it (stamping ``updated_at``).
:class:`PullInfo` is what a webhook tells about a PR, the input of every request.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bot.cluster.kube import kube_api_client, own_namespace
from bot.core.files import set_aside, write_atomic
from bot.environments.states import State
from bot.github.pulls import PullRef
from bot.replicas.records import ClusterRecords
from bot.replicas.records_merge import assign

log = logging.getLogger(__name__)


#: How many actions a record remembers (the sticky comment's history); the oldest is dropped first.
HISTORY_SIZE = 10


@dataclasses.dataclass
class Action:
    """Who asked for what, when (asked, or ended once it has), and how it ended (``queued`` until then)."""

    verb: str
    by: str
    at: float
    outcome: str = "queued"


def open_journal(settings: Any) -> Journal | ClusterRecords[EnvRecord]:
    """Where records are kept: the state directory's files, or (``DEVENV_STATE_BACKEND=kubernetes``, for
    several replicas) DevEnvironment objects in the bot's namespace (:mod:`bot.replicas.records`)."""
    if getattr(settings, "state_backend", "file") != "kubernetes":
        return Journal(settings.state_dir)
    return ClusterRecords(kube_api_client(settings.kube), own_namespace(settings.kube), EnvRecord.from_json,
                          replica=settings.replica_id, lists=("history", "pending"), limits={"history": HISTORY_SIZE},
                          identity=("ws_id", "installation_id", "owner", "repo", "number", "head_sha"))


def remember(history: list[Action], action: Action, size: int = HISTORY_SIZE) -> list[Action]:
    """``history`` (oldest first) with ``action`` added, at most ``size`` long, oldest dropped first.

    An ended action replaces the queued entries of its verb: its own request, and the requests merged
    into it (those keep their asker and get its outcome), so one command is one entry, not two.
    """
    if action.outcome == "queued":
        kept, merged = list(history), []
    else:
        waiting = [a for a in history if a.outcome == "queued" and a.verb == action.verb]
        kept = [a for a in history if a not in waiting]
        merged = [dataclasses.replace(a, at=action.at, outcome=action.outcome)
                  for a in waiting if a.by != action.by]
    return (kept + merged + [action])[-size:]


@dataclasses.dataclass
class Op:
    """An operation asked for; ``kind`` is up, recreate, reset, sync, stop, delete or status."""

    kind: str
    head_sha: str
    requested_by: str
    requested_at: float
    check_run_id: int | None = None
    comment_id: int | None = None  # the command comment to react to, if any
    also_notify: list[int] = dataclasses.field(default_factory=list)  # merged requests' comments
    resumed: bool = False


@dataclasses.dataclass
class Unpublished:
    """An operation's end that GitHub has not been shown yet: journalled before its check run and
    comment are written, cleared once both are, so a start-up re-publishes what a crash (or a GitHub
    outage outlasting the retries) left unwritten."""

    op: Op
    conclusion: str
    title: str
    summary: str | None = None
    check: bool = True  # the check run's conclusion is still to write
    comment: bool = True  # the sticky comment is still to write

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Unpublished:
        data = dict(data)
        return cls(op=Op(**data.pop("op")), **data)


@dataclasses.dataclass
class EnvRecord:
    ws_id: str
    installation_id: int
    owner: str
    repo: str
    number: int
    head_sha: str
    head_ref: str = ""
    title: str = ""
    author: str = ""
    fork: bool = False
    private: bool = False
    draft: bool | None = None  # as last seen (None: not seen yet); the catch-up stops one that became a draft
    closed: bool = False  # as last seen: a deleted environment's check run offers no Create button then
    trusted: bool | None = None  # None: not decided yet; False: fork or author without write
    approved_sha: str | None = None  # untrusted PRs: the commit a maintainer approved
    approved_by: str | None = None
    # from .github/devenv.yml on the base branch
    ide: str = "openvscode"
    devcontainer_path: str | None = None
    resources: str | None = None
    clone_strategy: str | None = None  # devpod up --git-clone-strategy (None: DevPod's default)
    prebuild: bool = False  # up looks for a prebuilt image (the operator has a registry, the repository agrees)
    base_ref: str = ""
    start: dict | None = None  # where the environment last started from (bot.prebuilds.starts.StartWatch.note)
    ports: list[dict] = dataclasses.field(default_factory=list)  # [{name, port, permission}]
    idle_stop: int | None = 2 * 3600  # seconds without activity before it is stopped (None: never)
    delete_after: int | None = 7 * 24 * 3600  # seconds stopped (or failed) and unused before deletion
    links: list[dict] = dataclasses.field(default_factory=list)  # [{name, url, permission}] once exposed
    settings_note: str | None = None  # what is wrong with that file, if anything
    state: State = State.NONE  # changed only through bot.environments.states.transition
    phase: str | None = None
    env_sha: str | None = None
    comment_id: int | None = None
    check_run_id: int | None = None
    check_sha: str | None = None
    op: Op | None = None
    pending: list[Op] = dataclasses.field(default_factory=list)
    last_action: Action | None = None
    errors: list[str] = dataclasses.field(default_factory=list)
    note: str | None = None
    queued_ahead: int | None = None
    unpublished: Unpublished | None = None
    updated_at: float = 0.0
    history: list[Action] = dataclasses.field(default_factory=list)  # the last actions, oldest first
    active_at: float = 0.0  # last use (bot.environments.activity; 0: none noted yet)
    active_via: str = ""  # and through what: ide, preview, ssh, agent, command, push, stopped
    # the countdown (bot.environments.countdown): neither stopped nor deleted before keep_until (extend);
    # the stop and deletion times the comment shows, worked out at countdown_at; the stop time warned of
    keep_until: float | None = None
    keep_for: str | None = None  # what keep_until holds back: "stop" (set while running) or "delete"
    stop_at: float | None = None
    delete_at: float | None = None
    countdown_at: float | None = None
    warned_for: float | None = None

    def __post_init__(self) -> None:
        self.state = State(self.state)
        self.history = list(self.history)  # never shared with the record it was copied from
        if not self.history and self.last_action is not None:  # a record from before the history was kept
            self.history = [self.last_action]

    def __setattr__(self, name: str, value: Any) -> None:
        """Setting ``last_action`` (as the manager and the executor do) also adds it to :attr:`history`."""
        object.__setattr__(self, name, value)
        if name == "last_action" and value is not None and "history" in self.__dict__:
            object.__setattr__(self, "history", remember(self.history, value))

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    @property
    def ref(self) -> PullRef:
        return PullRef(self.installation_id, self.owner, self.repo, self.number)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EnvRecord:
        data = dict(data)
        op = data.pop("op", None)
        pending = data.pop("pending", None) or []
        action = data.pop("last_action", None)
        history = data.pop("history", None) or []  # records written before the history have none
        unpublished = data.pop("unpublished", None)
        known = {f.name for f in dataclasses.fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in known},
                     last_action=Action(**action) if action else None, history=[Action(**a) for a in history])
        record.op = Op(**op) if op else None
        record.pending = [Op(**p) for p in pending]
        record.unpublished = Unpublished.from_json(unpublished) if unpublished else None
        return record


class Journal:
    #: One process writes here: its memory is the truth (see :meth:`Records.refresh`).
    shared = False

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "environments"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, ws_id: str) -> Path:
        return self.dir / f"{ws_id}.json"

    def save(self, record: EnvRecord) -> None:
        write_atomic(self._path(record.ws_id), json.dumps(record.to_json(), separators=(",", ":")), durable=True)

    def load_all(self) -> list[EnvRecord]:
        records = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                records.append(EnvRecord.from_json(json.loads(path.read_bytes())))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                self._set_aside(path, exc)
        for ws_id in sorted(set(self.set_aside()) - {r.ws_id for r in records}):
            log.error("workspace %s is not tracked: its journal record could not be read and waits in %s. Its "
                      "browser links and workspace are kept (never swept as orphans) until you act: fix the "
                      "file and rename it to %s.json, or `devpod delete %s` and remove the file; then restart",
                      ws_id, self.dir / f"{ws_id}.corrupt", ws_id, ws_id)
        return records

    def set_aside(self) -> list[str]:
        """The workspaces whose record could not be read and was moved aside (``<ws id>.corrupt``): the bot
        does not track them, and must not take their links for orphans either."""
        return sorted(path.stem for path in self.dir.glob("*.corrupt"))

    def _set_aside(self, path: Path, exc: Exception) -> None:
        """Keep a record that cannot be read, out of the way, so a new record never overwrites it."""
        try:
            aside = set_aside(path)
        except OSError as move_error:
            log.error("cannot read journal file %s (%s) nor move it aside (%s)", path, exc, move_error)
            return
        log.error("journal file %s cannot be read (%s): moved to %s", path, exc, aside)

    def forget(self, ws_id: str) -> None:
        self._path(ws_id).unlink(missing_ok=True)

    def was_stored(self, ws_id: str) -> bool:
        return self._path(ws_id).exists()

    def changed(self, ws_id: str) -> bool:
        return True

    def load(self, ws_id: str) -> EnvRecord | None:
        try:
            return EnvRecord.from_json(json.loads(self._path(ws_id).read_bytes()))
        except FileNotFoundError:
            return None


class Records:
    """The records the bot tracks, in memory and in the journal.

    :attr:`counts` is how many records are in each state, kept as records are added, saved (every
    state change is saved) and forgotten; ``on_change`` hears it whenever it changes (the
    environments-by-state gauge follows it), at a constant cost however many records there are.
    """

    def __init__(self, journal: Journal | ClusterRecords[EnvRecord], clock: Callable[[], float],
                 on_change: Callable[[Mapping[State, int]], None] | None = None) -> None:
        self.journal = journal
        self.clock = clock
        self.on_change = on_change
        self.by_id: dict[str, EnvRecord] = {}
        self.counts: collections.Counter[State] = collections.Counter()
        self._counted: dict[str, State] = {}  # ws id -> the state it is counted in

    def _count(self, ws_id: str, state: State | None) -> None:
        """Count ``ws_id`` in ``state`` (None: no longer tracked) instead of where it was."""
        was = self._counted.pop(ws_id, None)
        if was is not None:
            self.counts[was] -= 1
        if state is not None:
            self._counted[ws_id] = state
            self.counts[state] += 1
        if was != state and self.on_change is not None:
            self.on_change(self.counts)

    def load(self) -> None:
        for record in self.journal.load_all():
            self.by_id[record.ws_id] = record
            self._count(record.ws_id, record.state)

    def get(self, ws_id: str) -> EnvRecord | None:
        return self.by_id.get(ws_id)

    def refresh(self, ws_id: str) -> EnvRecord | None:
        """The record as the store holds it now, before a decision on it (another replica may have
        changed it). The file backend has one process, so its memory is the truth: nothing to read.
        With the cluster's store the tracked record is updated IN PLACE (others hold references to
        it); one another replica created is added, one it deleted is dropped."""
        if not self.journal.shared:
            return self.by_id.get(ws_id)
        stored = self.journal.was_stored(ws_id)
        return self._take(ws_id, self.journal.load(ws_id), stored)

    def refresh_all(self) -> None:
        """Pick up every record other replicas created, changed or deleted (the cluster store's poll)."""
        if not self.journal.shared:
            return
        stored = {ws_id for ws_id in self.by_id if self.journal.was_stored(ws_id)}
        fresh = {record.ws_id: record for record in self.journal.load_all()}
        for ws_id in stored - fresh.keys():
            self._take(ws_id, None, True)
        for ws_id, record in fresh.items():
            self._take(ws_id, record, True)

    def _take(self, ws_id: str, fresh: EnvRecord | None, stored: bool) -> EnvRecord | None:
        known = self.by_id.get(ws_id)
        if fresh is None:
            if known is not None and stored:  # deleted by another replica (a new, unsaved record stays)
                self.by_id.pop(ws_id, None)
                self._count(ws_id, None)
                return None
            return known
        if known is None:
            return self.add(fresh)
        if not self.journal.changed(ws_id):  # nobody else wrote it: what is held (maybe unsaved yet) stays
            return known
        assign(known, fresh)
        self._count(ws_id, known.state)
        return known

    def __iter__(self) -> Iterator[EnvRecord]:
        return iter(list(self.by_id.values()))

    def add(self, record: EnvRecord) -> EnvRecord:
        self.by_id[record.ws_id] = record
        self._count(record.ws_id, record.state)
        return record

    def save(self, record: EnvRecord) -> None:
        record.updated_at = self.clock()
        self.journal.save(record)
        if self.by_id.get(record.ws_id) is record:
            self._count(record.ws_id, record.state)

    def forget(self, ws_id: str) -> None:
        self.journal.forget(ws_id)
        self.by_id.pop(ws_id, None)
        self._count(ws_id, None)


@dataclasses.dataclass(frozen=True)
class PullInfo:
    """What the environment service needs to know about a PR, taken from a webhook payload."""

    ref: PullRef
    head_sha: str
    head_ref: str = ""
    title: str = ""
    author: str = ""
    fork: bool = False
    private: bool = False
    base_sha: str = ""
    draft: bool | None = None  # None: the source does not say
    closed: bool | None = None  # None: the source does not say
    base_ref: str = ""  # the base branch (prebuilds are per base branch)

    @classmethod
    def from_payload(cls, installation_id: int, pr: dict[str, Any], repository: dict[str, Any]) -> PullInfo:
        head_repo = (pr.get("head") or {}).get("repo") or {}
        return cls(
            ref=PullRef(installation_id, repository["owner"]["login"], repository["name"], pr["number"]),
            head_sha=pr["head"]["sha"],
            head_ref=pr["head"].get("ref", ""),
            title=pr.get("title") or "",
            author=(pr.get("user") or {}).get("login", ""),
            fork=head_repo.get("full_name") != repository["full_name"],
            private=bool(repository.get("private")),
            base_sha=(pr.get("base") or {}).get("sha", ""),
            base_ref=(pr.get("base") or {}).get("ref", ""),
            draft=pr["draft"] if isinstance(pr.get("draft"), bool) else None,
            closed=pr["state"] == "closed" if pr.get("state") in ("open", "closed") else None,
        )

    @classmethod
    def of(cls, record: EnvRecord) -> PullInfo:
        """What a record remembers of its PR (for requests the bot makes itself, e.g. the idle reaper)."""
        return cls(ref=record.ref, head_sha=record.head_sha, head_ref=record.head_ref, title=record.title,
                   author=record.author, fork=record.fork, private=record.private, draft=record.draft)
