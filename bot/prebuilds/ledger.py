"""What was prebuilt: per repository and branch the last build (its commit and image), and per image the
commit that built it, kept in ``<DEVENV_STATE_DIR>/prebuilds.json``.

The environments read it to say where an environment started from (DevPod's ``Found existing prebuilt image
<ref>`` names the image, this says which commit built it) and why it did not (no prebuild of the base branch
yet).  One file per bot: with several replicas (``DEVENV_STATE_BACKEND=kubernetes``) each keeps its own, and a
replica that did not build an image names no commit for it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.core.files import write_atomic

__all__ = ["Built", "PrebuildLedger"]

log = logging.getLogger(__name__)

#: Images remembered per repository (the oldest are forgotten first).
MAX_IMAGES = 200


@dataclasses.dataclass(frozen=True)
class Built:
    """One successful prebuild."""

    repo: str  # owner/repo
    branch: str
    sha: str
    image: str  # <repository>:<prebuild hash>
    at: float


class PrebuildLedger:
    """The prebuilds made so far; read at start, written after each build."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(state_dir) / "prebuilds.json"
        self.clock = clock
        self._data: dict[str, Any] = {"branches": {}, "images": {}}
        try:
            loaded = json.loads(self.path.read_text())
            if isinstance(loaded, dict):
                self._data.update({k: v for k, v in loaded.items() if isinstance(v, dict)})
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("%s could not be read (%s): starting with no prebuilds", self.path, exc)

    def last(self, repo: str, branch: str) -> Built | None:
        entry = self._data["branches"].get(f"{repo.lower()}#{branch}")
        return Built(**entry) if entry else None

    def image(self, ref: str) -> Built | None:
        entry = self._data["images"].get(ref)
        return Built(**entry) if entry else None

    def record(self, repo: str, branch: str, sha: str, image: str) -> Built:
        built = Built(repo=repo, branch=branch, sha=sha, image=image, at=self.clock())
        entry = dataclasses.asdict(built)
        self._data["branches"][f"{repo.lower()}#{branch}"] = entry
        images = self._data["images"]
        images.pop(image, None)
        images[image] = entry
        mine = [k for k, v in images.items() if v["repo"].lower() == repo.lower()]
        for old in mine[:-MAX_IMAGES]:
            del images[old]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self._data, indent=1), durable=True)
        return built
