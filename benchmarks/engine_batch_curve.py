"""Throughput of the HTTP engine vs a bare batched llama_decode loop, batch 1 .. 64, in one run.

For each batch B: B requests with the same fixed input and output lengths (token-id prompts,
ignore_eos, greedy) are sent at once to a fresh `paretoserve engine --max-batch B`, and the
same work is done by a minimal loop (prefill every prompt, then one llama_decode per step with
one token per sequence and a numpy argmax) in this process. Both count from the first prompt
token to the last generated token, so both include prefill. Also printed: the engine's own
Python time per step outside llama_decode, read from its /metrics.

    python benchmarks/engine_batch_curve.py [--batches 1,2,4,8,16,32,64] [--input-tokens 32]
                                            [--output-tokens 128] [--threads 2] [--repack auto]

Both sides load the weights with the same `--repack` placement (see paretoserve/engine/repack.py).

Targets (issue 2): HTTP/bare >= 0.9 at B=64 and >= 0.8 at B=1.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
import llama_cpp
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from paretoserve.engine.llama_load import load_model, resolve_repack
from paretoserve.engine.llama_runner import quiet_llama_logs
from paretoserve.engine.repack import REPACK_MODES
from paretoserve.engine_process import EngineProcess, embedded_engine_cmd, free_port
from paretoserve.model import resolve_model


def prompts(batch: int, n_tokens: int) -> list[list[int]]:
    """Distinct token-id prompts of exactly `n_tokens` tokens (BOS + ordinary vocabulary ids)."""
    rng = np.random.default_rng(0)
    return [[2] + rng.integers(1000, 20000, n_tokens - 1).tolist() for _ in range(batch)]


def bare_loop(model, batch: int, prompt_ids: list[list[int]], n_out: int, threads: int) -> float:
    """Generated tok/s of the plainest batched decode loop llama-cpp-python allows."""
    n_in = len(prompt_ids[0])
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = batch * (n_in + n_out)
    cp.n_seq_max = batch
    cp.n_batch = cp.n_ubatch = 512
    cp.n_threads = cp.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(model, cp)
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    lb = llama_cpp.llama_batch_init(512, 0, 1)

    def decode(entries: list[tuple[int, int, int, bool]]) -> None:
        for i, (token, pos, seq, want) in enumerate(entries):
            lb.token[i], lb.pos[i], lb.n_seq_id[i], lb.logits[i] = token, pos, 1, want
            lb.seq_id[i][0] = seq
        lb.n_tokens = len(entries)
        if llama_cpp.llama_decode(ctx, lb) != 0:
            raise RuntimeError("llama_decode failed")

    started = time.perf_counter()
    entries = [(t, p, s, p == n_in - 1) for s, ids in enumerate(prompt_ids) for p, t in enumerate(ids)]
    last = []
    for i in range(0, len(entries), 512):  # prefill in chunks of n_batch, logits only for last tokens
        chunk = entries[i:i + 512]
        decode(chunk)
        rows = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(sum(e[3] for e in chunk), n_vocab))
        last.extend(rows.argmax(axis=1).tolist())
    tokens = last
    for step in range(1, n_out):
        decode([(tokens[s], n_in + step - 1, s, True) for s in range(batch)])
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(batch, n_vocab))
        tokens = logits.argmax(axis=1).tolist()
    elapsed = time.perf_counter() - started
    llama_cpp.llama_batch_free(lb)
    llama_cpp.llama_free(ctx)
    return batch * n_out / elapsed


def scrape(client: httpx.Client) -> dict[str, float]:
    values = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            values[sample.name] = sample.value
    return values


async def send_all(base_url: str, prompt_ids: list[list[int]], n_out: int) -> tuple[float, int]:
    limits = httpx.Limits(max_connections=len(prompt_ids) + 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits) as client:
        async def one(ids: list[int]) -> int:
            body = {"prompt": ids, "max_tokens": n_out, "temperature": 0, "ignore_eos": True}
            response = await client.post("/v1/completions", json=body)
            response.raise_for_status()
            return response.json()["usage"]["completion_tokens"]

        started = time.perf_counter()
        counts = await asyncio.gather(*[one(ids) for ids in prompt_ids])
        return time.perf_counter() - started, sum(counts)


def http_engine(batch: int, prompt_ids: list[list[int]], n_out: int, threads: int,
                repack: str) -> tuple[float, float]:
    """Generated tok/s through HTTP, and the engine's Python ms per step outside llama_decode."""
    port = free_port()
    ctx = len(prompt_ids[0]) + n_out
    cmd = embedded_engine_cmd(port, "127.0.0.1", "--max-batch", str(batch), "--ctx-per-seq", str(ctx),
                              "--threads", str(threads), "--repack", repack)
    with EngineProcess(cmd, f"http://127.0.0.1:{port}") as engine, \
            httpx.Client(base_url=engine.base_url) as client:
        engine.wait_healthy()
        before = scrape(client)
        elapsed, generated = asyncio.run(send_all(engine.base_url, prompt_ids, n_out))
        after = scrape(client)
    if generated != batch * n_out:
        raise RuntimeError(f"engine generated {generated} tokens, expected {batch * n_out}")
    steps = after["paretoserve_step_seconds_count"] - before["paretoserve_step_seconds_count"]
    outside = (after["paretoserve_step_seconds_sum"] - before["paretoserve_step_seconds_sum"]
               - after["paretoserve_decode_seconds_total"] + before["paretoserve_decode_seconds_total"])
    return generated / elapsed, 1000 * outside / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--input-tokens", type=int, default=32)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repack", choices=REPACK_MODES, default="auto")
    args = parser.parse_args()
    quiet_llama_logs()
    choice = resolve_repack(args.repack)
    model = load_model(resolve_model("default").path, choice)
    print(f"input {args.input_tokens} tokens, output {args.output_tokens} tokens, {args.threads} threads, "
          f"repack {choice.mode} ({choice.reason})")
    print(f"{'batch':>5} {'bare tok/s':>11} {'http tok/s':>11} {'ratio':>6} {'py ms/step':>11}")
    for batch in [int(b) for b in args.batches.split(",")]:
        ids = prompts(batch, args.input_tokens)
        bare_loop(model, batch, ids, 4, args.threads)  # warm-up: first-touch of buffers
        bare = bare_loop(model, batch, ids, args.output_tokens, args.threads)
        http, overhead_ms = http_engine(batch, ids, args.output_tokens, args.threads, choice.mode)
        print(f"{batch:>5} {bare:>11.1f} {http:>11.1f} {http / bare:>6.2f} {overhead_ms:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
