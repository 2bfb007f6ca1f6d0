"""Durability with real processes and real files: kill -9, torn logs, rotten snapshots, checkpoints.

The promise (DESIGN §4): with --fsync always, every step whose response was sent survives kill -9;
the daemon never starts from a torn or mixed state and says which step it restored.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import threading
import time

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
from safetensors.numpy import load, save

ADAM = ("adam", {"lr": 0.01, "weight_decay": 0.01, "amsgrad": True})

# The write-ahead log's two ways of writing a record (the step requests below are 44 KB to 0.8 MB): through
# the page cache; and, from 16 KiB, around it with O_DIRECT — step bodies then written to a file beside
# the log while they arrive (the log names the file in a small record), uploads from a 4 KiB boundary,
# padded with zeros.
LOG_WRITES = pytest.mark.parametrize("log_direct_io", ["off", "16KiB"], ids=["buffered-log", "direct-log"])
# A background snapshot copies the session and writes the copy while it steps on; with
# --snapshot-copy 0 it writes the session itself under its lock instead (no copy at all).
SNAPSHOT_COPIES = pytest.mark.parametrize(
    "snapshot_copy", ["all", "0"], ids=["copied-snapshots", "uncopied-snapshots"]
)


def step_until_killed(daemon, session, initial, acknowledged, steps, chooser, kill_when_done=True):
    """Steps from `acknowledged` towards `steps` while a killer strikes at a random moment: before,
    during or after a request. Returns the steps acknowledged and the last `durable_step` reported.
    The daemon is dead afterwards, unless it finished first and `kill_when_done` is false."""
    process, reported = daemon.process, None
    killer = threading.Timer(chooser.uniform(0.0, 0.25), lambda: process.send_signal(signal.SIGKILL))
    killer.start()
    try:
        while acknowledged < steps:
            answer = session.step(acknowledged + 1, gradients(initial, acknowledged + 1), timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.headers["Optimizerd-Step"] == str(acknowledged + 1)
            acknowledged += 1
            reported = int(load_metadata(answer.content)["durable_step"])
    except requests.ConnectionError:
        pass
    killer.cancel()
    if process.poll() is None and kill_when_done:  # finished before the killer struck
        process.send_signal(signal.SIGKILL)
    return acknowledged, reported


def assert_snapshots_took_their_path(log: str, snapshot_copy: str) -> None:
    """Background snapshots were written, each from a copy (`all`) or from the session under its lock (`0`)."""
    under_lock = [int(n) for n in re.findall(r"snapshot\.written_under_lock_bytes=(\d+)", log)]
    assert under_lock, "no background snapshot was written"
    assert all((n == 0) == (snapshot_copy == "all") for n in under_lock), under_lock


def load_metadata(body: bytes) -> dict:
    """The `__metadata__` of a safetensors body."""
    length = int.from_bytes(body[:8], "little")
    return json.loads(body[8 : 8 + length]).get("__metadata__", {})


@LOG_WRITES
@SNAPSHOT_COPIES
def test_kill_9_at_random_moments_never_loses_an_acknowledged_step(
    binary, tmp_path, log_direct_io, snapshot_copy
):
    steps, kills = 60, 0
    initial = model(seed=1, scale=20)  # ~200k parameters: requests take long enough to be cut
    optimizer, hyperparameters = ADAM
    chooser = random.Random(7)
    args = [
        "--fsync",
        "always",
        "--snapshot-every",
        "7",
        "--log-direct-io",
        log_direct_io,
        "--snapshot-copy",
        snapshot_copy,
    ]
    with LocalDaemon(binary, data_dir=tmp_path / "data", args=args) as daemon:
        session = RawSession(daemon.url, optimizer, hyperparameters)
        assert session.upload(initial).status_code == 200
        acknowledged = 0
        while acknowledged < steps:
            acknowledged, _ = step_until_killed(daemon, session, initial, acknowledged, steps, chooser)
            daemon.process.wait()
            kills += 1
            daemon.restart()
            summary = session.summary()
            # Every acknowledged step is there; at most the one in flight was also applied.
            assert acknowledged <= summary["step"] <= acknowledged + 1, (acknowledged, summary["step"])
            assert summary["durable_step"] == summary["step"]
            acknowledged = summary["step"]
        final = session.parameters()
        assert_snapshots_took_their_path(daemon.log(), snapshot_copy)
    assert kills >= 5
    assert_bit_identical(final, reference_run(binary, optimizer, hyperparameters, initial, steps))


@LOG_WRITES
def test_torn_log_tail_is_cut_and_the_daemon_continues(binary, tmp_path, log_direct_io):
    initial = model(seed=2)
    optimizer, hyperparameters = ADAM
    args = ["--fsync", "always", "--log-direct-io", log_direct_io]
    with LocalDaemon(binary, data_dir=tmp_path / "data", args=args) as daemon:
        session = RawSession(daemon.url, optimizer, hyperparameters)
        assert session.upload(initial).status_code == 200
        for step in range(1, 6):
            assert session.step(step, gradients(initial, step)).status_code == 200
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait()
        directory = tmp_path / "data" / "sessions" / session.id
        log = directory / "wal-0000000000000000.log"
        bodies = sorted(directory.glob("wal-*.body"), key=lambda path: int(path.name.split(".")[1]))
        if log_direct_io == "off":
            assert not bodies
            # The last record is now torn.
            os.truncate(log, log.stat().st_size - 4196)
        else:
            # The upload's and each step's body are files named by their records, nothing is left of the spools.
            assert len(bodies) == 6 and not list(directory.glob("spool-*")), sorted(
                p.name for p in directory.iterdir()
            )
            # The last step's body file is now torn.
            os.truncate(bodies[-1], bodies[-1].stat().st_size // 2)
        daemon.restart()
        assert session.summary()["step"] == 4
        notes = requests.get(f"{daemon.url}/readyz", timeout=10).json()["durability"]["recovery"]["notes"]
        assert any("torn tail" in note for note in notes), notes
        # Continue from step 5 again: the result equals a run that was never interrupted.
        for step in range(5, 8):
            assert session.step(step, gradients(initial, step)).status_code == 200
        final = session.parameters()
    assert_bit_identical(final, reference_run(binary, optimizer, hyperparameters, initial, 7))


def test_refused_retried_and_abandoned_steps_leave_no_body_files(binary, tmp_path):
    """A step body is written to a spool file while it arrives; only a step that is logged keeps it."""
    initial = model(seed=3, scale=20)  # 0.8 MB step bodies
    optimizer, hyperparameters = ADAM
    args = ["--fsync", "periodic", "--log-direct-io", "16KiB"]
    with LocalDaemon(binary, data_dir=tmp_path / "data", args=args) as daemon:
        session = RawSession(daemon.url, optimizer, hyperparameters)
        directory = tmp_path / "data" / "sessions" / session.id
        assert session.upload(initial).status_code == 200
        first = session.step(1, gradients(initial, 1))
        assert first.status_code == 200
        assert "spool;dur=" in first.headers["Server-Timing"], first.headers["Server-Timing"]
        assert session.step(1, gradients(initial, 1)).status_code == 200  # a retry: answered, not logged
        assert session.step(3, gradients(initial, 3)).status_code == 409  # not the next step
        bad = gradients(initial, 2)
        bad["layer.bias"] = bad["layer.bias"][:10]
        assert session.step(2, bad).status_code == 422  # a tensor of the wrong shape
        # A client that goes away halfway through a body.
        body = save(gradients(initial, 2), metadata={"step": "2"})
        host, port = daemon.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            head = (
                f"POST /v1/sessions/{session.id}/step HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {session.token}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            connection.sendall(head.encode() + body[: len(body) // 2])
        wait_until(
            lambda: not list(directory.glob("spool-*")), "the abandoned spool to be removed", timeout=30
        )
        # The upload's body and step 1's, nothing else.
        assert len(list(directory.glob("wal-0000000000000000.*.body"))) == 2
        for step in range(2, 5):
            assert session.step(step, gradients(initial, step)).status_code == 200
        assert len(list(directory.glob("wal-0000000000000000.*.body"))) == 5
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait()
        daemon.restart()
        assert session.summary()["step"] == 4
        final = session.parameters()
    assert_bit_identical(final, reference_run(binary, optimizer, hyperparameters, initial, 4))


def test_garbage_after_the_log_and_a_rotten_snapshot_never_stop_other_sessions(binary, tmp_path):
    initial = model(seed=3)
    optimizer, hyperparameters = ADAM
    with LocalDaemon(binary, data_dir=tmp_path / "data", args=["--fsync", "always"]) as daemon:
        healthy = RawSession(daemon.url, optimizer, hyperparameters)
        broken = RawSession(daemon.url, optimizer, hyperparameters)
        for session in (healthy, broken):
            assert session.upload(initial).status_code == 200
            for step in range(1, 4):
                assert session.step(step, gradients(initial, step)).status_code == 200
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait()
        directory = tmp_path / "data" / "sessions"
        # Garbage appended to the healthy session's log: a torn tail, cut.
        with open(directory / healthy.id / "wal-0000000000000000.log", "ab") as log:
            log.write(os.urandom(37))
        # The broken session's only snapshot rots: flip bytes in its data section.
        snapshot = directory / broken.id / "snapshot-0000000000000000.safetensors"
        data = bytearray(snapshot.read_bytes())
        for position in range(len(data) - 16, len(data)):
            data[position] ^= 0x5A
        snapshot.write_bytes(bytes(data))
        daemon.restart()
        assert healthy.summary()["step"] == 3
        assert_bit_identical(
            healthy.parameters(), reference_run(binary, optimizer, hyperparameters, initial, 3)
        )
        ready = requests.get(f"{daemon.url}/readyz", timeout=10).json()
        assert [failure["id"] for failure in ready["durability"]["recovery"]["failed"]] == [broken.id]
        assert requests.get(broken.path(), headers=broken.headers, timeout=10).status_code == 404
        assert "snapshot-0000000000000000.safetensors.corrupt" in data_files(tmp_path / "data", broken.id)
        # The daemon keeps serving: the healthy session steps on.
        assert healthy.step(4, gradients(initial, 4)).status_code == 200


def test_checkpoint_moves_a_session_between_daemons_bit_identically(binary, tmp_path):
    initial = model(seed=4)
    optimizer, hyperparameters = "mtadam", {"terms": 2, "lr": 0.01, "amsgrad": True}

    def term_gradients(step):
        first, second = gradients(initial, step), gradients(initial, 500 + step)
        return {f"0/{k}": v for k, v in first.items()} | {f"1/{k}": v * 10 for k, v in second.items()}

    with (
        LocalDaemon(binary, data_dir=tmp_path / "a") as first,
        LocalDaemon(binary, data_dir=tmp_path / "b") as second,
    ):
        source = RawSession(first.url, optimizer, hyperparameters)
        assert source.upload(initial).status_code == 200
        for step in range(1, 5):
            assert source.step(step, term_gradients(step)).status_code == 200
        checkpoint = requests.get(source.path("/checkpoint"), headers=source.headers, timeout=30)
        assert checkpoint.status_code == 200
        target = RawSession(second.url, optimizer, {"terms": 2})
        restored = requests.put(
            target.path("/checkpoint"), data=checkpoint.content, headers=target.headers, timeout=30
        )
        assert restored.status_code == 200, restored.text
        assert restored.json()["step"] == 4
        assert restored.json()["hyperparameters"]["lr"] == 0.01
        for step in range(5, 8):
            assert source.step(step, term_gradients(step)).status_code == 200
            assert target.step(step, term_gradients(step)).status_code == 200
        assert_bit_identical(target.parameters(), source.parameters())
        # The restored session is durable on its new daemon too.
        second.restart()
        assert target.summary()["step"] == 7
        assert_bit_identical(target.parameters(), source.parameters())
        # A checkpoint of another optimizer is refused and changes nothing.
        other = RawSession(second.url, "adam", {})
        assert other.upload(initial).status_code == 200
        before = other.parameters()
        refused = requests.put(
            other.path("/checkpoint"), data=checkpoint.content, headers=other.headers, timeout=30
        )
        assert refused.status_code == 422
        assert "mtadam" in refused.json()["detail"]
        assert_bit_identical(other.parameters(), before)


def test_graceful_shutdown_writes_a_snapshot_and_keeps_everything(binary, tmp_path):
    initial = model(seed=5)
    optimizer, hyperparameters = "sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}
    with LocalDaemon(
        binary, data_dir=tmp_path / "data", args=["--fsync", "periodic", "--fsync-interval", "50ms"]
    ) as daemon:
        session = RawSession(daemon.url, optimizer, hyperparameters)
        assert session.upload(initial).status_code == 200
        for step in range(1, 4):
            assert session.step(step, gradients(initial, step)).status_code == 200
        time.sleep(0.3)
        assert session.summary()["durable_step"] == 3  # the periodic flush caught up
        daemon.restart()  # SIGTERM: graceful
        assert "snapshot-0000000000000003.safetensors" in data_files(tmp_path / "data", session.id)
        assert session.summary()["step"] == 3
        final = session.parameters()
    assert_bit_identical(final, reference_run(binary, optimizer, hyperparameters, initial, 3))


@pytest.mark.parametrize(
    "mode, kill", [("log", False), ("snapshot", True)], ids=["sigterm-log", "kill9-snapshot"]
)
def test_the_last_step_is_answered_as_a_retry_after_a_restart_from_its_snapshot(binary, tmp_path, mode, kill):
    """A retry of the step just applied gets its answer (DESIGN §3, §9) also when the daemon restarts
    from a snapshot taken right after it — a graceful restart, or kill -9 with `--durability
    snapshot` — not only after a log replay: a sharded step's client retries the shards that answered
    after one of them restarted. The answer carries the tensors the step had (here one of two)."""
    initial = model(seed=6)
    first_name = sorted(initial)[0]
    data = tmp_path / "data"
    with LocalDaemon(binary, data_dir=data, args=["--fsync", "always", "--snapshot-every", "1"]) as daemon:
        session = RawSession(daemon.url, "adam", {"lr": 0.01}, durability=mode)
        assert session.upload(initial).status_code == 200
        assert session.step(1, gradients(initial, 1)).status_code == 200
        body = save({first_name: gradients(initial, 2)[first_name]}, metadata={"step": "2"})
        url = session.path("/step?return=params")
        first = requests.post(url, data=body, headers=session.headers, timeout=60)
        assert first.status_code == 200
        wait_until(lambda: session.summary()["durable_step"] == 2, "step 2 durable")
        wait_until(
            lambda: not any(".tmp" in name for name in data_files(data, session.id)), "the snapshot written"
        )
        daemon.restart(kill=kill)
        again = requests.post(url, data=body, headers=session.headers, timeout=60)
        assert again.status_code == 200, again.text
        assert again.headers["Optimizerd-Retry"] == "true"
        assert list(load(again.content)) == [first_name]
        assert_bit_identical(load(again.content), load(first.content))
        assert load_metadata(again.content)["update_norm"] == load_metadata(first.content)["update_norm"]
        assert session.summary()["step"] == 2
        # The next step goes on as before.
        assert session.step(3, gradients(initial, 3)).status_code == 200


def test_snapshot_durability_catches_up_while_the_session_is_idle(binary, tmp_path):
    """With `--durability snapshot`, steps become durable within `--snapshot-interval` also when no
    request follows them: the daemon starts the due snapshot itself (before, the last steps of a
    session gone idle waited for its next request, and a kill -9 lost them however long ago they were
    acknowledged)."""
    initial = model(seed=8)
    args = ["--durability", "snapshot", "--snapshot-interval", "300ms"]
    with LocalDaemon(binary, data_dir=tmp_path / "data", args=args) as daemon:
        session = RawSession(daemon.url, "adam", {"lr": 0.01})
        assert session.upload(initial).status_code == 200
        for step in range(1, 6):
            assert session.step(step, gradients(initial, step)).status_code == 200

        # Watched through the session list, which reads the session's progress without touching it
        # (the session's own summary is a request to it, which would start the snapshot).
        def durable_step() -> int:
            return requests.get(f"{daemon.url}/v1/sessions", timeout=30).json()["sessions"][0]["durable_step"]

        wait_until(lambda: durable_step() == 5, "step 5 durable with no request after it", timeout=20)
        daemon.restart(kill=True)
        assert session.summary()["step"] == 5
        resumed = session.parameters()
    assert_bit_identical(resumed, reference_run(binary, "adam", {"lr": 0.01}, initial, 5))


def test_steps_racing_a_delete_get_their_answer_or_404_never_a_server_error(binary, tmp_path):
    """DELETE while steps of the session are in flight: a step already running finishes, the others
    get 404, and nothing is left behind. Before, the directory was renamed away under the steps and
    those whose bodies were being written beside the log (6 MiB bodies here) got 500 storage-error."""
    initial = {"w": np.ones((1024, 1024), np.float32), "v": np.ones((512, 1024), np.float32)}
    answers: list[int] = []
    with LocalDaemon(binary, data_dir=tmp_path / "data", args=["--max-memory", "512MiB"]) as daemon:
        for trial in range(8):
            session = RawSession(daemon.url, "adam", {"lr": 0.01})
            assert session.upload(initial).status_code == 200
            stop = threading.Event()

            def stepper(session=session, stop=stop) -> None:
                step = 0
                while not stop.is_set():
                    step += 1
                    body = save(gradients(initial, step))
                    try:
                        answer = requests.post(
                            session.path("/step?return=none"), data=body, headers=session.headers, timeout=60
                        )
                    except requests.RequestException:
                        continue
                    answers.append(answer.status_code)

            threads = [threading.Thread(target=stepper) for _ in range(3)]
            for thread in threads:
                thread.start()
            time.sleep(0.15 + 0.05 * (trial % 4))
            assert requests.delete(session.path(), headers=session.headers, timeout=60).status_code == 204
            time.sleep(0.3)
            stop.set()
            for thread in threads:
                thread.join()
            assert not (tmp_path / "data" / "sessions" / session.id).exists()
        daemon.restart(kill=True)
        assert requests.get(f"{daemon.url}/v1/sessions", timeout=30).json()["sessions"] == []
    assert 200 in answers and 404 in answers
    assert set(answers) <= {200, 404}, sorted(set(answers))


def reference_trajectory(binary, optimizer, hyperparameters, initial, steps) -> dict:
    """The parameters after each of `steps` steps (and at 0) on a daemon that never stops."""
    with LocalDaemon(binary, args=["--fsync", "never"]) as daemon:
        session = RawSession(daemon.url, optimizer, hyperparameters)
        assert session.upload(initial).status_code == 200
        trajectory = {0: session.parameters()}
        for step in range(1, steps + 1):
            assert session.step(step, gradients(initial, step)).status_code == 200
            trajectory[step] = session.parameters()
        return trajectory


@SNAPSHOT_COPIES
def test_snapshot_durability_resumes_exactly_at_a_complete_snapshot_after_kill_9(
    binary, tmp_path, snapshot_copy
):
    """--durability snapshot: steps are not logged. After kill -9 the session is at a step no older
    than the last durable_step it reported, that step is its durable_step (a complete snapshot), and
    its state is bit-identical to an uninterrupted run's at that step; never torn. The trainer
    resumes from there and ends where an uninterrupted run ends."""
    steps = 40
    initial = model(seed=6, scale=20)
    optimizer, hyperparameters = ADAM
    reference = reference_trajectory(binary, optimizer, hyperparameters, initial, steps)
    args = [
        "--durability",
        "snapshot",
        "--snapshot-every",
        "3",
        "--snapshot-interval",
        "3600s",
        "--fsync",
        "always",
        "--snapshot-copy",
        snapshot_copy,
    ]
    chooser = random.Random(11)
    with LocalDaemon(binary, data_dir=tmp_path / "data", args=args) as daemon:
        session = RawSession(daemon.url, optimizer, hyperparameters)
        assert session.upload(initial).status_code == 200
        assert session.summary()["durability"] == "snapshot"
        acknowledged, reported, restored = 0, 0, []
        # At least three kills whatever the machine's speed: a run that finished before the
        # killer struck is killed anyway until three restores were seen.
        while acknowledged < steps or len(restored) < 3:
            acknowledged, answered = step_until_killed(
                daemon, session, initial, acknowledged, steps, chooser, kill_when_done=False
            )
            reported = reported if answered is None else answered
            if acknowledged == steps and daemon.process.poll() is None and len(restored) >= 3:
                break  # finished before the killer struck
            daemon.process.send_signal(signal.SIGKILL)
            daemon.process.wait()
            daemon.restart()
            summary = session.summary()
            assert reported <= summary["step"] <= acknowledged + 1, (reported, summary["step"], acknowledged)
            assert summary["durable_step"] == summary["step"]
            assert_bit_identical(session.parameters(), reference[summary["step"]])
            restored.append(summary["step"])
            acknowledged = reported = summary["step"]  # the trainer resumes from durable_step
        assert len(restored) >= 3
        assert any(step > 0 for step in restored), restored  # snapshots were written and used
        assert_snapshots_took_their_path(daemon.log(), snapshot_copy)
        assert_bit_identical(session.parameters(), reference[steps])
        # No step was logged: a log holds at most the parameter upload.
        directory = tmp_path / "data" / "sessions" / session.id
        upload = len(save(initial))
        for name in data_files(tmp_path / "data", session.id):
            if name.startswith("wal-"):
                assert (directory / name).stat().st_size < upload + 4096, name


def test_durability_is_chosen_per_session_and_kept_across_kill_9(binary, tmp_path):
    """On a daemon whose default is `log`, a session created with "durability": "snapshot" keeps no
    step in its log and comes back at its newest complete snapshot; its `log` neighbour loses nothing."""
    initial = model(seed=7)
    optimizer, hyperparameters = ADAM
    reference = reference_trajectory(binary, optimizer, hyperparameters, initial, 5)
    args = ["--snapshot-every", "2", "--snapshot-interval", "3600s", "--fsync", "always"]
    with LocalDaemon(binary, data_dir=tmp_path / "data", args=args) as daemon:
        logged = RawSession(daemon.url, optimizer, hyperparameters)
        snapshotted = RawSession(daemon.url, optimizer, hyperparameters, durability="snapshot")
        assert logged.summary()["durability"] == "log"
        assert snapshotted.summary()["durability"] == "snapshot"
        for session in (logged, snapshotted):
            assert session.upload(initial).status_code == 200
            for step in range(1, 6):
                assert session.step(step, gradients(initial, step)).status_code == 200
        wait_until(lambda: snapshotted.summary()["durable_step"] > 0, "a background snapshot")
        reported = snapshotted.summary()["durable_step"]
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait()
        daemon.restart()
        assert logged.summary()["step"] == 5
        assert_bit_identical(logged.parameters(), reference[5])
        summary = snapshotted.summary()
        assert reported <= summary["step"] == summary["durable_step"] <= 5
        assert summary["durability"] == "snapshot"
        assert_bit_identical(snapshotted.parameters(), reference[summary["step"]])
        # It goes on from there exactly like a run that never stopped.
        for step in range(summary["step"] + 1, 6):
            assert snapshotted.step(step, gradients(initial, step)).status_code == 200
        assert_bit_identical(snapshotted.parameters(), reference[5])


def test_an_unknown_durability_is_refused(binary, tmp_path):
    with LocalDaemon(binary, data_dir=tmp_path / "data") as daemon:
        answer = requests.post(
            f"{daemon.url}/v1/sessions", json={"optimizer": "adam", "durability": "sometimes"}, timeout=10
        )
        assert answer.status_code == 400
        assert "durability" in answer.json()["detail"]
