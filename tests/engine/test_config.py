"""EngineConfig: derived defaults, and refusals that name the offending flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from paretoserve.engine.config import DEFAULT_CTX_PER_SEQ, ConfigError, EngineConfig, available_cores


def config(**kwargs) -> EngineConfig:
    return EngineConfig(model_path=Path("m.gguf"), model_name="m", **kwargs)


def test_defaults() -> None:
    cfg = config()
    assert cfg.max_batch == 64
    assert cfg.ctx_per_seq == DEFAULT_CTX_PER_SEQ == 2048
    assert cfg.kv_tokens == 64 * 2048
    assert cfg.kv_layout == "split"
    assert cfg.threads == available_cores() >= 1


def test_kv_tokens_defaults_to_max_batch_times_ctx_per_seq() -> None:
    cfg = config(max_batch=16, ctx_per_seq=256)
    assert (cfg.kv_tokens, cfg.ctx_per_seq) == (4096, 256)


def test_ctx_per_seq_defaults_to_what_kv_tokens_leaves_each_sequence() -> None:
    assert config(max_batch=8, kv_tokens=4096).ctx_per_seq == 512
    assert config(max_batch=8, kv_tokens=4100).ctx_per_seq == 512  # floor division
    assert config(max_batch=8, kv_tokens=4096, kv_layout="unified").ctx_per_seq == 4096


def test_explicit_values_are_kept(cores) -> None:
    cores(4)
    cfg = config(max_batch=4, kv_tokens=4096, ctx_per_seq=512, threads=3, max_queue=0, max_step_tokens=4)
    assert (cfg.max_batch, cfg.kv_tokens, cfg.ctx_per_seq, cfg.threads, cfg.max_queue, cfg.max_step_tokens) == \
        (4, 4096, 512, 3, 0, 4)


def test_unified_layout_lets_one_sequence_use_the_whole_pool() -> None:
    cfg = config(max_batch=8, kv_tokens=1024, ctx_per_seq=1024, kv_layout="unified")
    assert cfg.ctx_per_seq == 1024
    with pytest.raises(ConfigError):
        config(max_batch=8, kv_tokens=1024, ctx_per_seq=1024, kv_layout="split")


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        config().max_batch = 3  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, flag, bad", [
    ({"max_batch": 0}, "--max-batch", 0),
    ({"max_batch": 5000}, "--max-batch", 5000),
    ({"max_batch": 2.5}, "--max-batch", 2.5),
    ({"max_batch": True}, "--max-batch", True),
    ({"kv_layout": "paged"}, "--kv-layout", "paged"),
    ({"ctx_per_seq": 8}, "--ctx-per-seq", 8),
    ({"ctx_per_seq": "256"}, "--ctx-per-seq", "256"),
    ({"kv_tokens": 8}, "--kv-tokens", 8),
    ({"kv_tokens": 1 << 27}, "--kv-tokens", 1 << 27),
    ({"threads": -1}, "--threads", -1),
    ({"threads": 2000}, "--threads", 2000),
    ({"max_queue": -1}, "--max-queue", -1),
    ({"max_batch": 8, "ctx_per_seq": 64, "max_step_tokens": 4}, "--max-step-tokens", 4),
    ({"max_step_tokens": 1 << 17}, "--max-step-tokens", 1 << 17),
])
def test_out_of_range_values_name_the_flag(kwargs: dict, flag: str, bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        config(**kwargs)
    message = str(info.value)
    assert message.startswith(flag + " ")
    assert message.endswith(f"got {bad!r}")


def test_max_step_tokens_error_explains_the_lower_bound() -> None:
    with pytest.raises(ConfigError, match=r"--max-step-tokens must be an integer in \[16, 65536\] "
                                          r"\(at least --max-batch"):
        config(max_batch=16, ctx_per_seq=64, max_step_tokens=15)


def test_ctx_per_seq_that_does_not_fit_shows_the_arithmetic() -> None:
    with pytest.raises(ConfigError) as info:
        config(max_batch=8, kv_tokens=2048, ctx_per_seq=512)
    message = str(info.value)
    for part in ("--ctx-per-seq 512", "--kv-tokens 2048", "256 tokens", "--kv-layout split", "--max-batch 8"):
        assert part in message


def test_kv_tokens_too_small_for_the_batch_is_refused() -> None:
    with pytest.raises(ConfigError, match="--kv-tokens 512 leaves each sequence 8 tokens"):
        config(max_batch=64, kv_tokens=512)
