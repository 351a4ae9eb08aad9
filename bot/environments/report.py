"""The report: what a record looks like to people, as pure functions of the record.

The sticky comment, the ``devenv`` check run's title, summary, text and buttons, and the notes the
comment shows are rendered here from an :class:`~bot.environments.journal.EnvRecord` (and the
:class:`~bot.environments.journal.Op` a check run belongs to) and a :class:`Where` (the operator's
settings that show in texts).  Every word comes from ``templates/``: whole messages from their own
templates, short ones from ``templates/environment_words.j2``.  Nothing here does I/O, so a test
renders a comment from a record alone (``tests/test_golden.py``).
"""

from __future__ import annotations

import dataclasses
import signal
from typing import Any

from bot import devpod
from bot.commands.verbs import SYNTAX, USAGE, VERBS
from bot.environments import countdown, states
from bot.environments.journal import Action, EnvRecord, Op
from bot.environments.states import State
from bot.github.pulls import check_output
from bot.text import markdown
from bot.text.templating import environment, render

BUILD_OPS = ("up", "recreate", "reset", "sync")


@dataclasses.dataclass(frozen=True)
class Where:
    """The deployment's settings that show in the texts."""

    prefix: str = "/devenv"
    github_url: str = "https://github.com"
    namespace: str | None = None  # where DevPod puts the pods (None: DevPod's default, "devpod")
    label_prefix: str = "devenv-bot.dev"
    preview_domain: str | None = None  # DEVENV_PREVIEW_DOMAIN, when browser links are configured
    ssh_host: str | None = None  # DEVENV_SSH_HOST, when the SSH gateway is on
    ssh_port: int = 22
    ssh_permission: str = "write"

    @classmethod
    def of(cls, settings: Any, dp: Any = None) -> Where:
        """From the bot's settings (``bot.settings.config.Settings``) and DevPod's (default: the settings')."""
        dp = dp if dp is not None else settings.devpod
        exposure = settings.exposure
        gateway = getattr(settings, "gateway", None)
        return cls(prefix=settings.command_prefix, github_url=settings.github_url,
                   namespace=dp.namespace if dp is not None else None,
                   label_prefix=dp.label_prefix if dp is not None else cls.label_prefix,
                   preview_domain=exposure.domain if exposure is not None else None,
                   ssh_host=gateway.host if gateway is not None else None,
                   ssh_port=gateway.public_port if gateway is not None else 22,
                   ssh_permission=gateway.permission if gateway is not None else "write")


def words() -> Any:
    """``templates/environment_words.j2`` as a module: its tables and macros."""
    return environment().get_template("environment_words.j2").module


# ------------------------------------------------------------------ the sticky comment

def access(record: EnvRecord, where: Where) -> dict[str, Any]:
    """The ways into the environment the texts list."""
    label_key = f"{where.label_prefix}/workspace"
    namespace = where.namespace or "devpod"  # DevPod's default unless KUBERNETES_NAMESPACE says otherwise (§5.1)
    preview = where.preview_domain
    return {
        "devpod_ssh": f"devpod ssh {record.ws_id}",
        "ssh": f"ssh {record.ws_id}.devpod",
        "kubectl": (f"kubectl exec -it -n {namespace} "
                    f"$(kubectl get pod -n {namespace} -l {label_key}={record.ws_id} -o name) -- bash"),
        "ide_host": f"code-{record.ws_id}.{preview}" if preview else None,
        "preview_domain": preview,
        "gateway": gateway_access(record.ws_id, where),
    }


def gateway_access(ws_id: str, where: Where) -> dict[str, Any] | None:
    """The SSH gateway's ways in (docs/ssh.md), or None when it is off.  ``LOGIN``: the reader's GitHub login."""
    if not where.ssh_host:
        return None
    host, port, user = where.ssh_host, where.ssh_port, f"LOGIN+{ws_id}"
    folder = f"/workspaces/{ws_id}"  # DevPod's default workdir (CONTRACT §3)
    return {
        "ssh": f"ssh {'' if port == 22 else f'-p {port} '}{user}@{host}",
        "config": f"Host {ws_id}\n  HostName {host}\n  Port {port}\n  User {user}",
        "vscode": f"vscode://vscode-remote/ssh-remote+{ws_id}{folder}",
        "jetbrains": (f"jetbrains-gateway://connect#type=ssh&deploy=false&host={host}&port={port}"
                      f"&user=LOGIN%2B{ws_id}&projectPath={folder}"),
        "permission": where.ssh_permission,
    }


def comment_body(record: EnvRecord, where: Where) -> str:
    return render("comment.md.j2", r=record, prefix=where.prefix, access=access(record, where),
                  ways_in=states.shows_ways_in(record.state), outcome=lambda action: outcome(record, action),
                  commands=[(SYNTAX[v], USAGE[v]) for v in VERBS], countdown=countdown_view(record))


def countdown_view(record: EnvRecord) -> dict[str, Any]:
    """The countdown the comment shows, as of when it was worked out (``countdown_at``):
    ``stop`` / ``delete``: (the time in UTC, "in about …"); ``warned``: the stop is near and warned of."""
    at = record.countdown_at
    if at is None:
        return {"stop": None, "delete": None, "warned": False}

    def when(deadline: float | None) -> tuple[str, str] | None:
        if deadline is None:
            return None
        return markdown.utc(deadline), f"in {countdown.about(deadline - at)}"

    stop = when(record.stop_at) if record.state == State.RUNNING else None
    return {"stop": stop, "delete": when(record.delete_at) if states.expires_when_unused(record.state) else None,
            "warned": stop is not None and countdown.warned(record, record.stop_at)}


def outcome(record: EnvRecord, action: Action) -> str:
    """How ``action`` ended, as the comment says it: ``in progress`` (not ``queued``) once its operation
    runs, so the last action agrees with the state line."""
    running = record.op is not None and record.op.kind == action.verb and record.state != State.QUEUED
    return "in progress" if action.outcome == "queued" and running else action.outcome


def paused_note(record: EnvRecord, where: Where) -> str:
    """Why an untrusted PR's environment is not (or no longer) built, and who can change that."""
    return str(words().paused_note(record.approved_sha, where.prefix))


def blocked_note(where: Where) -> str:
    return str(words().blocked_note(where.prefix))


# ------------------------------------------------------------------ the check run

def verb(kind: str) -> str:
    return str(words().verbs[kind])


def title(op: Op) -> str:
    """The running operation's title ("Creating the environment", maybe "(resumed …)")."""
    return verb(op.kind) + (words().titles["resumed"] if op.resumed else "")


def queued_title(op: Op) -> str:
    return str(words().queued_title(verb(op.kind)))


def position_title(ahead: int) -> str:
    return str(words().ahead_title(ahead)) if ahead else str(words().titles["next_in_line"])


def phase_title(op: Op, phase: str) -> str:
    return str(words().phase_title(title(op), phase))


def fixed_title(name: str) -> str:
    """One of the titles without fields: ``blocked``, ``unapproved``, ``paused``, ``cancelled``, ``internal_error``."""
    return str(words().titles[name])


def dropped_title(why: str) -> str:
    return str(words().dropped_title(why))


def conclusion_title(kind: str, conclusion: str) -> str:
    """The title of a concluded operation: success, failure or timed_out."""
    if conclusion == "success":
        return fixed_title(SUCCESS_TITLES.get(kind, "ready" if kind in BUILD_OPS else "done"))
    macro = words().failed_title if conclusion == "failure" else words().timed_out_title
    return str(macro(verb(kind)))


#: The title of a stop's or a delete's success: it says the state the environment is left in.
SUCCESS_TITLES = {"stop": "stopped", "delete": "deleted"}


def shown_conclusion(kind: str, conclusion: str | None) -> str | None:
    """The conclusion the check run shows: a stop or delete that worked leaves nothing to use, so it
    is ``neutral`` (grey), not a green "success" that reads as "ready"."""
    return "neutral" if conclusion == "success" and kind in SUCCESS_TITLES else conclusion


def ide_url(record: EnvRecord) -> str | None:
    """The browser IDE's link, once exposed (the comment's "VS Code in the browser" row)."""
    if record.ide == "none":
        return None
    return next((link["url"] for link in record.links if link.get("name") == "code"), None)


def check_summary(record: EnvRecord, op: Op, where: Where) -> str:
    cause = devpod.likely_cause(record.errors) if record.errors else None
    return render("check_summary.md.j2", r=record, op=op, prefix=where.prefix, ssh=access(record, where),
                  cause=words().causes[cause] if cause else None, ide_url=ide_url(record))


def check_texts(record: EnvRecord, op: Op, where: Where) -> tuple[str, str | None]:
    """The summary and (when there are errors) the text of the check run."""
    return check_summary(record, op, where), render("check_text.md.j2", r=record) if record.errors else None


def buttons(record: EnvRecord, conclusion: str | None, *, on_head: bool = True) -> list[dict[str, str]]:
    """The check run's buttons (at most three), for what can be done next in the state it shows
    (``on_head``: the check run is on the PR's current head, so an approval from it would pin that head)."""
    if conclusion in ("failure", "timed_out", "cancelled"):
        chosen = ["retry", "recreate", "delete"]
    elif conclusion == "action_required" and waits_for_approval(record):
        chosen = ["approve"] if on_head else []
    elif record.state == State.RUNNING:  # Extend replaces Recreate (a repair, on every failed run) when it stops idle
        chosen = ["extend", "stop", "delete"] if record.idle_stop is not None else ["recreate", "stop", "delete"]
    elif record.state == State.STOPPED:
        chosen = ["wake", "extend", "delete"] if record.delete_after is not None else ["wake", "delete"]
    elif record.state in (State.DELETED, State.NONE) and conclusion == "neutral":
        chosen = [] if record.closed else ["create"]
    else:
        chosen = ["retry"]
    table = words().buttons
    return [{"label": table[ident][0], "identifier": ident, "description": table[ident][1]} for ident in chosen[:3]]


#: How the check run shows a state no operation of its own concluded (``status`` found it, or a push
#: carried it to a new head): as the operation that would have left it there, and its conclusion.
STATE_CHECKS: dict[State, tuple[str, str]] = {State.RUNNING: ("up", "success"), State.STOPPED: ("stop", "success"),
                                              State.DELETED: ("delete", "success"), State.NONE: ("delete", "success")}


def waits_for_approval(record: EnvRecord) -> bool:
    """Is the PR's code untrusted and its head not the approved commit (only a writer's approval builds it)?"""
    return record.trusted is False and record.approved_sha != record.head_sha


def details_url(record: EnvRecord, where: Where) -> str:
    """The page the check run's "Details" opens: the IDE while it runs, else the PR, whose comment says what."""
    ide = ide_url(record) if record.state == State.RUNNING else None
    return ide or f"{where.github_url}/{record.owner}/{record.repo}/pull/{record.number}"


def check_run(record: EnvRecord, op: Op, where: Where, *, status: str, title: str, conclusion: str | None = None,
              summary: str | None = None) -> dict[str, Any]:
    """One whole write of ``op``'s check run showing ``record``: the fields of ``PATCH check-runs``.

    Buttons and Details only once completed (GitHub shows buttons on completed runs alone); the
    conclusion as shown (:func:`shown_conclusion`); an Approve button only on the current head."""
    shown = shown_conclusion(op.kind, conclusion)
    default_summary, text = check_texts(record, op, where)
    completed = status == "completed"
    return {"status": status, "conclusion": shown, "output": check_output(title, summary or default_summary, text),
            "actions": buttons(record, shown, on_head=op.head_sha == record.head_sha) if completed else None,
            "details_url": details_url(record, where) if completed else None}


def waiting_check_run(record: EnvRecord, where: Where) -> dict[str, Any]:
    """The check run of a head that waits for a writer's approval (``action_required``, Approve)."""
    return {"status": "completed", "conclusion": "action_required",
            "output": check_output(**waiting_texts(record, where)),
            "actions": buttons(record, "action_required"), "details_url": details_url(record, where)}


def waiting_texts(record: EnvRecord, where: Where) -> dict[str, str]:
    """The check run of a head that waits for a writer's approval: its title and summary."""
    return {"title": fixed_title("unapproved"),
            "summary": render("check_waiting.md.j2", r=record, prefix=where.prefix,
                              note=paused_note(record, where))}


def outcome_title(kind: str, conclusion: str, event: states.Event | None, *, wrong_commit: bool = False) -> str:
    """The title of an operation's end; ``action_required`` says what it waits for."""
    if wrong_commit:
        return fixed_title("wrong_commit")
    if conclusion == "action_required":
        return fixed_title("blocked" if event is states.Event.SYNC_BLOCKED else "unapproved")
    return conclusion_title(kind, conclusion)


def starting_phase() -> str:
    return str(words().starting_phase)


def cancelled_summary() -> str:
    return str(words().cancelled_summary)


# ------------------------------------------------------------------ notes and the bot's own error lines

def links_failed_note(reason: str, where: Where) -> str:
    return str(words().links_failed_note(reason, where.prefix))


def links_refused_note(refused: list[str]) -> str:
    return str(words().links_refused_note(refused))


def timed_out_error(seconds: float) -> str:
    return str(words().timed_out_error(seconds))


def took(seconds: float) -> str:
    """A duration as people say it: ``45 s``, ``10 min``, ``1 h 5 min``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = round(whole / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def killed_error(kind: str, phase: str | None, seconds: float, limit: float | None = None) -> str:
    """What devenv-bot stopped when it ended DevPod itself (a time limit, or ``limit`` None: a cancel).

    DevPod v0.6.15 dies at once on SIGTERM and says nothing (CONTRACT §9), so the bot tells."""
    return str(words().killed_error(verb(kind), phase, took(seconds), limit))


def signal_error(number: int) -> str:
    """DevPod was ended by a signal devenv-bot did not send (an operator, the kernel's OOM killer)."""
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return str(words().signal_error(name))


def cancel_reason(name: str) -> str:
    """Why a running operation was cancelled: ``cancelled`` or ``shutdown``."""
    return str(words().cancel_reasons[name])


def state_after_note(state: str | None, kind: str, where: Where) -> str:
    """What ``devpod status`` found after the bot ended DevPod, and what to do next (None: unknown)."""
    return str(words().state_after_note(state, kind in BUILD_OPS, where.prefix)).strip()


def wrong_commit_error(expected: str, got: str | None) -> str:
    return str(words().wrong_commit_error(expected, got))


def wrong_commit_note(expected: str, got: str | None, stopped: bool, where: Where) -> str:
    """Why an untrusted PR's environment is not offered: DevPod cloned another commit than the approved one."""
    return str(words().wrong_commit_note(expected, got, stopped, where.prefix))


def exit_code_error(code: int) -> str:
    return str(words().exit_code_error(code))


def still_listed_error() -> str:
    return str(words().still_listed)


def internal_error(exc: BaseException) -> str:
    return str(words().internal_error(exc.__class__.__name__))


def no_devpod_error(exc: BaseException, binary: str) -> str:
    return str(words().no_devpod_error(exc.__class__.__name__, binary))
