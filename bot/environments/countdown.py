"""When an environment stops or is deleted unless used: the countdown's arithmetic, pure.

Design.  Everything here is a function of a record and of numbers (its last activity, now); no
clock, no I/O.  One function, :func:`deadlines`, says when the idle reaper acts: the reaper decides
with it, the sticky comment shows it, ``/devenv extend`` moves it.  What counts as activity is not
decided here: callers pass the last-activity time (today :meth:`~bot.environments.reaper.IdleReaper.last_active`).

* A running environment stops at ``last activity + idle_stop``; a stopped (or failed) one is
  deleted at ``last activity + delete_after`` (``never``: None).  ``keep_until`` (set by
  ``/devenv extend``) holds back the one named by ``keep_for``: it does not happen before then.
* The comment is edited for the countdown only when a deadline moves *materially*
  (:func:`moved_materially`): by more than 15 minutes and more than a tenth of the time that was
  left.  Each activity moves the stop time; without this rule a busy environment would cost one
  GitHub write per click.  15 minutes is the warning's lead, so a deadline shown is never more than
  that early (activity only moves it later), and a tenth keeps a week-long deletion countdown from
  being edited for every hour of use.
* One warning edit per idle period (:func:`warning_due`): shortly before the stop (15 minutes, a
  quarter of ``idle_stop`` when that is shorter), once for the stop time it warns about.
* ``/devenv extend D`` (:func:`extend`) pushes the next deadline back by ``D``: the stop while
  running (the deletion follows, as it counts from the stop), the deletion while stopped; never
  further than ``maximum`` beyond what using the environment now would give.
"""

from __future__ import annotations

import dataclasses

from bot.environments import activity
from bot.environments.journal import EnvRecord
from bot.environments.states import State, expires_when_unused

#: Material: a deadline moved by more than this (seconds) and more than SHARE of the time left.
MIN_SHIFT = 15 * 60
SHARE = 0.10
#: The warning comes this long before an idle stop (at most a quarter of ``idle_stop``).
WARN_LEAD = 15 * 60


@dataclasses.dataclass(frozen=True)
class Deadlines:
    """When the reaper stops (running) and deletes (stopped or failed) the environment; None: not."""

    stop_at: float | None = None
    delete_at: float | None = None


@dataclasses.dataclass(frozen=True)
class Extension:
    """The outcome of ``/devenv extend``: the new ``keep_until``, which deadline it moved
    (``stop`` or ``delete``), that deadline before, and whether ``maximum`` cut it short."""

    keep_until: float
    what: str
    before: float
    capped: bool


def recorded_activity(record: EnvRecord) -> float:
    """The last activity the record itself knows (:func:`bot.environments.activity.last_active`)."""
    return activity.last_active(record)


def last_active(record: EnvRecord, seen: float | None) -> float:
    """The latest of the record's own activity (what counts: :mod:`bot.environments.activity`) and
    ``seen`` (activity known elsewhere)."""
    return activity.last_active(record, also=seen)


def deadlines(record: EnvRecord, last_activity: float) -> Deadlines:
    """When the idle reaper acts on ``record`` whose last activity was at ``last_activity``."""
    if record.state == State.RUNNING and record.idle_stop is not None:
        return Deadlines(stop_at=max(last_activity + record.idle_stop, kept(record, "stop")))
    if expires_when_unused(record.state) and record.delete_after is not None:
        return Deadlines(delete_at=max(last_activity + record.delete_after, kept(record, "delete")))
    return Deadlines()


def kept(record: EnvRecord, what: str) -> float:
    """``keep_until`` if an extension holds back ``what`` (``stop`` or ``delete``), else 0.  An extension
    given while stopped holds back the deletion alone: woken, the environment stops as usual."""
    return record.keep_until or 0.0 if record.keep_for == what else 0.0


def moved_materially(shown: float | None, new: float | None, now: float) -> bool:
    """Should the comment be edited because a deadline went from ``shown`` to ``new``?"""
    if shown is None or new is None:
        return shown != new
    left = max(0.0, shown - now)
    return abs(new - shown) > max(MIN_SHIFT, SHARE * left)


def warn_lead(idle_stop: float) -> float:
    return min(WARN_LEAD, idle_stop / 4)


def warning_due(record: EnvRecord, stop_at: float | None, now: float) -> bool:
    """Is it time to warn of the stop at ``stop_at``, and was that stop not warned of yet?"""
    if stop_at is None or record.idle_stop is None or record.state != State.RUNNING:
        return False
    if warned(record, stop_at):
        return False
    return stop_at - warn_lead(record.idle_stop) <= now < stop_at


def warned(record: EnvRecord, stop_at: float | None) -> bool:
    """Was the warning given for this stop time?  (Activity moves the stop: a new period, a new warning.)"""
    return stop_at is not None and record.warned_for is not None and abs(record.warned_for - stop_at) < 60


def extend(record: EnvRecord, last_activity: float, now: float, duration: float, maximum: float) -> Extension | None:
    """Push the next deadline back by ``duration``, at most ``maximum`` beyond what using the
    environment now gives; None when nothing would happen to it (not running nor stopped, or
    ``never``)."""
    due = deadlines(record, last_activity)
    if due.stop_at is not None:
        what, before, period = "stop", due.stop_at, record.idle_stop
    elif due.delete_at is not None:
        what, before, period = "delete", due.delete_at, record.delete_after
    else:
        return None
    assert period is not None  # a deadline exists only with its period
    cap = now + period + maximum
    wanted = before + duration
    return Extension(keep_until=max(before, min(wanted, cap)), what=what, before=before, capped=wanted > cap)


def stamp(record: EnvRecord, last_activity: float, now: float) -> None:
    """Set what the comment shows (``stop_at``, ``delete_at``) and when it was worked out."""
    due = deadlines(record, last_activity)
    record.stop_at, record.delete_at, record.countdown_at = due.stop_at, due.delete_at, now


def about(seconds: float) -> str:
    """A time left as people say it: ``about 1 h 40 min``, ``about 3 days``, ``less than a minute``."""
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    if minutes < 48 * 60:
        hours, rest = divmod(minutes, 60)
        return f"about {hours} h" + (f" {rest} min" if rest and hours < 10 else "")
    days = round(seconds / 86400)
    return f"about {days} days"
