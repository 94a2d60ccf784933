"""Admission, KV reservation and step planning of the continuous-batching scheduler."""

from __future__ import annotations

import itertools

import pytest

from paretoserve.engine.sampling import SamplingParams
from paretoserve.engine.scheduler import Scheduler, Sequence

_ids = itertools.count()


def seq(prompt_len: int, max_tokens: int) -> Sequence:
    return Sequence(rid=next(_ids), prompt=list(range(100, 100 + prompt_len)),
                    params=SamplingParams(max_tokens=max_tokens, temperature=0), sink=None)


def add_all(sched: Scheduler, seqs) -> None:
    for s in seqs:
        sched.add(s)


def finish_prefill(s: Sequence, first_token: int = 7) -> None:
    """What the engine does after the step holding a prompt's last chunk: all cached, one token sampled."""
    s.n_cached = len(s.prompt)
    s.output.append(first_token)


def test_reserved_is_prompt_plus_max_tokens() -> None:
    assert seq(10, 5).reserved == 15


def test_admit_assigns_distinct_slots_and_reserves_kv() -> None:
    sched = Scheduler(max_batch=3, kv_tokens=1000, max_step_tokens=64)
    a, b = seq(10, 5), seq(20, 10)
    sched.add(a)
    sched.add(b)
    assert sched.admit() == [a, b]
    assert {a.slot, b.slot} == {0, 1}
    assert sched.kv_reserved == 15 + 30
    assert not sched.waiting
    assert set(sched.running) == {a.rid, b.rid}


def test_admit_stops_when_slots_run_out() -> None:
    sched = Scheduler(max_batch=2, kv_tokens=1000, max_step_tokens=64)
    seqs = [seq(4, 4) for _ in range(3)]
    add_all(sched, seqs)
    assert sched.admit() == seqs[:2]
    assert list(sched.waiting) == seqs[2:]
    assert sched.admit() == []  # nothing freed, nothing admitted


def test_freed_slot_is_reused_by_the_next_request() -> None:
    sched = Scheduler(max_batch=2, kv_tokens=1000, max_step_tokens=64)
    a, b, c = seq(4, 4), seq(4, 4), seq(4, 4)
    add_all(sched, (a, b, c))
    sched.admit()
    assert c.slot == -1
    freed = a.slot
    assert sched.remove(a.rid) is a
    assert sched.admit() == [c]
    assert c.slot == freed
    assert {b.slot, c.slot} == {0, 1}


def test_fcfs_head_of_line_waits_even_if_a_later_request_fits() -> None:
    sched = Scheduler(max_batch=4, kv_tokens=100, max_step_tokens=64)
    running = seq(30, 30)  # reserves 60 of 100
    sched.add(running)
    assert sched.admit() == [running]
    big, small = seq(40, 10), seq(5, 5)  # big needs 50 (> 40 left); small needs 10 (would fit)
    sched.add(big)
    sched.add(small)
    assert sched.admit() == []
    assert list(sched.waiting) == [big, small]
    assert sched.kv_reserved == 60
    sched.remove(running.rid)
    assert sched.admit() == [big, small]  # in arrival order, once the head fits
    assert sched.kv_reserved == 60


def test_remove_releases_reservation_and_slot() -> None:
    sched = Scheduler(max_batch=2, kv_tokens=100, max_step_tokens=64)
    a = seq(10, 20)
    sched.add(a)
    sched.admit()
    a.n_cached = 10
    assert sched.kv_reserved == 30 and sched.kv_used == 10
    assert sched.remove(a.rid) is a
    assert sched.kv_reserved == 0
    assert sched.kv_used == 0
    assert sorted(sched.free_slots) == [0, 1]
    assert sched.remove(a.rid) is None  # a second removal is a no-op
    assert sched.kv_reserved == 0


def test_remove_a_waiting_request_leaves_accounting_alone() -> None:
    sched = Scheduler(max_batch=1, kv_tokens=100, max_step_tokens=64)
    a, b = seq(10, 10), seq(10, 10)
    sched.add(a)
    sched.add(b)
    sched.admit()
    assert sched.remove(b.rid) is b
    assert not sched.waiting
    assert sched.kv_reserved == 20
    assert sched.free_slots == []
    assert sched.remove(12345678) is None


def test_add_refuses_a_request_larger_than_the_whole_budget() -> None:
    sched = Scheduler(max_batch=2, kv_tokens=50, max_step_tokens=64)
    with pytest.raises(ValueError, match="51 KV tokens"):
        sched.add(seq(41, 10))
    assert not sched.waiting


def test_kv_used_counts_cached_tokens_of_running_sequences() -> None:
    sched = Scheduler(max_batch=2, kv_tokens=100, max_step_tokens=64)
    a, b = seq(10, 5), seq(8, 5)
    sched.add(a)
    sched.add(b)
    sched.admit()
    a.n_cached, b.n_cached = 11, 3
    assert sched.kv_used == 14


def test_plan_decodes_one_token_per_running_sequence_then_prefills() -> None:
    sched = Scheduler(max_batch=4, kv_tokens=1000, max_step_tokens=16)
    d1, d2, p = seq(5, 10), seq(6, 10), seq(30, 10)
    add_all(sched, (d1, d2, p))
    sched.admit()
    finish_prefill(d1, first_token=11)
    finish_prefill(d2, first_token=22)
    d2.output.append(23)
    d2.n_cached += 1  # d2 has decoded one token already

    items = sched.plan()
    assert [item.seq for item in items] == [d1, d2, p]
    assert (items[0].tokens, items[0].pos, items[0].wants_logits) == ([11], 5, True)
    assert (items[1].tokens, items[1].pos, items[1].wants_logits) == ([23], 7, True)
    # the prefill chunk gets what the two decode tokens leave of the 16-token step
    assert items[2].tokens == p.prompt[:14]
    assert items[2].pos == 0
    assert items[2].wants_logits is False
    assert sum(len(item.tokens) for item in items) == 16


def test_plan_chunks_a_long_prompt_and_wants_logits_only_for_the_last_chunk() -> None:
    sched = Scheduler(max_batch=2, kv_tokens=1000, max_step_tokens=8)
    p = seq(20, 4)
    sched.add(p)
    sched.admit()
    chunks = []
    while p.prefilling:
        (item,) = sched.plan()
        chunks.append(item)
        p.n_cached += len(item.tokens)  # what the engine does after the decode
    assert [len(c.tokens) for c in chunks] == [8, 8, 4]
    assert [c.pos for c in chunks] == [0, 8, 16]
    assert [c.wants_logits for c in chunks] == [False, False, True]
    assert sum((c.tokens for c in chunks), []) == p.prompt


def test_plan_splits_the_prefill_budget_across_sequences_in_admission_order() -> None:
    sched = Scheduler(max_batch=3, kv_tokens=1000, max_step_tokens=10)
    a, b, c = seq(6, 4), seq(6, 4), seq(6, 4)
    add_all(sched, (a, b, c))
    sched.admit()
    items = sched.plan()
    assert [(item.seq, len(item.tokens), item.wants_logits) for item in items] == [(a, 6, True), (b, 4, False)]
    assert items[1].tokens == b.prompt[:4]


def test_plan_with_decodes_filling_the_step_has_no_prefill() -> None:
    sched = Scheduler(max_batch=3, kv_tokens=1000, max_step_tokens=2)
    d1, d2, p = seq(3, 4), seq(3, 4), seq(3, 4)
    add_all(sched, (d1, d2, p))
    sched.admit()
    finish_prefill(d1)
    finish_prefill(d2)
    items = sched.plan()
    assert [item.seq for item in items] == [d1, d2]
    assert all(len(item.tokens) == 1 for item in items)


def test_plan_is_empty_without_running_sequences() -> None:
    sched = Scheduler(max_batch=2, kv_tokens=100, max_step_tokens=16)
    sched.add(seq(4, 4))  # queued, not admitted
    assert sched.plan() == []


def test_freed_slots_are_reused_lowest_first_and_a_step_is_in_slot_order() -> None:
    sched = Scheduler(max_batch=4, kv_tokens=1000, max_step_tokens=64)
    first = [seq(2, 4) for _ in range(4)]
    add_all(sched, first)
    sched.admit()
    for s in first:  # all end in the same step, released in admission order
        sched.remove(s.rid)
    second = [seq(2, 4) for _ in range(4)]
    add_all(sched, second)
    sched.admit()
    assert [s.slot for s in second] == [0, 1, 2, 3]  # not 3, 2, 1, 0: llama.cpp decodes those 2.4x slower
    for s in second[:2]:
        finish_prefill(s)
    sched.remove(second[0].rid)
    late = seq(2, 4)
    sched.add(late)
    sched.admit()
    assert late.slot == 0
    assert [item.seq.slot for item in sched.plan()] == [0, 1, 2, 3]  # decodes and prompt chunks together
