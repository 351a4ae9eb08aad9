"""Which deliveries were already acted on, remembered across restarts.

GitHub never redelivers on its own, but an operator can redeliver any delivery by hand
(it keeps its ``X-GitHub-Delivery``), often just after a restart -- or after a failure.  So a
delivery is remembered as handled only once its handlers have all run without an exception
(:meth:`SeenDeliveries.finish`); until then it is *in flight* (in memory only), and a duplicate
arriving meanwhile is not acted on twice.  One whose handlers failed, or that a restart cut
short, is forgotten, so redelivering it acts on it again.  The last ``capacity`` handled ids
live in memory and in an append-only file in the state directory, rewritten with only the
newest ids when it grows to twice that.

The web side asks through :class:`Deliveries` (:meth:`~Deliveries.claim`, :meth:`~Deliveries.done`),
which several replicas implement with markers in the cluster (``bot.replicas.deliveries``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol, TextIO

from cachetools import LRUCache

log = logging.getLogger(__name__)


def _key(delivery_id: str) -> str:
    # Ids are GitHub's GUIDs; anything else is made one line so the file stays parseable.
    return delivery_id.replace("\n", " ").replace("\r", " ")[:200]


class Deliveries(Protocol):
    """What the webhook endpoint asks: is this delivery to be acted on here, and how did that go."""

    async def claim(self, delivery_id: str, *, run: bool) -> bool:
        """True: act on it (``run``: it goes to its handlers, in flight until :meth:`done`; else it is
        handled already, e.g. no handler wants it). False: a duplicate, handled or in flight."""
        ...

    async def done(self, delivery_id: str, *, handled: bool) -> None:
        """Its handlers are done: remember it if they all succeeded, else let a redelivery through."""
        ...

    def close(self) -> None: ...


class SeenDeliveries:
    def __init__(self, state_dir: Path, capacity: int = 10_000) -> None:
        self.path = state_dir / "deliveries.log"
        self.capacity = capacity
        self._ids: LRUCache[str, None] = LRUCache(maxsize=capacity)
        self._in_flight: set[str] = set()  # handed to the handlers, not finished yet
        self._lines = 0
        state_dir.mkdir(parents=True, exist_ok=True)
        lines = self._read()
        for delivery_id in lines[-capacity:]:
            self._ids[delivery_id] = None
        self._lines = len(lines)
        self._file: TextIO | None = None  # opened on the first delivery, kept open for appends

    def _read(self) -> list[str]:
        """The ids in the file; a line that is not UTF-8 (a torn write, a disk error) is skipped, not fatal."""
        try:
            raw = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("cannot read %s (%s): redeliveries from before the restart will be acted on again",
                        self.path, exc)
            return []
        lines = []
        for line in raw:
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                continue
        if len(lines) < len(raw):
            log.warning("skipped %d unreadable lines of %s (not UTF-8); those deliveries would be acted on again "
                        "if redelivered", len(raw) - len(lines), self.path)
        return lines

    def __contains__(self, delivery_id: str) -> bool:
        """Whether the delivery was handled, or is being handled right now."""
        key = _key(delivery_id)
        return key in self._ids or key in self._in_flight

    def begin(self, delivery_id: str) -> None:
        """The delivery goes to its handlers: a duplicate is refused until :meth:`finish`."""
        self._in_flight.add(_key(delivery_id))

    async def claim(self, delivery_id: str, *, run: bool) -> bool:
        if delivery_id in self:
            return False
        if run:
            self.begin(delivery_id)
        else:
            self.add(delivery_id)
        return True

    async def done(self, delivery_id: str, *, handled: bool) -> None:
        self.finish(delivery_id, handled=handled)

    def finish(self, delivery_id: str, *, handled: bool) -> None:
        """Its handlers are done: remember it if they all succeeded, else let a redelivery through."""
        self._in_flight.discard(_key(delivery_id))
        if handled:
            self.add(delivery_id)

    def add(self, delivery_id: str) -> None:
        """Remember the delivery as handled (in memory and in the file)."""
        delivery_id = _key(delivery_id)
        self._ids[delivery_id] = None
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._file.write(delivery_id + "\n")
        self._file.flush()
        self._lines += 1
        if self._lines >= 2 * self.capacity:
            self._compact()

    def _compact(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(f"{d}\n" for d in self._ids))
        self.close()
        os.replace(tmp, self.path)
        self._lines = len(self._ids)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
