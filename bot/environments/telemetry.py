"""What the environment service tells Prometheus: environments by state, DevPod operations, the queue.

The families are declared in :mod:`bot.core.metrics`; this module fills them with values from the
environment service's own fixed vocabularies (the :class:`~bot.environments.states.State` enum,
the operation kinds, :data:`OUTCOMES`), so a label never carries text from a request.  Built with
``None`` (tests that make an :class:`~bot.environments.manager.EnvironmentManager` without a bot)
every call does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.core.metrics import Metrics
from bot.environments.states import State

__all__ = ["KINDS", "OUTCOMES", "EnvironmentMetrics"]

#: The operation kinds (:class:`~bot.environments.journal.Op`).
KINDS = ("up", "recreate", "reset", "sync", "stop", "delete", "status")
#: How an operation ends: a check-run conclusion (``action_required`` reads ``blocked``: a sync held
#: back by uncommitted changes, or a build waiting for a new approval), ``cancelled`` (a delete
#: superseded it) or ``error`` (a bug in the bot).
OUTCOMES = ("success", "failure", "timed_out", "blocked", "cancelled", "error")
_BY_CONCLUSION = {"success": "success", "failure": "failure", "timed_out": "timed_out",
                  "action_required": "blocked", "cancelled": "cancelled"}


def outcome_of(conclusion: str) -> str:
    """The metrics outcome of a check-run conclusion (an unexpected one counts as ``error``)."""
    return _BY_CONCLUSION.get(conclusion, "error")


class EnvironmentMetrics:
    """The environment service's view of the bot's :class:`~bot.core.metrics.Metrics` (or of none)."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        if metrics is None:
            return
        for state in State:  # every state present from the start, 0 when none
            metrics.environments.labels(state.value).set(0)
        for kind in KINDS:
            metrics.devpod_seconds.labels(kind)
            for outcome in OUTCOMES:
                metrics.devpod_operations.labels(kind, outcome)
        metrics.queue_depth.set(0)

    def states(self, counts: Mapping[State, int]) -> None:
        """Set the gauge of every state from the records' counts (whenever a record's state changes,
        or one is added or forgotten: :class:`~bot.environments.journal.Records`)."""
        if self.metrics is None:
            return
        for state in State:
            self.metrics.environments.labels(state.value).set(counts.get(state, 0))

    def operation(self, kind: str, outcome: str, seconds: float | None) -> None:
        """An operation ended; ``seconds`` is how long DevPod ran (None: it never started)."""
        if self.metrics is None:
            return
        self.metrics.devpod_operations.labels(kind, outcome).inc()
        if seconds is not None:
            self.metrics.devpod_seconds.labels(kind).observe(max(0.0, seconds))

    def queue_depth(self, waiting: int) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(waiting)

    def queue_waited(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.queue_wait_seconds.observe(max(0.0, seconds))
