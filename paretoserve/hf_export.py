"""The bundled GGUF (or a user's) as a local Hugging Face directory, exported once into the cache.

Clients such as GuideLLM and AIPerf need a Hugging Face tokenizer to build synthetic prompts, and no model hub
can be reached here. `export_tokenizer` loads the GGUF's tokenizer with transformers (`gguf_file=`), checks
that it encodes the probe strings into the same ids as llama.cpp (what the engine feeds the model, BOS
included), and saves it under `cache_dir()/hf/NAME-KEY/`; the key changes when the GGUF file does, so a
later run reuses the directory without importing transformers at all.

vLLM has no GGUF loader: `export_model` writes the whole model beside it (`NAME-KEY-model/`: config.json,
bf16 safetensors dequantized from the GGUF, and the checked tokenizer), and checks that its greedy next
token on each CHECK_PROMPTS prompt is llama.cpp's.

Needs the optional `hf` extra (`pip install -e ".[hf]"`): transformers 5's GGUF reader imports torch, so on a
machine without a GPU install a CPU build of torch first.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

from paretoserve.engine.config import EngineConfig
from paretoserve.engine.sampling import SamplingParams
from paretoserve.engine.scheduler import Sequence, StepItem
from paretoserve.limits import UserError
from paretoserve.model import DEFAULT_MODEL, ModelSpec, cache_dir, resolve_model

HF_EXTRA_HINT = 'pip install -e ".[hf]" (transformers, gguf, sentencepiece, torch; a CPU build of torch will do)'
VLLM_EXTRA_HINT = 'pip install -e ".[vllm]" (the README has the two lines that install it on a CPU)'
STAMP = "paretoserve-export.json"  # written last: a directory without it is not a finished export
# Strings whose ids must agree with llama.cpp's: plain words, leading and repeated spaces, newlines and a tab,
# punctuation, non-Latin scripts and an emoji (byte fallback), and the empty prompt (BOS alone).
PROBES = ("hello", "The capital of France is", " leading space", "Hello, world!\n\ntwo  spaces\tand a tab",
          "émoji 🤗 日本語", "")


# Prompts whose greedy next token the exported model must share with llama.cpp (Q4_K_M there, bf16 here).
CHECK_PROMPTS = ("The capital of France is", "One, two, three, four,", "def add(a, b):\n    return")


class ExportError(UserError):
    """The optional extra is missing, or the exported tokenizer does not tokenize as llama.cpp does."""


def export_dir(spec: ModelSpec, cache: str | Path | None = None) -> Path:
    """Where the export of this GGUF file lives: its name plus a key over its path, size and modification time."""
    st = spec.path.stat()
    identity = f"{spec.path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return cache_dir(cache) / "hf" / f"{spec.name}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def cached_tokenizer(model: str = DEFAULT_MODEL, cache: str | Path | None = None) -> Path | None:
    """The finished export of `model`'s tokenizer, or None when there is none yet (imports no transformers)."""
    target = export_dir(resolve_model(model, cache), cache)
    return target if (target / STAMP).is_file() else None


def export_tokenizer(model: str = DEFAULT_MODEL, cache: str | Path | None = None) -> Path:
    """The directory holding `model`'s tokenizer in Hugging Face's format; exported and checked on first use."""
    spec = resolve_model(model, cache)
    target = export_dir(spec, cache)
    if (target / STAMP).is_file():
        return target
    auto_tokenizer = _auto_tokenizer()
    tokenizer = auto_tokenizer.from_pretrained(str(spec.path.parent), gguf_file=spec.path.name)
    reference = llama_cpp_ids(spec.path)
    bos_added = _add_bos_where_llama_cpp_does(tokenizer, reference)
    with staging(target) as partial:
        tokenizer.save_pretrained(str(partial))
        # Check the saved copy, as a client will load it: a setting lost on the way out shows up here.
        mismatches = compare_ids(auto_tokenizer.from_pretrained(str(partial)), reference)
        if mismatches:
            raise ExportError(f"the tokenizer exported from {spec.path} does not tokenize as llama.cpp does: "
                              + "; ".join(mismatches))
        stamp = {"source": str(spec.path), "size": spec.path.stat().st_size, "bos_added_by_export": bos_added,
                 "probes": {text: ids for text, ids in reference.items()}}
        (partial / STAMP).write_text(json.dumps(stamp, ensure_ascii=False) + "\n")
    return target


@contextlib.contextmanager
def staging(target: Path) -> Iterator[Path]:
    """An empty directory beside `target` to build an export in (ending with its STAMP); when the block ends
    without an error it becomes `target`, unless another process finished the same export meanwhile. An
    unfinished `target` left by a crash is replaced; the staging directory is gone in every case."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        if not (target / STAMP).is_file():
            shutil.rmtree(target, ignore_errors=True)
            os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def cached_model(model: str = DEFAULT_MODEL, cache: str | Path | None = None) -> Path | None:
    """The finished export of the whole `model` (a GGUF or 'default'), or None (imports no transformers)."""
    target = model_dir(resolve_model(model, cache), cache)
    return target if (target / STAMP).is_file() else None


def exported_name(directory: str | Path) -> str | None:
    """The name the GGUF behind a whole-model export is served under, or None for any other directory."""
    try:
        return json.loads((Path(directory) / STAMP).read_text()).get("name")
    except (OSError, ValueError):
        return None


def model_dir(spec: ModelSpec, cache: str | Path | None = None) -> Path:
    """Where the whole model exported from this GGUF file lives, beside its tokenizer's export."""
    tokenizer = export_dir(spec, cache)
    return tokenizer.with_name(tokenizer.name + "-model")


def export_model(model: str = DEFAULT_MODEL, cache: str | Path | None = None) -> Path:
    """The Hugging Face directory of the whole model (config, bf16 weights, tokenizer) for engines without a
    GGUF loader; exported and checked on first use (about a minute and 0.6 GB for the bundled model)."""
    spec = resolve_model(model, cache)
    target = model_dir(spec, cache)
    if (target / STAMP).is_file():
        return target
    tokenizer_dir = export_tokenizer(model, cache)
    torch, auto_model = _auto_model()
    # transformers refuses to save a model loaded from a GGUF, so the weights move into a fresh model whose
    # config no longer says GGUF (vLLM would take it for a quantized checkpoint); float32 is its fast path.
    loaded = auto_model.from_pretrained(str(spec.path.parent), gguf_file=spec.path.name, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = auto_model.from_config(config, dtype=torch.bfloat16)
    fresh.load_state_dict(loaded.state_dict())
    del loaded
    with staging(target) as partial:
        fresh.save_pretrained(str(partial))
        for item in tokenizer_dir.iterdir():
            if item.name != STAMP:
                shutil.copy2(item, partial / item.name)
        # Check the saved copy, as vLLM will load it.
        mismatches = compare_next_tokens(auto_model.from_pretrained(str(partial), dtype=torch.bfloat16),
                                         _auto_tokenizer().from_pretrained(str(partial)), spec.path)
        if mismatches:
            raise ExportError(f"the model exported from {spec.path} does not continue as llama.cpp does: "
                              + "; ".join(mismatches))
        stamp = {"source": str(spec.path), "name": spec.name, "size": spec.path.stat().st_size, "dtype": "bfloat16",
                 "checked_prompts": list(CHECK_PROMPTS)}
        (partial / STAMP).write_text(json.dumps(stamp) + "\n")
    return target


def compare_next_tokens(hf_model, tokenizer, gguf: Path, prompts: tuple[str, ...] = CHECK_PROMPTS) -> list[str]:
    """One line per prompt whose greedy next token differs between the HF model and llama.cpp (the engine's
    runner, with its weight placement for this CPU); empty if none."""
    import torch

    from paretoserve.engine.llama_runner import LlamaRunner  # loads llama.cpp: only where a check runs

    reference = LlamaRunner(EngineConfig(model_path=gguf, model_name=gguf.name, max_batch=1, kv_tokens=256,
                                         threads=1))
    out = []
    try:
        for prompt in prompts:
            ids = list(tokenizer(prompt).input_ids)
            seq = Sequence(rid=0, prompt=ids, params=SamplingParams(), sink=None, slot=0)
            want = int(np.argmax(reference.decode([StepItem(seq, ids, 0, True)])[0]))
            reference.free(0)
            with torch.no_grad():
                got = int(hf_model(torch.tensor([ids])).logits[0, -1].argmax())
            if got != want:
                out.append(f"{prompt!r}: next token {got} ({tokenizer.decode([got])!r}) where llama.cpp gives "
                           f"{want} ({tokenizer.decode([want])!r})")
    finally:
        reference.close()
    return out


def llama_cpp_ids(path: Path, probes: tuple[str, ...] = PROBES) -> dict[str, list[int]]:
    """Each probe's ids as the engine tokenizes a text prompt: llama.cpp, special tokens added and parsed."""
    import llama_cpp

    vocab = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    try:
        return {text: list(vocab.tokenize(text.encode(), add_bos=True, special=True)) for text in probes}
    finally:
        vocab.close()


def compare_ids(tokenizer, reference: dict[str, list[int]]) -> list[str]:
    """One line per probe whose ids differ from `reference`; empty when all agree."""
    out = []
    for text, want in reference.items():
        got = list(tokenizer(text).input_ids)
        if got != want:
            out.append(f"{text!r}: {got[:12]} where llama.cpp gives {want[:12]}")
    return out


def _add_bos_where_llama_cpp_does(tokenizer, reference: dict[str, list[int]]) -> bool:
    """Make the tokenizer add BOS when llama.cpp does and it does not (some transformers versions lose the
    GGUF's `add_bos_token`; without BOS this model degenerates). Returns whether it had to."""
    bos = tokenizer.bos_token_id
    empty = reference.get("", [])
    if bos is None or empty[:1] != [bos] or list(tokenizer("").input_ids)[:1] == [bos]:
        return False
    tokenizer.add_bos_token = True  # transformers rebuilds the post-processor from it
    if list(tokenizer("").input_ids)[:1] != [bos]:
        raise ExportError(f"the tokenizer exported from the GGUF adds no BOS and setting add_bos_token did not "
                          f"help (transformers {_transformers_version()})")
    return True


def _auto_tokenizer():
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ExportError(f"exporting a Hugging Face tokenizer needs transformers: {HF_EXTRA_HINT}") from exc
    return AutoTokenizer


def _auto_model():
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError as exc:
        raise ExportError(f"exporting the model for vLLM needs torch and transformers: {VLLM_EXTRA_HINT}") from exc
    return torch, AutoModelForCausalLM


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m paretoserve.hf_export", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="default (the bundled GGUF) or a GGUF path")
    ap.add_argument("--cache-dir", default=None, help="default: $PARETOSERVE_CACHE_DIR or ~/.cache/paretoserve")
    ap.add_argument("--whole-model", action="store_true",
                    help="export the weights and config too, for vLLM (default: the tokenizer only)")
    args = ap.parse_args(argv)
    try:
        print((export_model if args.whole_model else export_tokenizer)(args.model, args.cache_dir))
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
