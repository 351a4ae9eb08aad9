"""Which deliveries were already acted on, remembered across restarts.

GitHub never redelivers on its own, but an operator can redeliver any delivery by hand
(it keeps its ``X-GitHub-Delivery``), often just after a restart.  The last
``capacity`` ids live in memory and in an append-only file in the state directory,
rewritten with only the newest ids when it grows to twice that.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TextIO

from cachetools import LRUCache

log = logging.getLogger(__name__)


class SeenDeliveries:
    def __init__(self, state_dir: Path, capacity: int = 10_000) -> None:
        self.path = state_dir / "deliveries.log"
        self.capacity = capacity
        self._ids: LRUCache[str, None] = LRUCache(maxsize=capacity)
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
        return delivery_id in self._ids

    def add(self, delivery_id: str) -> None:
        # Ids are GitHub's GUIDs; anything else is made one line so the file stays parseable.
        delivery_id = delivery_id.replace("\n", " ").replace("\r", " ")[:200]
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
