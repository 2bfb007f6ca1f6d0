"""The wire codec on its own (no daemon): bfloat16 rounding, safetensors buffers, helpers."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import safetensors
from optimizerd import wire
from optimizerd.body import Converting, build_body
from optimizerd.session import flatten_terms, parse_metadata


def test_bfloat16_rounds_to_nearest_even():
    values = np.array(
        [
            1.0,
            1 + 2**-8,
            1 + 3 * 2**-8,
            1 + 2**-8 + 2**-12,
            -(1 + 3 * 2**-8),
            0.0,
            -0.0,
            2.0**-133,
            3.3963e38,
            3.3961e38,
        ],
        dtype=np.float32,
    )
    bits = wire.float32_to_bfloat16_bits(values)
    # halfway → even (0x3F80), halfway → even (0x3F82), above half → up, sign kept, zero signs,
    # a float32 subnormal, and values just above and below the midpoint between bfloat16's largest finite and +inf.
    assert [hex(b) for b in bits] == [
        "0x3f80",
        "0x3f80",
        "0x3f82",
        "0x3f81",
        "0xbf82",
        "0x0",
        "0x8000",
        "0x1",
        "0x7f80",
        "0x7f7f",
    ]


def test_bfloat16_keeps_nan_and_infinities():
    bits = wire.float32_to_bfloat16_bits(np.array([np.inf, -np.inf, np.nan, -np.nan], np.float32))
    back = wire.bfloat16_bits_to_float32(bits)
    assert back[0] == np.inf and back[1] == -np.inf
    assert np.isnan(back[2]) and np.isnan(back[3])


def test_every_bfloat16_value_round_trips_exactly():
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    values = wire.bfloat16_bits_to_float32(bits)
    again = wire.float32_to_bfloat16_bits(values)
    finite = ~np.isnan(values)
    assert np.array_equal(again[finite], bits[finite])


def test_bfloat16_matches_torch_when_available(rng):
    torch = pytest.importorskip("torch")
    values = (rng.standard_normal(100_000) * 10.0 ** rng.integers(-30, 30, 100_000)).astype(np.float32)
    ours = wire.float32_to_bfloat16_bits(values)
    theirs = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_encode_decode_round_trip(dtype, rng):
    tensors = {"layer.weight": rng.standard_normal((3, 5)).astype(np.float32), "scalar": np.float32(2.5)}
    tensors["w.indices"] = np.array([0, 4, 7], dtype=np.int32)
    buffer = wire.encode(tensors, {"step": 3, "loss": 0.5}, dtype=dtype)
    decoded, metadata = wire.decode(buffer)
    assert metadata == {"step": "3", "loss": "0.5"}
    expected = wire.round_to_wire_dtype(tensors["layer.weight"], dtype)
    assert decoded["layer.weight"].dtype == np.float32 and decoded["layer.weight"].flags.writeable
    np.testing.assert_array_equal(decoded["layer.weight"], expected)
    assert decoded["scalar"].shape == () and float(decoded["scalar"]) == 2.5
    np.testing.assert_array_equal(decoded["w.indices"], [0, 4, 7])
    assert decoded["w.indices"].dtype == np.int32


def test_hand_built_bf16_buffer_is_valid_safetensors(rng):
    tensors = {"a": rng.standard_normal(7).astype(np.float32), "a.indices": np.arange(3, dtype=np.int64)}
    buffer = wire.encode(tensors, {"step": "1"}, dtype="bf16")
    (length,) = struct.unpack("<Q", buffer[:8])
    assert length % 8 == 0
    header = json.loads(buffer[8 : 8 + length])
    assert header["a"]["dtype"] == "BF16" and header["a.indices"]["dtype"] == "I64"
    assert header["__metadata__"] == {"step": "1"}
    # The I64 tensor is aligned (widest first) and the data has no gaps.
    assert header["a.indices"]["data_offsets"] == [0, 24] and header["a"]["data_offsets"] == [24, 38]
    assert len(buffer) == 8 + length + 38
    parsed = dict(safetensors.deserialize(buffer))  # the reference parser accepts it
    assert bytes(parsed["a"]["data"]) == wire.float32_to_bfloat16_bits(tensors["a"]).tobytes()


def test_keep_order_writes_tensors_in_the_given_order():
    tensors = {"z": np.ones(3, np.float32), "a": np.zeros(2, np.float32), "m": np.ones((1, 2), np.float32)}
    buffer = wire.encode(tensors, keep_order=True)
    decoded, _ = wire.decode(buffer)
    assert list(decoded) == ["z", "a", "m"]
    assert {k: v.tolist() for k, v in decoded.items()} == {k: v.tolist() for k, v in tensors.items()}
    assert sorted(dict(safetensors.deserialize(buffer))) == ["a", "m", "z"]


def test_decode_can_keep_16_bit_values(rng):
    x = rng.standard_normal(4).astype(np.float32)
    f16, _ = wire.decode(wire.encode({"x": x}, dtype="f16"), float32=False)
    bf16, _ = wire.decode(wire.encode({"x": x}, dtype="bf16"), float32=False)
    assert f16["x"].dtype == np.float16 and bf16["x"].dtype == np.uint16


def test_encode_rejects_bad_input():
    with pytest.raises(ValueError, match="dtype"):
        wire.encode({"x": np.ones(2)}, dtype="f64")
    with pytest.raises(TypeError, match="'x'"):
        wire.encode({"x": np.array(["a"])})
    with pytest.raises(ValueError):
        wire.decode(b"\x01\x02")


def test_importing_the_package_does_not_import_torch():
    code = "import sys, optimizerd, optimizerd.testing; assert 'torch' not in sys.modules, 'torch imported'"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_flatten_terms():
    a, b = np.ones(1), np.zeros(1)
    assert flatten_terms({"w": a}) == {"w": a}
    assert flatten_terms({0: {"w": a}, 1: {"w": b}}) == {"0/w": a, "1/w": b}
    assert flatten_terms([{"w": a}, {"w": b}]) == {"0/w": a, "1/w": b}
    assert flatten_terms(None) == {}
    with pytest.raises(TypeError):
        flatten_terms({0: {"w": a}, "v": b})


def test_parse_metadata_types_values():
    parsed = parse_metadata(
        {
            "step": "4",
            "skipped": "false",
            "lr": "0.001",
            "loss": "nan",
            "term_weights": '{"w":[1,0.5]}',
            "label": "x y",
        }
    )
    assert parsed["step"] == 4 and parsed["skipped"] is False and parsed["lr"] == 0.001
    assert np.isnan(parsed["loss"]) and parsed["term_weights"] == {"w": [1, 0.5]} and parsed["label"] == "x y"


def test_large_conversions_are_sent_as_they_finish_with_the_same_bytes(rng):
    """A large 16-bit tensor is converted on the worker thread (the body knows its size at once);
    the bytes are those of a conversion done up front, however many times the body is sent."""
    tensors = {
        "a": rng.standard_normal(1 << 20).astype(np.float32),
        "b": rng.standard_normal(5).astype(np.float32),
        "c": rng.standard_normal((1 << 10, 1 << 10)).astype(np.float32),
    }
    for dtype in ("bf16", "f16"):
        body = build_body(tensors, {"step": "1"}, dtype=dtype)
        assert [isinstance(part, Converting) for part in body.parts] == [True, False, True]
        assert len(body) == len(body.head) + 2 * sum(t.size for t in tensors.values())
        once = body.tobytes()
        assert body.tobytes() == once  # a retry sends the same bytes
        decoded, _ = wire.decode(once)
        for name, values in tensors.items():
            np.testing.assert_array_equal(decoded[name], wire.round_to_wire_dtype(values, dtype))
