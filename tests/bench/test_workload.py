"""Workloads: synthetic prompts of exact lengths, the ShareGPT filter, JSONL prompts, token ranges."""

from __future__ import annotations

import json

import pytest

from paretoserve.bench.config import BenchConfigError, TokenRange
from paretoserve.bench.tokenizer import ApproxTokenizer, GgufTokenizer
from paretoserve.bench.workload import SYNTHETIC_ID_RANGE, WorkloadError, jsonl, load, sharegpt, synthetic


def test_synthetic_token_id_prompts_have_exact_lengths_and_are_seeded():
    specs = synthetic(50, TokenRange(64, 64), TokenRange(16, 16), seed=3, as_ids=True)
    assert all(len(s.prompt) == 64 == s.input_tokens and s.output_tokens == 16 for s in specs)
    assert all(SYNTHETIC_ID_RANGE[0] <= t < SYNTHETIC_ID_RANGE[1] for s in specs for t in s.prompt)
    assert specs == synthetic(50, TokenRange(64, 64), TokenRange(16, 16), seed=3, as_ids=True)
    assert specs != synthetic(50, TokenRange(64, 64), TokenRange(16, 16), seed=4, as_ids=True)
    assert len({s.prompt for s in specs}) == 50  # distinct prompts: no prefix-cache shortcuts


def test_synthetic_lengths_drawn_from_a_range():
    specs = synthetic(400, TokenRange(10, 20), TokenRange(1, 3), seed=0, as_ids=True)
    assert {s.input_tokens for s in specs} == set(range(10, 21))
    assert {s.output_tokens for s in specs} == {1, 2, 3}


@pytest.mark.integration
def test_synthetic_text_is_one_word_per_token_in_the_bundled_models_vocabulary():
    specs = synthetic(5, TokenRange(37, 37), None, seed=0, as_ids=False)
    assert all(len(s.prompt.split()) == 37 and s.output_tokens == 128 for s in specs)
    from paretoserve.model import resolve_model

    tokenizer = GgufTokenizer(resolve_model("default").path)
    try:
        assert [tokenizer.count(s.prompt) for s in specs] == [38] * 5  # + BOS
    finally:
        tokenizer.close()


@pytest.mark.parametrize("text,expected", [("64", (64, 64)), ("8:32", (8, 32)), (7, (7, 7))])
def test_token_range_parse(text, expected):
    r = TokenRange.parse("--input-tokens", text)
    assert (r.low, r.high) == expected


@pytest.mark.parametrize("text", ["0", "-3", "9:3", "a", "1:2:3", "", "2000000"])
def test_token_range_errors_name_the_flag(text):
    with pytest.raises(BenchConfigError, match=r"--output-tokens must be N or LO:HI"):
        TokenRange.parse("--output-tokens", text)


def conversation(prompt_words: int, reply_words: int) -> dict:
    return {"conversations": [{"from": "human", "value": "abc " * prompt_words},
                              {"from": "gpt", "value": "xyz " * reply_words}]}


def test_sharegpt_keeps_the_papers_filter(tmp_path):
    path = tmp_path / "sg.json"
    # With ~4 characters per token each "abc " word is one token.
    data = [conversation(10, 20), conversation(1100, 10), conversation(1000, 1100), conversation(2, 50),
            conversation(50, 2), {"conversations": [{"from": "human", "value": "only one turn"}]}, "junk",
            conversation(1024, 1024)]
    path.write_text(json.dumps(data))
    specs = sharegpt(path, 100, seed=0, output_tokens=None, tokenizer=ApproxTokenizer())
    assert sorted((s.input_tokens, s.output_tokens) for s in specs) == [(10, 20), (1024, 1024)]
    fixed = sharegpt(path, 100, seed=0, output_tokens=TokenRange(8, 8), tokenizer=ApproxTokenizer())
    assert sorted((s.input_tokens, s.output_tokens) for s in fixed) == [(10, 8), (50, 8), (1000, 8), (1024, 8)]


def test_sharegpt_errors_name_the_flag(tmp_path):
    with pytest.raises(WorkloadError, match="--dataset sharegpt:.*No such file"):
        sharegpt(tmp_path / "missing.json", 1, 0, None, ApproxTokenizer())
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(WorkloadError, match="not valid JSON"):
        sharegpt(bad, 1, 0, None, ApproxTokenizer())
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(WorkloadError, match="no usable request"):
        sharegpt(empty, 1, 0, None, ApproxTokenizer())


def test_jsonl_prompts(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "hello there", "max_tokens": 7}\n\n{"text": "just text"}\n')
    specs = jsonl(path, 10, 0, None, ApproxTokenizer())
    assert [(s.prompt, s.output_tokens) for s in specs] == [("hello there", 7), ("just text", 128)]
    assert [s.output_tokens for s in load(f"jsonl:{path}", 10, TokenRange(1, 1), TokenRange(5, 5), 0, False)] == [5, 5]
    path.write_text('{"prompt": "ok"}\n{"max_tokens": 3}\n')
    with pytest.raises(WorkloadError, match="line 2 has no 'prompt' string"):
        jsonl(path, 10, 0, None, ApproxTokenizer())
    path.write_text("not json\n")
    with pytest.raises(WorkloadError, match="line 1 is not JSON"):
        jsonl(path, 10, 0, None, ApproxTokenizer())
