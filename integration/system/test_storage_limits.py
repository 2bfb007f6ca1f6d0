"""A full disk answers 507 and a read-only data directory 503; nothing changes, and the daemon
carries on when space or write access returns. Uses a small tmpfs of its own (needs root to mount;
skipped otherwise)."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests
from harness import LocalDaemon, RawSession, assert_bit_identical, gradients, model, wait_until


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory, leave: int) -> None:
    """Writes a filler file until only about `leave` bytes are free."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    with open(directory / "filler", "wb") as filler:
        filler.write(b"\0" * max(0, free - leave))


def test_full_disk_is_507_and_changes_nothing_then_recovers(binary, small_disk):
    initial = model(seed=6)  # ~50k parameters: a step request is ~200 KB
    with LocalDaemon(binary, data_dir=small_disk, args=["--fsync", "always"]) as daemon:
        session = RawSession(daemon.url, "adam", {"lr": 0.01})
        assert session.upload(initial).status_code == 200
        assert session.step(1, gradients(initial, 1)).status_code == 200
        before = session.parameters()
        fill(small_disk, leave=16 * 1024)
        refused = session.step(2, gradients(initial, 2))
        assert refused.status_code == 507, refused.text
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        assert "full" in refused.json()["detail"]
        assert session.summary()["step"] == 1
        assert_bit_identical(session.parameters(), before)
        # Space returns: the same step goes through, and survives a restart.
        os.remove(small_disk / "filler")
        assert session.step(2, gradients(initial, 2)).status_code == 200
        after = session.parameters()
        daemon.restart()
        assert session.summary()["step"] == 2
        assert_bit_identical(session.parameters(), after)


def test_a_session_created_on_a_full_disk_is_507_and_leaves_nothing(binary, small_disk):
    """A create refused for space leaves no directory behind: before, an empty session directory
    stayed and every later recovery reported it as a session that failed to load."""
    with LocalDaemon(binary, data_dir=small_disk, args=["--fsync", "always"]) as daemon:
        fill(small_disk, leave=0)
        refused = requests.post(f"{daemon.url}/v1/sessions", json={"optimizer": "adam"}, timeout=30)
        assert refused.status_code == 507, refused.text
        assert os.listdir(small_disk / "sessions") == []
        os.remove(small_disk / "filler")
        daemon.restart()
        assert (
            requests.get(f"{daemon.url}/readyz", timeout=30).json()["durability"]["recovery"]["failed"] == []
        )
        assert (
            requests.post(f"{daemon.url}/v1/sessions", json={"optimizer": "adam"}, timeout=30).status_code
            == 201
        )


def test_a_full_disk_while_a_step_body_is_spooled_is_507_and_leaves_no_file(binary, small_disk):
    """With `--log-direct-io 64KiB` the ~120 KB step bodies are written to a spool file while they
    arrive; when that write finds the disk full the step is refused the same way, changes nothing
    and leaves no spool or body file, and goes through once there is room."""
    initial = model(seed=8, scale=4)
    args = ["--fsync", "always", "--log-direct-io", "64KiB"]
    with LocalDaemon(binary, data_dir=small_disk, args=args) as daemon:
        session = RawSession(daemon.url, "adam", {"lr": 0.01})
        assert session.upload(initial).status_code == 200
        assert session.step(1, gradients(initial, 1)).status_code == 200
        directory = small_disk / "sessions" / session.id
        files = sorted(os.listdir(directory))
        assert any(name.endswith(".body") for name in files), files  # the step's body was spooled
        before = session.parameters()
        fill(small_disk, leave=16 * 1024)
        refused = session.step(2, gradients(initial, 2))
        assert refused.status_code == 507, refused.text
        assert "full" in refused.json()["detail"]
        assert session.summary()["step"] == 1
        assert_bit_identical(session.parameters(), before)
        assert sorted(os.listdir(directory)) == files
        os.remove(small_disk / "filler")
        assert session.step(2, gradients(initial, 2)).status_code == 200
        after = session.parameters()
        daemon.restart(kill=True)
        assert session.summary()["step"] == 2
        assert_bit_identical(session.parameters(), after)


def test_a_full_disk_under_a_snapshot_written_from_the_session_loses_nothing(binary, small_disk):
    """`--snapshot-copy 0` writes snapshots from the session under its lock. With steps not logged
    (`--durability snapshot`) a full disk then fails only the snapshot: the step is answered,
    `durable_step` stays at the last complete snapshot and no temporary file is left; once there is
    room the next snapshot goes through and a kill -9 resumes exactly there."""
    initial = model(seed=9, scale=4)
    args = ["--fsync", "always", "--durability", "snapshot", "--snapshot-every", "1", "--snapshot-copy", "0"]
    with LocalDaemon(binary, data_dir=small_disk, args=args) as daemon:
        session = RawSession(daemon.url, "adam", {"lr": 0.01})
        assert session.upload(initial).status_code == 200
        assert session.step(1, gradients(initial, 1)).status_code == 200
        wait_until(lambda: session.summary()["durable_step"] == 1, "the snapshot of step 1")
        directory = small_disk / "sessions" / session.id
        fill(small_disk, leave=16 * 1024)
        assert session.step(2, gradients(initial, 2)).status_code == 200
        wait_until(lambda: "snapshot failed" in daemon.log(), "the snapshot of step 2 to fail")
        summary = session.summary()
        assert summary["durable_step"] == summary["snapshot_step"] == 1
        assert "No space left on device" in summary["snapshot_problem"], summary.get("snapshot_problem")
        # Each request may schedule another try (it fails the same way); none leaves its file behind.
        wait_until(
            lambda: not [name for name in os.listdir(directory) if name.endswith(".tmp")],
            "failed snapshots to leave no temporary file",
        )
        os.remove(small_disk / "filler")
        assert session.step(3, gradients(initial, 3)).status_code == 200
        wait_until(lambda: session.summary()["durable_step"] == 3, "the snapshot of step 3")
        assert "snapshot_problem" not in session.summary()
        assert not [name for name in os.listdir(directory) if name.endswith(".tmp")]
        after = session.parameters()
        daemon.restart(kill=True)
        assert session.summary()["step"] == 3
        assert_bit_identical(session.parameters(), after)


def test_read_only_data_directory_is_503_until_it_is_writable_again(binary, small_disk):
    initial = model(seed=7)
    data = small_disk  # the mount point itself: the daemon log (kept beside it) stays off the small disk
    with LocalDaemon(binary, data_dir=data, args=["--fsync", "always"]) as daemon:
        session = RawSession(daemon.url, "sgd", {"lr": 0.1, "momentum": 0.9})
        assert session.upload(initial).status_code == 200
        assert session.step(1, gradients(initial, 1)).status_code == 200
        expected = session.parameters()
        daemon.process.terminate()
        daemon.process.wait()
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
        try:
            daemon.restart()
            ready = requests.get(f"{daemon.url}/readyz", timeout=10)
            assert ready.status_code == 503
            assert "Read-only" in ready.json()["durability"]["problem"]
            refused = requests.post(f"{daemon.url}/v1/sessions", json={"optimizer": "adam"}, timeout=10)
            assert refused.status_code == 503
            assert "data directory" in refused.json()["detail"]
            assert os.listdir(data / "sessions") == [session.id]  # nothing was touched
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
        daemon.restart()
        assert requests.get(f"{daemon.url}/readyz", timeout=10).status_code == 200
        assert session.summary()["step"] == 1
        assert_bit_identical(session.parameters(), expected)


def test_one_daemon_per_data_directory(binary, tmp_path):
    """A second daemon on a data directory another one holds does not start (it would append to the
    same logs: two histories mixed in one session); once the first is gone, it does."""
    data = tmp_path / "data"
    with LocalDaemon(binary, data_dir=data) as first:
        session = RawSession(first.url, "adam", {"lr": 0.01})
        second = subprocess.run(
            [str(binary), "serve", "--port", "0", "--data-dir", str(data)],
            capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert second.returncode != 0
        message = second.stderr.decode()
        assert "in use by another optimizerd" in message and str(data) in message, message
        assert session.summary()["step"] == 0  # the first one carries on
        first.restart(kill=True)  # the lock goes with the process, also on kill -9
        assert session.summary()["step"] == 0


def test_a_data_directory_whose_sessions_entry_is_a_file_is_not_ready(binary, tmp_path):
    """`sessions` must be a directory: a file there makes the data directory unavailable (503 and
    /readyz not ready), where before the daemon said ready and answered every create with 500."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "sessions").write_text("not a directory")
    with LocalDaemon(binary, data_dir=data) as daemon:
        ready = requests.get(f"{daemon.url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert "Not a directory" in ready.json()["durability"]["problem"]
        refused = requests.post(f"{daemon.url}/v1/sessions", json={"optimizer": "adam"}, timeout=30)
        assert refused.status_code == 503, refused.text
