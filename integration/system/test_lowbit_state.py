"""Compact optimizer state (state_dtype bf16/int8, DESIGN §10) across kill -9: the log and the
snapshots keep the compact form, and a daemon killed at random moments comes back bit-identical to
one that never stopped, with the same state dtype and compact slots."""

from __future__ import annotations

import random

import pytest
from harness import LocalDaemon, RawSession, assert_bit_identical, gradients, model
from test_durability import step_until_killed

STEPS = 40
HYPERPARAMETERS = {"lr": 0.01, "weight_decay": 0.01}


def run_without_stopping(binary, state_dtype: str, initial: dict) -> dict:
    with LocalDaemon(binary, args=["--fsync", "never"]) as daemon:
        session = RawSession(daemon.url, "adamw", HYPERPARAMETERS, state_dtype=state_dtype)
        assert session.upload(initial).status_code == 200
        for step in range(1, STEPS + 1):
            answer = session.step(step, gradients(initial, step))
            assert answer.status_code == 200, answer.text
        return session.parameters()


@pytest.mark.parametrize("state_dtype", ["int8", "bf16"])
def test_compact_state_survives_kill_9_bit_identically(binary, tmp_path, state_dtype):
    initial = model(seed=3, scale=20)  # ~200k parameters: 8-bit blocks, and requests long enough to cut
    chooser = random.Random(11)
    kills = 0
    with LocalDaemon(
        binary, data_dir=tmp_path / "data", args=["--fsync", "always", "--snapshot-every", "7"]
    ) as daemon:
        session = RawSession(daemon.url, "adamw", HYPERPARAMETERS, state_dtype=state_dtype)
        assert session.upload(initial).status_code == 200
        acknowledged = 0
        while acknowledged < STEPS:
            acknowledged, _ = step_until_killed(daemon, session, initial, acknowledged, STEPS, chooser)
            daemon.process.wait()
            kills += 1
            daemon.restart()
            summary = session.summary()
            assert acknowledged <= summary["step"] <= acknowledged + 1, (acknowledged, summary["step"])
            assert summary["state_dtype"] == state_dtype
            embed = next(p for p in summary["parameters"] if p["name"] == "embed.weight")  # 128k elements
            slots = {slot["name"]: slot for slot in embed["state"]}
            assert slots["exp_avg"]["dtype"] == ("u8" if state_dtype == "int8" else "bf16")
            acknowledged = summary["step"]
        final = session.parameters()
        compact_bytes = session.summary()["state_bytes"]
    assert kills >= 3
    assert_bit_identical(final, run_without_stopping(binary, state_dtype, initial))
    assert compact_bytes == sum(moment_bytes(state_dtype, value.size) for value in initial.values())


def moment_bytes(state_dtype: str, n: int) -> int:
    """Adam's two moments: bfloat16 2 bytes each; 8-bit codes 1 byte each plus a float32 absmax per
    256, float32 under bitsandbytes' min_8bit_size (4096)."""
    if state_dtype == "bf16":
        return 4 * n
    return 2 * n + 8 * -(-n // 256) if n >= 4096 else 8 * n
