"""The memory budget (--max-memory): a real daemon with a small budget refuses the sessions and
bodies that would pass it (507 naming the budget, nothing changed, the connection still usable)
while the sessions it admitted keep stepping bit-identically; deleting a session gives its memory
back. Without the flag, the budget is 80 % of the cgroup's limit (a fake cgroup directory here,
through OPTIMIZERD_CGROUP_ROOT)."""

from __future__ import annotations

import re
import socket
import threading

import numpy as np
import pytest
import requests
from harness import (
    LocalDaemon,
    RawSession,
    assert_bit_identical,
    data_files,
    gradients,
    model,
    reference_run,
    wait_until,
)
from safetensors.numpy import save

MIB = 1 << 20
PROBLEM = "urn:optimizerd:problem:memory-budget-exceeded"


def metric(url: str, name: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def large_model(seed: int) -> dict:
    """One 1M-element tensor: 4 MiB of parameters, 12 MiB with Adam's two moments."""
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((1024, 1024)).astype(np.float32)}


def assert_refused(answer: requests.Response, needs: str) -> None:
    assert answer.status_code == 507, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["type"] == PROBLEM
    assert re.match(
        rf"--max-memory 64 MiB: [0-9.]+ [KMG]?i?B in use(, [0-9.]+ [KMG]?i?B kept for a step)?, {needs} needs "
        r"[0-9.]+ [KMG]?i?B",
        problem["detail"],
    ), problem["detail"]


def test_small_budget_refuses_what_would_pass_it_while_admitted_sessions_keep_stepping(binary):
    initial = model(seed=11)
    steps = 0
    with LocalDaemon(binary, args=["--max-memory", "64MiB", "--fsync", "never"]) as daemon:
        assert metric(daemon.url, "optimizerd_memory_budget_bytes") == 64 * MIB
        assert "max_memory.source=--max-memory" in daemon.log()
        trainer = RawSession(daemon.url, "adam", {"lr": 0.01})
        assert trainer.upload(initial).status_code == 200

        def step_trainer() -> None:
            nonlocal steps
            steps += 1
            answer = trainer.step(steps, gradients(initial, steps))
            assert answer.status_code == 200, answer.text

        step_trainer()
        # Large Adam sessions until the budget refuses one: 12 MiB each plus the room a step needs.
        admitted, refused = [], []
        for seed in range(10):
            session = RawSession(daemon.url, "adam")
            answer = session.upload(large_model(seed))
            if answer.status_code == 200:
                assert not refused, "an upload was admitted after one was refused"
                admitted.append(session)
            else:
                assert_refused(answer, "this upload")
                assert session.summary()["parameter_count"] == 0  # nothing changed
                refused.append(session)
            step_trainer()
        assert len(admitted) >= 2 and len(refused) >= 3, (len(admitted), len(refused))
        used = metric(daemon.url, "optimizerd_memory_used_bytes")
        assert 2 * 12 * MIB < used <= 64 * MIB
        assert metric(daemon.url, 'optimizerd_memory_used_by_kind_bytes{kind="bodies"}') == 0

        # Admitted sessions step on; so does the trainer, between refused big bodies.
        for index, session in enumerate(admitted):
            answer = session.step(1, gradients(large_model(index), 1))
            assert answer.status_code == 200, answer.text
        with requests.Session() as connection:  # one keep-alive connection for all of it
            big = save({"w": np.zeros((8 * 1024, 1024), dtype=np.float32)})  # 32 MiB
            answer = connection.put(
                refused[0].path("/parameters"), data=big, headers=refused[0].headers, timeout=60
            )
            assert_refused(answer, "this upload")
            chunks = (big[offset : offset + MIB] for offset in range(0, len(big), MIB))  # no Content-Length
            answer = connection.put(
                refused[0].path("/parameters"), data=chunks, headers=refused[0].headers, timeout=60
            )
            assert_refused(answer, "this upload")
            assert connection.get(f"{daemon.url}/healthz", timeout=10).status_code == 200
            step_trainer()
        assert refused[0].summary()["parameter_count"] == 0

        # A deleted session gives its memory back: the refused upload now fits.
        deleted = admitted.pop()
        assert requests.delete(deleted.path(), headers=deleted.headers, timeout=10).status_code == 204
        assert metric(daemon.url, "optimizerd_memory_used_bytes") < used
        assert refused[0].upload(large_model(99)).status_code == 200
        step_trainer()
        assert requests.get(f"{daemon.url}/healthz", timeout=10).status_code == 200
        listed = {
            entry["id"]: entry
            for entry in requests.get(f"{daemon.url}/v1/sessions", timeout=10).json()["sessions"]
        }
        assert listed[refused[0].id]["memory_bytes"] >= 12 * MIB
        final = trainer.parameters()
    assert_bit_identical(final, reference_run(binary, "adam", {"lr": 0.01}, initial, steps))


@pytest.mark.parametrize(
    ("files", "source"),
    [
        ({"memory/memory.limit_in_bytes": "100663296\n"}, "cgroup v1 limit 96 MiB"),
        ({"memory.max": "100663296\n"}, "cgroup v2 limit 96 MiB"),
    ],
)
def test_default_budget_is_80_percent_of_the_cgroup_limit(binary, tmp_path, files, source):
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    with LocalDaemon(
        binary, args=["--fsync", "never"], environment={"OPTIMIZERD_CGROUP_ROOT": str(tmp_path)}
    ) as daemon:
        assert metric(daemon.url, "optimizerd_memory_budget_bytes") == int(96 * MIB * 0.8)
        assert source in daemon.log()
        session = RawSession(daemon.url, "adam")
        too_big = {"w": np.zeros((2048, 4096), dtype=np.float32)}  # 32 MiB, 96 MiB with Adam's state
        answer = session.upload(too_big)
        assert answer.status_code == 507, answer.text
        assert answer.json()["detail"].startswith("--max-memory 76.8 MiB: ")
        assert session.upload(model(seed=3)).status_code == 200


def test_unlimited_cgroup_falls_back_to_the_machine(binary, tmp_path):
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    with LocalDaemon(binary, environment={"OPTIMIZERD_CGROUP_ROOT": str(tmp_path)}) as daemon:
        assert "the machine's memory" in daemon.log()
        machine = metric(daemon.url, "optimizerd_memory_budget_bytes") / 0.8
        with open("/proc/meminfo") as meminfo:
            total = int(meminfo.readline().split()[1]) * 1024
        assert abs(machine - total) < 0.01 * total


def test_an_address_space_limit_sets_the_budget_and_the_daemon_refuses_instead_of_crashing(binary, tmp_path):
    """The issue's repro: under `prlimit --as` the daemon crashed on the session that passed the
    limit. Now 80 % of the address space less 1 GiB is the default budget: the sessions past it are
    507 and every admitted one steps."""
    limit = 2 << 30
    wrapper = tmp_path / "optimizerd-under-prlimit"
    wrapper.write_text(f'#!/bin/sh\nexec prlimit --as={limit} {binary} "$@"\n')
    wrapper.chmod(0o755)
    with LocalDaemon(wrapper, args=["--fsync", "never"]) as daemon:
        assert metric(daemon.url, "optimizerd_memory_budget_bytes") == int((limit - (1 << 30)) * 0.8)
        assert "address-space limit (RLIMIT_AS) 2.0 GiB" in daemon.log()
        n = 12_500_000  # 50 MB of parameters, 150 MB with Adam's moments
        admitted, refused = [], 0
        for _ in range(7):
            session = RawSession(daemon.url, "adam", {"lr": 0.01})
            answer = session.upload({"w": np.full(n, 0.5, np.float32)})
            if answer.status_code == 200:
                admitted.append(session)
            else:
                assert answer.status_code == 507 and answer.json()["type"] == PROBLEM, answer.text
                refused += 1
        assert len(admitted) >= 2 and refused >= 1
        for step in (1, 2):
            for session in admitted:
                assert session.step(step, {"w": np.full(n, 0.1, np.float32)}).status_code == 200
        assert requests.get(f"{daemon.url}/healthz", timeout=10).status_code == 200


def snapshots_past_zero(daemon: LocalDaemon, session: RawSession) -> list[str]:
    return [
        name
        for name in data_files(daemon.data_dir, session.id)
        if name.startswith("snapshot-")
        and name.endswith(".safetensors")
        and name != f"snapshot-{0:016d}.safetensors"
    ]


@pytest.mark.parametrize(
    "args",
    [["--max-memory", "25MiB"], ["--snapshot-copy", "0"], ["--snapshot-copy", "1MiB"]],
    ids=["no-room-in-the-budget", "snapshot-copy-0", "snapshot-copy-1MiB"],
)
def test_a_snapshot_without_room_for_its_copy_is_written_from_the_session(binary, tmp_path, args):
    """A snapshot is written while the session steps on from a copy in memory: with no room for a
    whole copy (a full budget, or --snapshot-copy) the part that does not fit is written from the
    session under its lock, so large sessions are still snapshotted and their logs cut; a kill -9
    then recovers every step bit for bit from that snapshot and the log after it."""
    initial = large_model(5)  # 12 MiB with Adam's state, 8 MiB kept for a step
    args = args + ["--fsync", "always", "--snapshot-every", "1"]
    with LocalDaemon(binary, data_dir=tmp_path / "tight", args=args) as daemon:
        session = RawSession(daemon.url, "adam", {"lr": 0.01})
        assert session.upload(initial).status_code == 200
        for step in range(1, 4):
            answer = session.step(step, gradients(initial, step))
            assert answer.status_code == 200, answer.text
        wait_until(lambda: snapshots_past_zero(daemon, session), "a snapshot past step 0")
        assert session.summary()["step"] == 3
        written = [
            int(n) for n in re.findall(r"snapshot\.written_under_lock_bytes[=:\"\s]+(\d+)", daemon.log())
        ]
        assert written and all(n > 0 for n in written), daemon.log()[-2000:]
        if "0" in args:
            assert all(n >= 12 * MIB for n in written), written
        # (A snapshot being written has one; once none is in flight, none is left.)
        wait_until(
            lambda: not [name for name in data_files(daemon.data_dir, session.id) if name.endswith(".tmp")],
            "no temporary snapshot file",
        )
        before = session.parameters()
        daemon.restart(kill=True)  # kill -9: recovery reads the newest snapshot and replays the log after it
        assert session.summary()["step"] == 3
        assert_bit_identical(session.parameters(), before)
        for step in range(4, 6):
            assert session.step(step, gradients(initial, step)).status_code == 200
        stepped = session.parameters()
    # The same steps with room for whole copies reach the same parameters.
    with LocalDaemon(
        binary, data_dir=tmp_path / "roomy", args=["--fsync", "always", "--snapshot-every", "1"]
    ) as daemon:
        session = RawSession(daemon.url, "adam", {"lr": 0.01})
        assert session.upload(initial).status_code == 200
        for step in range(1, 6):
            assert session.step(step, gradients(initial, step)).status_code == 200
        wait_until(lambda: snapshots_past_zero(daemon, session), "a snapshot past step 0")
        assert_bit_identical(session.parameters(), stepped)
        assert re.search(r"snapshot\.written_under_lock_bytes[=:\"\s]+0\b", daemon.log()), daemon.log()[
            -2000:
        ]


def test_recovery_keeps_sessions_past_the_budget_and_counts_them(binary, tmp_path):
    """Data is never refused: sessions recovered past a smaller budget are all loaded (and logged)
    and counted; until some are deleted, what needs memory (a step's body, new parameters) is
    refused without changing anything, then it goes through."""
    data = tmp_path / "data"
    with LocalDaemon(binary, data_dir=data, args=["--fsync", "always"]) as daemon:
        sessions = [RawSession(daemon.url, "adam") for _ in range(3)]
        for index, session in enumerate(sessions):
            assert session.upload(large_model(index)).status_code == 200
    with LocalDaemon(binary, data_dir=data, args=["--fsync", "always", "--max-memory", "24MiB"]) as daemon:
        assert "recovered sessions exceed the memory budget" in daemon.log()
        assert metric(daemon.url, "optimizerd_memory_used_bytes") >= 3 * 12 * MIB > 24 * MIB
        recovered = [RawSession.attach(daemon.url, session.id, session.token) for session in sessions]
        for session in recovered:
            assert session.summary()["memory_bytes"] >= 12 * MIB
        refused = recovered[0].step(1, gradients(large_model(0), 1))
        assert refused.status_code == 507 and refused.json()["type"] == PROBLEM
        assert recovered[0].summary()["step"] == 0
        created = requests.post(f"{daemon.url}/v1/sessions", json={"optimizer": "adam"}, timeout=10)
        assert created.status_code == 507 and created.json()["type"] == PROBLEM
        for gone in recovered[1:]:
            assert requests.delete(gone.path(), headers=gone.headers, timeout=10).status_code == 204
        answer = recovered[0].step(1, gradients(large_model(0), 1))
        assert answer.status_code == 200, answer.text
        assert RawSession(daemon.url, "adam").upload(model(seed=1)).status_code == 200


def test_a_tenant_opening_many_step_bodies_holds_one_steps_room_and_others_keep_stepping(binary, tmp_path):
    # Tenant A (10 parameters) opens 30 step requests declaring 2 MiB each and trickles them:
    # each body's Content-Length is reserved up front. Only one of them may use the room the
    # budget keeps for steps (and only up to A's own step); the others must fit beside it, so
    # B's admitted session keeps stepping.
    with LocalDaemon(binary, data_dir=tmp_path / "d", args=["--max-memory", "64MiB"]) as daemon:
        small = RawSession(daemon.url, "adam")
        assert small.upload({"w": np.ones(10, np.float32)}).status_code == 200
        big = RawSession(daemon.url, "adam")
        assert big.upload({"w": np.ones(1_000_000, np.float32)}).status_code == 200
        gradient = {"w": np.ones(1_000_000, np.float32)}
        assert big.step(1, gradient).status_code == 200
        head = (
            f"POST /v1/sessions/{small.id}/step HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {small.token}\r\n"
            f"Content-Length: {2 << 20}\r\n\r\n"
        ).encode()
        trickles = [socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(30)]
        try:
            for connection in trickles:
                connection.sendall(head + b"\x10")
            wait_until(
                lambda: metric(daemon.url, 'optimizerd_memory_used_by_kind_bytes{kind="bodies"}') > 0,
                "A's bodies",
            )
            for step in (2, 3):
                answer = big.step(step, gradient)
                assert answer.status_code == 200, answer.text
        finally:
            for connection in trickles:
                connection.close()


def test_admitted_sessions_stepping_at_once_all_step(binary, tmp_path):
    # The budget keeps room for one step; admitted sessions stepping at the same time wait their
    # turn for it (503 memory-busy with Retry-After, which clients retry), never a 507 as if they
    # did not fit.
    size = 1_000_000
    with LocalDaemon(binary, data_dir=tmp_path / "d", args=["--max-memory", "64MiB"]) as daemon:
        sessions = []
        while len(sessions) < 10:
            session = RawSession(daemon.url, "adam", {"lr": 0.01})
            if session.upload({"w": np.ones(size, np.float32)}).status_code != 200:
                break  # the budget is full: that many are admitted
            sessions.append(session)
        assert len(sessions) >= 3
        body = save({"w": np.full(size, 0.1, np.float32)})
        barrier = threading.Barrier(len(sessions))
        answers = []

        def steps(session):
            for _ in range(5):
                barrier.wait()
                while True:
                    answer = requests.post(
                        session.path("/step"), data=body, headers=session.headers, timeout=60
                    )
                    answers.append((answer.status_code, answer.headers.get("Retry-After"), answer.text[:200]))
                    if answer.status_code != 503:
                        break

        threads = [threading.Thread(target=steps, args=(session,)) for session in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(status == 200 or (status == 503 and after == "1") for status, after, _ in answers), answers
        assert all(session.summary()["step"] == 5 for session in sessions)
