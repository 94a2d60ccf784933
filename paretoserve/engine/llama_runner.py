"""The only module that talks to llama.cpp: load, tokenize, one batched llama_decode, free a sequence."""

from __future__ import annotations

import ctypes
from typing import Sequence as Seq

import llama_cpp
import numpy as np

from paretoserve.engine.config import EngineConfig
from paretoserve.engine.llama_load import LlamaError, load_model, resolve_repack
from paretoserve.engine.scheduler import StepItem


@ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
def _quiet_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """Drop llama.cpp's informational logging; errors are reported through return codes."""


def quiet_llama_logs() -> None:
    """Silence llama.cpp's logging for this process."""
    llama_cpp.llama_log_set(_quiet_log, ctypes.c_void_p())


class LlamaRunner:
    """One llama.cpp model and context whose KV cache holds up to `max_batch` sequences.

    With the split layout each sequence gets its own stream of kv_tokens / max_batch cells, so
    attention reads only that sequence's cache (as paged attention does); the unified layout is one
    pool of kv_tokens cells, but every token's attention then spans all sequences' cells, which
    costs ~40 % of throughput at batch 64 here. llama.cpp rounds each stream up to 256 cells:
    `kv_cells` is what it really allocated. `repack` is the weight placement `--repack` resolved to.
    """

    def __init__(self, config: EngineConfig, verbose: bool = False) -> None:
        if not verbose:
            quiet_llama_logs()
        self.repack = resolve_repack(config.repack)
        self.model = load_model(config.model_path, self.repack)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = config.kv_tokens
        cparams.n_batch = cparams.n_ubatch = config.max_step_tokens
        cparams.n_seq_max = config.max_batch
        cparams.n_threads = cparams.n_threads_batch = config.threads
        cparams.kv_unified = config.kv_layout == "unified"
        cparams.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise LlamaError(f"llama.cpp could not create a context of {config.kv_tokens} KV tokens "
                             f"for {config.max_batch} sequences (out of memory?)")
        self.kv_cells = llama_cpp.llama_n_ctx(self.ctx)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.batch = llama_cpp.llama_batch_init(config.max_step_tokens, 0, 1)
        self._piece_buf = ctypes.create_string_buffer(256)

    # -- text -----------------------------------------------------------------------------

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """Token ids of `text`; the model's BOS is prepended when `add_special` and the model wants one."""
        data = text.encode()
        capacity = len(data) + 8
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, True)
        if n < 0:
            buf = (llama_cpp.llama_token * -n)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, -n, add_special, True)
        return buf[:n]

    def piece(self, token: int) -> bytes:
        """The bytes one token stands for (special tokens render as empty)."""
        n = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buf, 256, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
            return buf.raw[:n]
        return self._piece_buf.raw[:n]

    def eog_ids(self) -> np.ndarray:
        """Every end-of-generation token id (EOS, end-of-turn, ...), for masking when `ignore_eos`."""
        ids = [t for t in range(self.n_vocab)
               if llama_cpp.llama_vocab_get_attr(self.vocab, t) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
               and llama_cpp.llama_vocab_is_eog(self.vocab, t)]
        return np.asarray(ids, dtype=np.int64)

    def chat_template(self) -> str | None:
        """The GGUF's own chat template (Jinja source), or None when the file has none."""
        tmpl = llama_cpp.llama_model_chat_template(self.model, None)
        return tmpl.decode() if tmpl else None

    # -- decoding -------------------------------------------------------------------------

    def decode(self, items: Seq[StepItem]) -> np.ndarray:
        """Run one llama_decode over every item; returns one logits row per item that wants logits.

        The rows are a view of llama.cpp's output buffer, valid until the next decode.
        """
        batch = self.batch
        i = 0
        n_out = 0
        for item in items:
            slot = item.seq.slot
            last = len(item.tokens) - 1
            for j, token in enumerate(item.tokens):
                batch.token[i] = token
                batch.pos[i] = item.pos + j
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = slot
                batch.logits[i] = item.wants_logits and j == last
                i += 1
            n_out += item.wants_logits
        batch.n_tokens = i
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc != 0:
            raise LlamaError(f"llama_decode returned {rc} for a batch of {i} tokens "
                             "(1 = no free KV cells, <0 = error)")
        if n_out == 0:
            return np.empty((0, self.n_vocab), dtype=np.float32)
        ptr = llama_cpp.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab))

    def free(self, slot: int) -> None:
        """Forget every KV cell of one sequence so its slot can take a new request."""
        llama_cpp.llama_memory_seq_rm(self.memory, slot, -1, -1)

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        llama_cpp.llama_model_free(self.model)
