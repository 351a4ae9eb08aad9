"""Claude Code's real stream-json output, recorded in ``../shared/links-agent/claude-stream-samples``.

The stream parser is tested on these files and the stand-in ``claude`` replays them, so the
tests that need them are skipped (with the reason) on a checkout without ``../shared``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "links-agent" / "claude-stream-samples"

#: Mark a module ``pytestmark = needs_samples`` when its tests read or replay the samples.
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no Claude Code stream samples at {SAMPLES}")


def sample_lines(name: str) -> list[str]:
    return [line for line in (SAMPLES / name).read_text().splitlines() if line.strip()]
