"""Placement of whole tensors on shards: deterministic, balanced by bytes, a JSON round trip; and
the resharded checkpoint's checksum is the daemon's CRC-32C."""

from __future__ import annotations

import random

import pytest
from optimizerd.placement import Placement, Shard, assign
from optimizerd.sharded_checkpoint import crc32c


def test_largest_first_onto_the_least_loaded_shard_ties_by_index_then_name():
    sizes = {"a": 40, "b": 30, "c": 30, "d": 20, "e": 10}
    # a→0; b→1 (b before c: same size, by name); c→2; d→1 (shards 1 and 2 tie at 30: index); e→2
    assert assign(sizes, 3) == {"a": 0, "b": 1, "c": 2, "d": 1, "e": 2}
    assert assign({"x": 5, "y": 5}, 4) == {"x": 0, "y": 1}


def test_the_same_sizes_in_any_order_give_the_same_placement():
    rng = random.Random(7)
    sizes = {f"layer{i}.weight": rng.choice([64, 4096, 65536, 12]) for i in range(60)}
    shuffled = list(sizes.items())
    rng.shuffle(shuffled)
    assert assign(sizes, 3) == assign(dict(shuffled), 3)


@pytest.mark.parametrize("shards", [1, 2, 3, 5])
def test_loads_differ_by_at_most_the_largest_tensor(shards):
    rng = random.Random(shards)
    sizes = {f"t{i}": rng.randint(1, 10_000) for i in range(97)}
    placed = assign(sizes, shards)
    loads = [sum(size for name, size in sizes.items() if placed[name] == s) for s in range(shards)]
    assert sum(loads) == sum(sizes.values())
    assert max(loads) - min(loads) <= max(sizes.values())
    assert set(placed) == set(sizes)


def test_new_parameters_are_placed_onto_the_current_loads_and_keep_the_upload_order():
    placement = Placement([Shard("u0", "s0", "t0"), Shard("u1", "s1", "t1")])
    placement.place({"big": 100, "small": 10})
    placement.place({"small": 10, "next": 50})
    assert placement.parameters == ["big", "small", "next"]
    assert placement.tensors == {"big": 0, "small": 1, "next": 1}
    assert placement.on_shard(1) == ["small", "next"]


def test_json_round_trip_and_bad_documents():
    placement = Placement([Shard("http://a", "id-a", "tok")], optimizer="sgd", hyperparameters={"lr": 0.1})
    placement.place({"w": 12})
    again = Placement.from_json(placement.to_json())
    assert again == placement
    with pytest.raises(ValueError, match="not an optimizerd placement"):
        Placement.from_json('{"format": "other"}')
    broken = placement.to_json().replace('"w": 0', '"w": 3')
    with pytest.raises(ValueError, match="on no shard"):
        Placement.from_json(broken)
    with pytest.raises(ValueError, match="at least one shard"):
        assign({"w": 1}, 0)


def test_crc32c_matches_the_standard_check_value():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
