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


# -- tiny temperatures and seeds ----------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1e-308, 1e-12, 5e-6])
def test_a_tiny_temperature_decodes_greedily_without_nan(sampler: Sampler, temperature: float) -> None:
    params = SamplingParams(temperature=temperature, seed=0)
    row = logits_with_peak(17, second=9)
    assert sampler.sample(row.copy(), params, params.make_rng(), 0) == 17
    assert sampler.sample(row.copy(), params, np.random.default_rng(0), 0) == 17  # even when handed a stream


def draws(seed: int) -> list[float]:
    """The first four numbers of the stream a request with `seed` samples from."""
    rng = SamplingParams(seed=seed).make_rng()
    assert rng is not None  # the default temperature samples
    return rng.random(4).tolist()


@pytest.mark.parametrize("seed", [-(1 << 63), -2, (1 << 63) - 1, 0])
def test_every_int64_seed_makes_a_stream_that_repeats(seed: int) -> None:
    assert draws(seed) == draws(seed)


def test_a_negative_seed_is_its_64_bit_pattern() -> None:
    assert draws(-2) == np.random.default_rng((1 << 64) - 2).random(4).tolist() != draws(2)


def test_seed_minus_one_means_random_and_other_seeds_repeat() -> None:
    assert draws(-1) != draws(-1)
    assert draws(-5) == draws(-5) and draws(7) == draws(7) and draws(-5) != draws(7)


# -- logit_bias and penalties -----------------------------------------------------------------------


def test_no_bias_and_no_penalty_costs_no_per_request_state() -> None:
    assert SamplingParams().make_adjust() is None
    assert SamplingParams(presence_penalty=0.0, frequency_penalty=0.0, logit_bias={}).make_adjust() is None


def test_logit_bias_forces_or_bans_a_token(sampler: Sampler) -> None:
    row = logits_with_peak(17, second=9)
    forced = SamplingParams(temperature=0, logit_bias={30: 100.0})
    banned = SamplingParams(temperature=0, logit_bias={17: -100.0})
    assert sampler.sample(row.copy(), forced, None, 0, forced.make_adjust()) == 30
    assert sampler.sample(row.copy(), banned, None, 0, banned.make_adjust()) == 9


def greedy_run(sampler: Sampler, params: SamplingParams, n: int) -> list[int]:
    row = logits_with_peak(17, second=9)  # 17 at 5.0, 9 at 4.0
    adjust = params.make_adjust()
    return [sampler.sample(row.copy(), params, None, i, adjust) for i in range(n)]


def test_frequency_penalty_grows_with_each_repeat(sampler: Sampler) -> None:
    # 17 stays ahead while 5.0 - 0.4 k > 4.0, i.e. for k = 0, 1, 2; then both alternate by their counts.
    assert greedy_run(sampler, SamplingParams(temperature=0, frequency_penalty=0.4), 4) == [17, 17, 17, 9]


def test_presence_penalty_counts_a_token_once(sampler: Sampler) -> None:
    # After one 17: 17 at 3.5 < 9 at 4.0; after one 9 too: 3.5 against 2.5, and it stays so.
    assert greedy_run(sampler, SamplingParams(temperature=0, presence_penalty=1.5), 4) == [17, 9, 17, 17]


def test_a_negative_penalty_encourages_repeats(sampler: Sampler) -> None:
    params = SamplingParams(temperature=0, presence_penalty=-2.0, logit_bias={9: 1.5})  # 9 starts ahead: 5.5
    assert greedy_run(sampler, params, 3) == [9, 9, 9]


def test_penalties_work_with_sampling_too(sampler: Sampler) -> None:
    params = SamplingParams(temperature=0.5, presence_penalty=2.0, frequency_penalty=2.0, seed=3, max_tokens=30)
    adjust, rng = params.make_adjust(), params.make_rng()
    row = logits_with_peak(17, second=9)
    picks = [sampler.sample(row.copy(), params, rng, i, adjust) for i in range(30)]
    assert len(set(picks)) > 5  # without the penalties nearly every pick is 17


def test_penalty_counts_grow_past_their_first_size() -> None:
    params = SamplingParams(frequency_penalty=1.0, max_tokens=1000)
    adjust = params.make_adjust()
    for token in list(range(600)) + [5, 5]:
        adjust.record(token)
    logits = np.zeros(VOCAB * 20, dtype=np.float32)
    adjust.apply(logits)
    assert logits[5] == -3.0 and logits[599] == -1.0 and logits[600] == 0.0


def test_a_resumed_request_counts_the_tokens_generated_before_it(sampler: Sampler) -> None:
    fresh = greedy_run(sampler, SamplingParams(temperature=0, frequency_penalty=0.4), 4)
    resumed = SamplingParams(temperature=0, frequency_penalty=0.4, generated=tuple(fresh[:2]), max_tokens=2)
    assert greedy_run(sampler, resumed, 2) == fresh[2:]
