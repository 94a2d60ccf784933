"""The device's memory shared by several models: parts, shares and the refusal of what does not fit."""

import math

import pytest

from paretoserve.advise.memory_map import MEMORY_CEILING, MemoryMap, MemoryMapError, ModelMemory, memory_map

MIB = 2**20


def part(model: str, weights_mib: float, kv_mib: float, replicas: int = 1) -> ModelMemory:
    return ModelMemory(model, replicas, 32, 32 * 66, weights_mib * MIB, kv_mib * MIB)


def test_each_model_gets_its_need_and_an_equal_part_of_the_spare_share():
    placed = memory_map([part("a", 200, 100, replicas=2), part("b", 100, 0)], 1000 * MIB)
    a, b = placed.models
    assert placed.used_bytes == 700 * MIB and placed.free_bytes == 300 * MIB
    spare = (MEMORY_CEILING - 0.7) / 2
    assert a.mem_fraction == pytest.approx(0.6 + spare, abs=1e-3) and b.mem_fraction == pytest.approx(0.1 + spare,
                                                                                                      abs=1e-3)
    assert a.mem_fraction + b.mem_fraction <= MEMORY_CEILING  # a second engine is never refused at start
    assert placed.lines()[-1] == "memory: 700 MiB of 1,000 MiB in all, 300 MiB free"
    assert "2 x (weights 200 MiB + KV at cap 32 100 MiB, 2112 tokens), 0.70 of the device" in placed.lines()[0]


def test_a_placement_past_the_ceiling_is_refused_naming_the_flag():
    with pytest.raises(MemoryMapError, match=r"--model: the placement needs 950 MiB \(95% of the device\).*"
                                             r"--device-memory"):
        memory_map([part("a", 900, 0), part("b", 50, 0)], 1000 * MIB)


def test_an_unknown_device_has_no_shares_and_says_so():
    placed = memory_map([part("a", 10, 1), part("b", 10, 1)], None)
    assert all(m.mem_fraction is None for m in placed.models) and placed.free_bytes is None
    assert placed.lines()[-1] == "memory: 22 MiB in all; the device's memory is unknown"


def test_the_map_reads_back_from_its_json():
    placed = memory_map([part("a", 200, 100), part("b", 100, 50)], 1000 * MIB)
    again = MemoryMap.from_dict(placed.to_dict())
    assert again == placed and math.isclose(placed.to_dict()["models"][0]["total_bytes"], 300 * MIB)
