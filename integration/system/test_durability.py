"""Durability with real processes and real files: kill -9, torn logs, rotten snapshots, checkpoints.

The promise (DESIGN §4): with --fsync always, every step whose response was sent survives kill -9;
the daemon never starts from a torn or mixed state and says which step it restored.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import requests
from harness import LocalDaemon, RawSession, assert_bit_identical, data_files, gradients, model, reference_run

ADAM = ("adam", {"lr": 0.01, "weight_decay": 0.01, "amsgrad": True})


def test_kill_9_at_random_moments_never_loses_an_acknowledged_step(binary, tmp_path):
    steps, kills = 60, 0
    initial = model(seed=1, scale=20)  # ~200k parameters: requests take long enough to be cut
    optimizer, hyperparameters = ADAM
    chooser = random.Random(7)
    with LocalDaemon(
        binary, data_dir=tmp_path / "data", args=["--fsync", "always", "--snapshot-every", "7"]
    ) as daemon:
        session = RawSession(daemon.url, optimizer, hyperparameters)
        assert session.upload(initial).status_code == 200
        acknowledged = 0
        while acknowledged < steps:
            process = daemon.process
            # A killer that strikes at a random moment: before, during or after the next request.
            killer = threading.Timer(
                chooser.uniform(0.0, 0.25), lambda p=process: p.send_signal(signal.SIGKILL)
            )
            killer.start()
            try:
                while acknowledged < steps:
                    answer = session.step(acknowledged + 1, gradients(initial, acknowledged + 1), timeout=10)
                    assert answer.status_code == 200, answer.text
                    assert answer.headers["Optimizerd-Step"] == str(acknowledged + 1)
                    acknowledged += 1
            except requests.ConnectionError:
                pass
            killer.cancel()
            if process.poll() is None:  # finished before the killer struck
                process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            daemon.restart()
            summary = session.summary()
            # Every acknowledged step is there; at most the one in flight was also applied.
            assert acknowledged <= summary["step"] <= acknowledged + 1, (acknowledged, summary["step"])
            assert summary["durable_step"] == summary["step"]
            acknowledged = summary["step"]
        final = session.parameters()
    assert kills >= 5
    assert_bit_identical(final, reference_run(binary, optimizer, hyperparameters, initial, steps))


def test_torn_log_tail_is_cut_and_the_daemon_continues(binary, tmp_path):
    initial = model(seed=2)
    optimizer, hyperparameters = ADAM
    with LocalDaemon(binary, data_dir=tmp_path / "data", args=["--fsync", "always"]) as daemon:
        session = RawSession(daemon.url, optimizer, hyperparameters)
        assert session.upload(initial).status_code == 200
        for step in range(1, 6):
            assert session.step(step, gradients(initial, step)).status_code == 200
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait()
        log = tmp_path / "data" / "sessions" / session.id / "wal-0000000000000000.log"
        size = log.stat().st_size
        os.truncate(log, size - 100)  # the last record is now torn
        daemon.restart()
        assert session.summary()["step"] == 4
        notes = requests.get(f"{daemon.url}/readyz", timeout=10).json()["durability"]["recovery"]["notes"]
        assert any("torn tail" in note for note in notes), notes
        # Continue from step 5 again: the result equals a run that was never interrupted.
        for step in range(5, 8):
            assert session.step(step, gradients(initial, step)).status_code == 200
        final = session.parameters()
    assert_bit_identical(final, reference_run(binary, optimizer, hyperparameters, initial, 7))


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
