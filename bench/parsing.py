#!/usr/bin/env python3
"""The slash-command parser on the largest comments GitHub allows (65,536 characters).

    .venv/bin/python bench/parsing.py            # median and max over 20 runs of each body

A comment is parsed on every ``issue_comment`` delivery, inside the webhook handler, so a body that
made the parser quadratic would hold the event loop. Target: every body under 50 ms (median).
The bodies are the adversarial ones of tests/test_commands.py (``LARGE_BODIES``), which checks
what they parse to; the timings live here, not in the tests, because timed tests flake on shared
machines.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.commands.grammar import parse
from tests.test_commands import LARGE_BODIES

TARGET_MS = 50.0


def main() -> int:
    worst = 0.0
    print(f"{'body':<22} {'chars':>7} {'median ms':>10} {'max ms':>8}")
    for name, body in LARGE_BODIES:
        times = []
        for _ in range(20):
            started = time.perf_counter()
            parse(body)
            times.append((time.perf_counter() - started) * 1000)
        median = statistics.median(times)
        worst = max(worst, median)
        print(f"{name:<22} {len(body):>7} {median:>10.2f} {max(times):>8.2f}")
    verdict = "meets" if worst < TARGET_MS else "MISSES"
    print(f"\nworst median {worst:.2f} ms -> {verdict} the < {TARGET_MS:g} ms target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
