"""What an agent run shows: the words of its outcomes and the ``devenv agent`` check run's texts.

Pure: the run service (:mod:`bot.agent.runs`) and the restart recovery (:mod:`bot.agent.recovery`)
render through here, so a run that ends normally and one a restart ended read alike.
"""

from __future__ import annotations

from bot.agent.progress import Progress, render_progress
from bot.text.markdown import escape, fenced, truncate_bytes
from bot.text.templating import render

__all__ = ["CHECK_NAME", "CONCLUSIONS", "HEADLINES", "OUTCOMES", "TITLES", "check_summary", "ended_because",
           "progress_text", "request_quote", "restart_comment", "restart_message"]

CHECK_NAME = "devenv agent"
#: How much of the request is quoted in the check run and the final comment (UTF-8 bytes).
REQUEST_QUOTE_BYTES = 2000
#: What stands for the request once it is gone (the ledger keeps no prompt).
UNKNOWN_REQUEST = "_(not kept across the restart)_"

TITLES = {
    "success": "The agent finished",
    "failure": "The agent run failed",
    "cancelled": "The agent run was cancelled",
    "timed_out": "The agent run timed out",
    "missing_agent": "The coding agent is not installed in this environment",
}
HEADLINES = {
    "success": "the agent finished the run you asked for",
    "failure": "the agent run you asked for failed",
    "cancelled": "the agent run you asked for was cancelled",
    "timed_out": "the agent run you asked for hit its time limit and was stopped",
    "missing_agent": "the agent run you asked for could not start: the coding agent is not installed in "
                     "this environment",
}
CONCLUSIONS = {"success": "success", "failure": "failure", "cancelled": "cancelled", "timed_out": "timed_out",
               "missing_agent": "action_required"}
#: How a run ends, as ``devenv_agent_runs_total`` counts it (``error``: a bug in the bot ended it).
OUTCOMES = (*CONCLUSIONS, "error")

#: What each environment operation that ends a run does to the environment.
_DOES = {"stop": "stopped", "delete": "deleted", "recreate": "rebuilt", "reset": "reset"}


def request_quote(prompt: str) -> str:
    return fenced(truncate_bytes(prompt, REQUEST_QUOTE_BYTES))


def progress_text(progress: Progress | None, status: str, *, limit: int) -> str:
    if progress is None:
        return ""
    return render_progress(progress, status=status, limit_bytes=limit)


def check_summary(*, requested_by: str, stopped_by: str | None, prompt: str | None, message: str, note: str | None,
                  progress: str) -> str:
    """The check run's summary (``prompt`` None: not known any more, as after a restart)."""
    return render("agent_check.md.j2", requested_by=requested_by, stopped_by=stopped_by,
                  request=request_quote(prompt) if prompt is not None else UNKNOWN_REQUEST,
                  message=message, note=note, progress=progress)


def ended_because(kind: str, requested_by: str, command: str | None) -> str:
    """Why an environment operation ended the run (``command``: the comment's command, if one asked)."""
    does = _DOES.get(kind, kind)
    who = f"{escape(requested_by)} ran `{command}`" if command else f"asked for by {escape(requested_by)}"
    return (f"The agent run was stopped because the environment is being {does} ({who}); the agent cannot "
            f"work in it meanwhile. Ask again once the environment is back.")


def restart_comment(requested_by: str, prefix: str) -> str:
    """The final comment of a run a restart interrupted (posted once: the ledger marks it ended first)."""
    return render("agent_result.md.j2", login=requested_by, headline=HEADLINES["cancelled"], stopped_by=None,
                  request=UNKNOWN_REQUEST, message=restart_message(f"{prefix} agent run"), note=None, progress="",
                  tail="")


def restart_message(command: str) -> str:
    return ("devenv-bot restarted while this agent run was going, so it could not be followed to its end; the "
            "agent was stopped if it was still running. Anything it already pushed stays. To carry on, run it "
            f"again: `{command} \"…\"`.")
