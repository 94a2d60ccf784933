"""What to send: synthetic prompts of exact token counts, ShareGPT conversations, or JSONL prompts
(a trace's requests, in trace.py, are synthetic prompts of the trace's lengths).

Synthetic prompts are token ids when the endpoint accepts them (a paretoserve engine does), so
their length is exact by construction. Otherwise they are text made of common English words that
are one token each, after a space, in the BPE and SentencePiece vocabularies of current models
(checked against Gemma 3's): N words are N tokens plus whatever the server adds (a BOS token, a
chat template). The server's `usage.prompt_tokens` is recorded per request either way.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from paretoserve.bench.config import TokenRange
from paretoserve.bench.tokenizer import ApproxTokenizer, Tokenizer
from paretoserve.limits import UserError

# Ordinary word pieces in any vocabulary of >= 32k entries; lower ids hold control, byte and
# unused tokens in several of them (Gemma 3's first 256 are control and [multimodal] markers).
SYNTHETIC_ID_RANGE = (1000, 30000)
SYNTHETIC_OUTPUT_TOKENS = 128
# The papers' ShareGPT filter (Recasens et al.): prompt <= 1024 and prompt + output <= 2048
# tokens; like vLLM's sampler, also drop conversations shorter than 4 tokens either way.
SHAREGPT_MAX_PROMPT, SHAREGPT_MAX_TOTAL, SHAREGPT_MIN_LEN = 1024, 2048, 4

WORDS = tuple("""the of and to in is that for it was on with as be at by this had not are but from or have
an they which one you were her all she there would their we him been has when who will more no if out so
said what up its about into than them can only other new some could time these two may then do first any
my now such like our over man me even most made after also did many before must through back years where
much your way well down should because each just those people how too little state good very make world
still own see men work long get here between both life being under never day same another know while last
might us great old year off come since against go came right used take three""".split())  # noqa: SIM905  (a word list reads better as text)


class WorkloadError(UserError):
    """A dataset that cannot be read or yields no usable request; the message names the flag."""


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request to send: its prompt, its prompt length and how many tokens to ask for."""

    prompt: str | tuple[int, ...]
    input_tokens: int  # exact for token ids or with the model's tokenizer, else an estimate
    output_tokens: int  # max_tokens
    at_s: float | None = None  # a trace's planned send time, seconds from the start; None = the load pattern's


def synthetic(n: int, input_tokens: TokenRange, output_tokens: TokenRange | None, seed: int,
              as_ids: bool) -> list[RequestSpec]:
    """`n` random prompts (seeded); lengths fixed or drawn uniformly from the ranges."""
    out_range = output_tokens or TokenRange(SYNTHETIC_OUTPUT_TOKENS, SYNTHETIC_OUTPUT_TOKENS)
    rng = random.Random(seed)
    specs = []
    for _ in range(n):
        n_in = rng.randint(input_tokens.low, input_tokens.high)
        n_out = rng.randint(out_range.low, out_range.high)
        specs.append(RequestSpec(synthetic_prompt(rng, n_in, as_ids), n_in, n_out))
    return specs


def synthetic_prompt(rng: random.Random, n_tokens: int, as_ids: bool) -> str | tuple[int, ...]:
    """A random prompt of `n_tokens` tokens: token ids, or common words that are one token each."""
    if as_ids:
        return tuple(rng.randrange(*SYNTHETIC_ID_RANGE) for _ in range(n_tokens))
    return " " + " ".join(rng.choice(WORDS) for _ in range(n_tokens))


def sharegpt(path: Path, n: int, seed: int, output_tokens: TokenRange | None,
             tokenizer: Tokenizer) -> list[RequestSpec]:
    """First human turn as the prompt, the reply's length as max_tokens; the papers' length filter."""
    data = _read_json(path, "sharegpt")
    if not isinstance(data, list):
        raise WorkloadError(f"--dataset sharegpt:{path}: expected a JSON list of conversations")
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    rng = random.Random(seed + 1)
    specs: list[RequestSpec] = []
    for i in order:
        turns = data[i].get("conversations") if isinstance(data[i], dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            continue
        prompt, reply = turns[0].get("value"), turns[1].get("value")
        if not isinstance(prompt, str) or not isinstance(reply, str):
            continue
        n_in = tokenizer.count(prompt)
        n_out = rng.randint(output_tokens.low, output_tokens.high) if output_tokens else tokenizer.count(reply)
        if n_in < SHAREGPT_MIN_LEN or n_out < SHAREGPT_MIN_LEN or n_in > SHAREGPT_MAX_PROMPT \
                or n_in + n_out > SHAREGPT_MAX_TOTAL:
            continue
        specs.append(RequestSpec(prompt, n_in, n_out))
        if len(specs) == n:
            break
    return _nonempty(specs, f"sharegpt:{path}")


def jsonl(path: Path, n: int, seed: int, output_tokens: TokenRange | None,
          tokenizer: Tokenizer) -> list[RequestSpec]:
    """One JSON object per line: `prompt` (or `text`) and optionally `max_tokens` (or `output_tokens`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise WorkloadError(f"--dataset jsonl:{path}: {exc.strerror or exc}") from exc
    rng = random.Random(seed)
    specs: list[RequestSpec] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise WorkloadError(f"--dataset jsonl:{path}: line {number} is not JSON ({exc})") from exc
        prompt = row.get("prompt", row.get("text")) if isinstance(row, dict) else None
        if not isinstance(prompt, str) or not prompt:
            raise WorkloadError(f"--dataset jsonl:{path}: line {number} has no 'prompt' string")
        asked = row.get("max_tokens", row.get("output_tokens"))
        if output_tokens is not None:
            n_out = rng.randint(output_tokens.low, output_tokens.high)
        elif isinstance(asked, int) and asked >= 1:
            n_out = asked
        else:
            n_out = SYNTHETIC_OUTPUT_TOKENS
        specs.append(RequestSpec(prompt, tokenizer.count(prompt), n_out))
        if len(specs) == n:
            break
    return _nonempty(specs, f"jsonl:{path}")


def load(dataset: str, n: int, input_tokens: TokenRange, output_tokens: TokenRange | None, seed: int,
         as_ids: bool, tokenizer: Tokenizer | None = None) -> list[RequestSpec]:
    """The requests of `--dataset`; a run with more requests than this cycles through them."""
    if dataset == "synthetic":
        return synthetic(n, input_tokens, output_tokens, seed, as_ids)
    kind, _, path = dataset.partition(":")
    reader = {"sharegpt": sharegpt, "jsonl": jsonl}.get(kind)
    if reader is None or not path:
        raise WorkloadError(f"--dataset must be synthetic, sharegpt:PATH or jsonl:PATH; got {dataset!r}")
    return reader(Path(path).expanduser(), n, seed, output_tokens, tokenizer or ApproxTokenizer())


def _read_json(path: Path, kind: str) -> object:
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise WorkloadError(f"--dataset {kind}:{path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise WorkloadError(f"--dataset {kind}:{path}: not valid JSON ({exc})") from exc


def _nonempty(specs: list[RequestSpec], name: str) -> list[RequestSpec]:
    if not specs:
        raise WorkloadError(f"--dataset {name}: no usable request (ShareGPT keeps prompts of 4-{SHAREGPT_MAX_PROMPT} "
                            f"tokens with prompt + output <= {SHAREGPT_MAX_TOTAL})")
    return specs
