"""The three-way merge that lets two replicas write one record without losing either write.

Records are changed in place by the code and then saved whole. When a save meets a newer version
of the object (409 Conflict: another replica wrote it since this one read it), this replica knows
three versions of the record's JSON: the *base* (as it last read or wrote it), *mine* (what it
wants to write now) and *theirs* (what the cluster holds now). :func:`merge3` keeps theirs and
re-applies only what this replica changed since the base, field by field:

* a scalar field (state, op, comment id, ...) changed here since the base takes this replica's
  value; any other field keeps theirs. When both changed the same field, this replica (the later
  writer) wins: that is what a single process does too, the last save wins;
* a list of entries that are each added or removed whole (the history of actions, the pending
  operations) is merged as a set: entries this replica removed since the base are removed from
  theirs, entries it added are appended (once), so two replicas that each added an action both
  keep theirs. A ``limits`` entry keeps only the newest ``n`` (the history's size);
* ``updated_at`` takes the later of the two.

Pure functions of JSON values; :func:`assign` copies a freshly parsed record's fields into the
object other code already holds, so their references stay valid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["assign", "merge3", "merge_list"]


def merge_list(base: Sequence[Any], mine: Sequence[Any], theirs: Sequence[Any]) -> list[Any]:
    """``theirs`` without what ``mine`` removed from ``base``, plus what ``mine`` added (each once)."""
    removed = [x for x in base if x not in mine]
    added = [x for x in mine if x not in base]
    kept = [x for x in theirs if x not in removed]
    return kept + [x for x in added if x not in kept]


def merge3(base: Mapping[str, Any], mine: Mapping[str, Any], theirs: Mapping[str, Any], *,
           lists: Sequence[str] = (), limits: Mapping[str, int] | None = None) -> dict[str, Any]:
    """``theirs`` with this replica's changes since ``base`` re-applied (see the module docstring)."""
    merged = dict(theirs)
    for key, value in mine.items():
        if key in lists:
            merged[key] = merge_list(base.get(key) or [], value or [], theirs.get(key) or [])
            limit = (limits or {}).get(key)
            if limit is not None:
                merged[key] = merged[key][-limit:]
        elif key == "updated_at":
            merged[key] = max(value or 0, theirs.get(key) or 0)
        elif key not in base or value != base[key]:
            merged[key] = value
    return merged


def assign(target: Any, fresh: Any) -> None:
    """Make the dataclass ``target`` hold ``fresh``'s fields, in place (plain attribute writes: no
    ``__setattr__`` side effects such as a record adding its ``last_action`` to its history)."""
    for field in dataclasses.fields(target):
        object.__setattr__(target, field.name, getattr(fresh, field.name))
