"""The bundled GGUF (or a user's) as a local Hugging Face directory, exported once into the cache.

Clients such as GuideLLM and AIPerf need a Hugging Face tokenizer to build synthetic prompts, and no model hub
can be reached here. `export_tokenizer` loads the GGUF's tokenizer with transformers (`gguf_file=`), checks
that it encodes the probe strings into the same ids as llama.cpp (what the engine feeds the model, BOS
included), and saves it under `cache_dir()/hf/NAME-KEY/`; the key changes when the GGUF file does, so a
later run reuses the directory without importing transformers at all.

Needs the optional `hf` extra (`pip install -e ".[hf]"`): transformers 5's GGUF reader imports torch, so on a
machine without a GPU install a CPU build of torch first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

from paretoserve.limits import UserError
from paretoserve.model import DEFAULT_MODEL, ModelSpec, cache_dir, resolve_model

HF_EXTRA_HINT = 'pip install -e ".[hf]" (transformers, gguf, sentencepiece, torch; a CPU build of torch will do)'
STAMP = "paretoserve-export.json"  # written last: a directory without it is not a finished export
# Strings whose ids must agree with llama.cpp's: plain words, leading and repeated spaces, newlines and a tab,
# punctuation, non-Latin scripts and an emoji (byte fallback), and the empty prompt (BOS alone).
PROBES = ("hello", "The capital of France is", " leading space", "Hello, world!\n\ntwo  spaces\tand a tab",
          "émoji 🤗 日本語", "")


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
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        tokenizer.save_pretrained(str(partial))
        # Check the saved copy, as a client will load it: a setting lost on the way out shows up here.
        mismatches = compare_ids(auto_tokenizer.from_pretrained(str(partial)), reference)
        if mismatches:
            raise ExportError(f"the tokenizer exported from {spec.path} does not tokenize as llama.cpp does: "
                              + "; ".join(mismatches))
        stamp = {"source": str(spec.path), "size": spec.path.stat().st_size, "bos_added_by_export": bos_added,
                 "probes": {text: ids for text, ids in reference.items()}}
        (partial / STAMP).write_text(json.dumps(stamp, ensure_ascii=False) + "\n")
        if (target / STAMP).is_file():  # another process finished the same export meanwhile
            return target
        shutil.rmtree(target, ignore_errors=True)  # an unfinished export left by a crash
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


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


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m paretoserve.hf_export", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="default (the bundled GGUF) or a GGUF path")
    ap.add_argument("--cache-dir", default=None, help="default: $PARETOSERVE_CACHE_DIR or ~/.cache/paretoserve")
    args = ap.parse_args(argv)
    try:
        print(export_tokenizer(args.model, args.cache_dir))
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
