"""The chaos harness's short version (bench/chaos.py --short): one shop, a few returns, every
fault once, through the real web process, long-lived workers, PostgreSQL, Redis (servers of the
harness's own, so it can restart them) and the stand-ins. `make chaos` plays the full one."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHORT_RUN_LIMIT = 1500   # seconds: the outages' retry ladders are simulated, the cron's waits mostly not

pytestmark = pytest.mark.timeout(SHORT_RUN_LIMIT + 60)


@pytest.fixture(scope="module")
def chaos():
    """The short run's RESULT, played once for the module's tests."""
    done = subprocess.run([sys.executable, "bench/chaos.py", "--short"], cwd=ROOT, capture_output=True, text=True,
                          timeout=SHORT_RUN_LIMIT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no RESULT line (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):]), done.stdout


def test_every_fault_is_played(chaos):
    from bench.chaos import FAULTS

    result, _out = chaos
    assert set(result["faults"]) == set(FAULTS)


def test_no_fault_loses_or_doubles_an_invoice(chaos):
    result, out = chaos
    broken = {name: f for name, f in result["faults"].items() if f["duplicates"] or f["missing"]}
    assert not broken, out


def test_every_fault_is_recovered_from_within_two_minutes(chaos):
    """Issue 13, point 3: the last invoice within 120 (simulated) seconds of the fault's end."""
    result, out = chaos
    slow = {name: f["recovery_s"] for name, f in result["faults"].items()
            if f["recovery_s"] is None or f["recovery_s"] > 120}
    assert not slow, out
