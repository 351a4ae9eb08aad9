"""Where an environment started from: a prebuilt image (which, built from which commit) or from scratch,
and why, read from ``devpod up``'s output and the ledger.

DevPod logs ``Found existing prebuilt image <ref>`` at info when ``up --prebuild-repository`` finds
``<repository>:<prebuild hash>`` (CONTRACT §10); when it does not, it says nothing at info (a registry it
could not reach is logged at debug only) and builds.  So the reasons told apart are: no prebuild of the
base branch yet, and the devcontainer differing from the base branch's prebuild (changed in the pull
request, or the base branch moved on since) or the registry not answering; a debug line, when DevPod
prints one, settles the last.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from bot import devpod
from bot.prebuilds import plan
from bot.prebuilds.ledger import PrebuildLedger

__all__ = ["StartWatch"]

_UNREACHABLE: Final = re.compile(r"^Error trying to find prebuild image ")


class StartWatch:
    """Wraps an ``up``'s ``on_line``: notes the prebuilt image DevPod found, or a failed lookup."""

    def __init__(self, on_line: Callable[[devpod.LogLine], None]) -> None:
        self.on_line = on_line
        self.found: str | None = None
        self.unreachable = False

    def __call__(self, line: devpod.LogLine) -> None:
        if (m := plan.FOUND.match(line.message)) is not None:
            self.found = m.group(1)
        elif _UNREACHABLE.match(line.message):
            self.unreachable = True
        self.on_line(line)

    def note(self, ledger: PrebuildLedger | None, repo: str, base_ref: str) -> dict[str, Any]:
        """What the comment and check run say: ``{"prebuilt": bool, "image", "sha", "branch", "why"}``."""
        if self.found is not None:
            built = ledger.image(self.found) if ledger is not None else None
            return {"prebuilt": True, "image": self.found, "sha": built.sha if built else None,
                    "branch": built.branch if built else None, "why": None}
        last = ledger.last(repo, base_ref) if ledger is not None and base_ref else None
        if self.unreachable:
            why = "unreachable"
        elif last is None:
            why = "none"
        else:
            why = "differs"
        return {"prebuilt": False, "image": last.image if last else None, "sha": last.sha if last else None,
                "branch": base_ref or None, "why": why}
