"""The load run (integration/load/load.py) at CI size: ~45 s of load with 16 legitimate clients and 4
hostile workers against a real daemon, then a restart. Each invariant is its own assertion, so a
failure says which one broke; the full report is printed on failure.

Nothing here is timed except what the invariants say: /healthz must answer every probe within
5 s (generous on a busy 2-core machine), and stalled connections must be closed by the daemon's
10 s idle timeout (a generous 15 s margin).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

#: The CI configuration; `python3 integration/load/load.py --help` explains each flag.
CI_ARGUMENTS = ["--seconds", "45", "--clients", "16", "--hostile", "4", "--warmup", "5", "--settle", "7"]


def binary() -> Path:
    sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
    from optimizerd.testing import DaemonNotFound, find_binary

    try:
        return find_binary(hints=[REPO / ".build" / "debug" / "optimizerd"])
    except DaemonNotFound as error:
        pytest.fail(f"{error}\n(build it with `swift build --product optimizerd`, or set OPTIMIZERD_BIN)")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    output = tmp_path_factory.mktemp("load") / "load.json"
    command = [
        sys.executable,
        str(HERE / "load.py"),
        *CI_ARGUMENTS,
        "--binary",
        str(binary()),
        "--json",
        str(output),
    ]
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    print(result.stdout[-6000:])
    print(result.stderr[-4000:], file=sys.stderr)
    assert output.exists(), f"load.py wrote no report (exit {result.returncode}):\n{result.stderr[-4000:]}"
    data = json.loads(output.read_text())
    data["exit_status"] = result.returncode
    return data


def test_no_legitimate_request_failed(report: dict) -> None:
    load = report["load"]
    assert load["legit_steps"] > 0, "no step was acknowledged during the load"
    assert load["failures"] == []


def test_every_session_is_at_the_step_its_client_saw_acknowledged(report: dict) -> None:
    assert report["sessions"]["checked"] > 0
    assert report["sessions"]["mismatches"] == []


def test_healthz_answered_every_probe(report: dict) -> None:
    health = report["health"]
    assert health["count"] > 0
    assert health["failures"] == [], f"/healthz failed (limit {health['timeout_s']} s)"


def test_hostile_requests_got_the_documented_answers(report: dict) -> None:
    load = report["load"]
    assert load["hostile_requests"] > 0
    assert load["hostile_violations"] == [], json.dumps(load["hostile"], indent=1)


def test_memory_returns_to_its_level_after_the_load(report: dict) -> None:
    memory = report["memory"]
    assert memory["growth_mib"] <= memory["bound_mib"], json.dumps(memory)
    assert memory["fds_after"] <= memory["fds_before"] + 8, json.dumps(memory)


def test_logs_hold_no_token_and_no_gradient_bytes(report: dict) -> None:
    assert report["logs"]["bytes"] > 0
    assert report["logs"]["findings"] == []


def test_steps_and_parameters_survive_a_restart(report: dict) -> None:
    restart = report["restart"]
    assert restart["sessions"] > 0
    assert restart["mismatches"] == []


def test_load_run_exits_cleanly(report: dict) -> None:
    assert report["violations"] == []
    assert report["exit_status"] == 0
