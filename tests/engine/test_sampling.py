"""The token sampler: greedy, EOG masking, top-k, top-p and seeded sampling."""

from __future__ import annotations

import numpy as np
import pytest

from paretoserve.engine.sampling import Sampler, SamplingParams

VOCAB = 50
EOG = 3  # the fake model's end-of-generation token


def logits_with_peak(peak: int, second: int | None = None) -> np.ndarray:
    """Random small logits with one clear maximum at `peak` (and a runner-up at `second`)."""
    row = np.random.default_rng(0).normal(0.0, 0.1, VOCAB).astype(np.float32)
    if second is not None:
        row[second] = 4.0
    row[peak] = 5.0
    return row


@pytest.fixture
def sampler() -> Sampler:
    return Sampler(eog_ids=np.array([EOG], dtype=np.int64))


def test_greedy_is_argmax(sampler: Sampler) -> None:
    for peak in (0, 17, VOCAB - 1):
        row = logits_with_peak(peak)
        params = SamplingParams(temperature=0)
        assert params.make_rng() is None
        assert sampler.sample(row, params, None, n_generated=0) == peak


def test_greedy_returns_eog_when_it_is_the_best_token(sampler: Sampler) -> None:
    assert sampler.sample(logits_with_peak(EOG, second=9), SamplingParams(temperature=0), None, 0) == EOG


def test_ignore_eos_masks_eog(sampler: Sampler) -> None:
    params = SamplingParams(temperature=0, ignore_eos=True)
    assert sampler.sample(logits_with_peak(EOG, second=9), params, None, n_generated=50) == 9


def test_min_tokens_masks_eog_until_reached(sampler: Sampler) -> None:
    params = SamplingParams(temperature=0, min_tokens=3)
    assert sampler.sample(logits_with_peak(EOG, second=9), params, None, n_generated=2) == 9
    assert sampler.sample(logits_with_peak(EOG, second=9), params, None, n_generated=3) == EOG


def test_eog_mask_applies_to_stochastic_sampling(sampler: Sampler) -> None:
    params = SamplingParams(temperature=1.0, ignore_eos=True, seed=0)
    rng = params.make_rng()
    row = np.zeros(VOCAB, dtype=np.float32)
    row[EOG] = 20.0  # EOG would be sampled with probability ~1 if unmasked
    picks = {sampler.sample(row.copy(), params, rng, 0) for _ in range(200)}
    assert EOG not in picks
    assert len(picks) > 5  # the rest is uniform


def test_top_k_1_equals_greedy(sampler: Sampler) -> None:
    params = SamplingParams(temperature=1.5, top_k=1, seed=7)
    rng = params.make_rng()
    for peak in (2, 30, 44):
        row = logits_with_peak(peak, second=(peak + 1) % VOCAB)
        greedy = sampler.sample(row.copy(), SamplingParams(temperature=0), None, 0)
        assert [sampler.sample(row.copy(), params, rng, 0) for _ in range(20)] == [greedy] * 20


def test_top_k_limits_candidates_to_the_k_best(sampler: Sampler) -> None:
    row = np.zeros(VOCAB, dtype=np.float32)
    row[[5, 6, 7]] = [3.0, 2.9, 2.8]
    params = SamplingParams(temperature=5.0, top_k=3, seed=1)
    rng = params.make_rng()
    picks = {sampler.sample(row.copy(), params, rng, 0) for _ in range(300)}
    assert picks == {5, 6, 7}


def test_tiny_top_p_keeps_only_the_top_token(sampler: Sampler) -> None:
    row = np.zeros(VOCAB, dtype=np.float32)
    row[12] = 1.0  # the most likely token, but far from certain at temperature 2
    params = SamplingParams(temperature=2.0, top_p=1e-6, seed=3)
    rng = params.make_rng()
    assert {sampler.sample(row.copy(), params, rng, 0) for _ in range(100)} == {12}


def test_top_p_keeps_the_smallest_set_reaching_p(sampler: Sampler) -> None:
    row = np.full(VOCAB, -np.inf, dtype=np.float32)
    row[[1, 2, 13]] = np.log([0.5, 0.3, 0.2])  # probabilities 0.5, 0.3, 0.2
    params = SamplingParams(temperature=1.0, top_p=0.7, seed=4)
    rng = params.make_rng()
    picks = [sampler.sample(row.copy(), params, rng, 0) for _ in range(400)]
    assert set(picks) == {1, 2}
    assert 0.5 < picks.count(1) / len(picks) < 0.75  # renormalised: 0.5 / 0.8 = 0.625


def test_top_k_then_top_p_map_back_to_vocabulary_ids(sampler: Sampler) -> None:
    row = np.zeros(VOCAB, dtype=np.float32)
    row[[40, 41, 42]] = [10.0, 9.0, 8.0]
    params = SamplingParams(temperature=1.0, top_k=3, top_p=0.5, seed=5)
    rng = params.make_rng()
    assert {sampler.sample(row.copy(), params, rng, 0) for _ in range(50)} == {40}


def test_seeded_sampling_is_reproducible(sampler: Sampler) -> None:
    row = np.random.default_rng(1).normal(0.0, 1.0, VOCAB).astype(np.float32)
    params = SamplingParams(temperature=1.0, top_p=0.95, top_k=20, seed=1234)

    def draw(p: SamplingParams) -> list[int]:
        rng = p.make_rng()
        return [sampler.sample(row.copy(), p, rng, i) for i in range(40)]

    first = draw(params)
    assert draw(params) == first
    assert len(set(first)) > 3  # really stochastic, not a constant
    others = [draw(SamplingParams(temperature=1.0, top_p=0.95, top_k=20, seed=s)) for s in (1, 2, 3)]
    assert any(o != first for o in others)


def test_temperature_sharpens_the_distribution(sampler: Sampler) -> None:
    row = np.zeros(VOCAB, dtype=np.float32)
    row[0] = 1.0
    hot = SamplingParams(temperature=2.0, seed=9)
    cold = SamplingParams(temperature=0.05, seed=9)
    hot_rng, cold_rng = hot.make_rng(), cold.make_rng()
    hot_picks = [sampler.sample(row.copy(), hot, hot_rng, 0) for _ in range(200)]
    cold_picks = [sampler.sample(row.copy(), cold, cold_rng, 0) for _ in range(200)]
    assert cold_picks.count(0) == 200
    assert hot_picks.count(0) < 50
