"""The GGUF's tokenizer exported as a Hugging Face directory: the same ids as llama.cpp, BOS included, and
reused from the cache without transformers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from paretoserve import hf_export
from paretoserve.hf_export import HF_EXTRA_HINT, ExportError, cached_tokenizer, export_tokenizer, llama_cpp_ids
from paretoserve.model import resolve_model

needs_hf = pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                              reason=f"the hf extra is not installed: {HF_EXTRA_HINT}")

# Beyond the export's own probes: a chat turn with the model's special tokens written as text (the engine parses
# them), digits, code, a long word and repeated punctuation.
TEXTS = ("<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n", "3.14159 and 1234567890",
         "def f(x):\n    return x ** 2  # square", "antidisestablishmentarianism", "Wait... what?!?", "  ",
         "Ünïcödé façade naïve café")


def _fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00 not a real model")
    return path


def test_a_missing_extra_is_named_with_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now fails
    with pytest.raises(ExportError, match=r"needs transformers: pip install -e \"\.\[hf\]\""):
        export_tokenizer(str(_fake_gguf(tmp_path)), tmp_path / "cache")


def test_a_finished_export_is_found_again_and_an_unfinished_one_is_not(tmp_path: Path) -> None:
    model, cache = str(_fake_gguf(tmp_path)), tmp_path / "cache"
    assert cached_tokenizer(model, cache) is None
    target = hf_export.export_dir(resolve_model(model, cache), cache)
    target.mkdir(parents=True)
    assert cached_tokenizer(model, cache) is None  # no stamp: a crash left it half written
    (target / hf_export.STAMP).write_text("{}")
    assert cached_tokenizer(model, cache) == target
    assert export_tokenizer(model, cache) == target


def test_a_changed_gguf_file_gets_a_new_export(tmp_path: Path) -> None:
    path = _fake_gguf(tmp_path)
    before = hf_export.export_dir(resolve_model(str(path)))
    path.write_bytes(path.read_bytes() + b" and more")
    assert hf_export.export_dir(resolve_model(str(path))) != before


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The bundled GGUF's tokenizer exported into a fresh cache (~30 s: torch's import and the conversion)."""
    gguf = resolve_model("default").path
    cache = tmp_path_factory.mktemp("cache")
    return gguf, cache, export_tokenizer(str(gguf), cache)


@needs_hf
@pytest.mark.integration
def test_the_exported_tokenizer_gives_llama_cpps_ids(exported: tuple[Path, Path, Path]) -> None:
    from transformers import AutoTokenizer

    gguf, _, directory = exported
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    texts = hf_export.PROBES + TEXTS
    assert {t: list(tokenizer(t).input_ids) for t in texts} == llama_cpp_ids(gguf, texts)
    assert tokenizer("hello").input_ids[0] == tokenizer.bos_token_id == 2  # the BOS this model needs


@needs_hf
@pytest.mark.integration
def test_the_export_is_reused_without_transformers(exported: tuple[Path, Path, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    gguf, cache, directory = exported
    monkeypatch.setitem(sys.modules, "transformers", None)
    assert export_tokenizer(str(gguf), cache) == directory


@needs_hf
@pytest.mark.integration
def test_a_tokenizer_that_lost_its_bos_gets_it_back(exported: tuple[Path, Path, Path]) -> None:
    from transformers import AutoTokenizer

    gguf, _, directory = exported
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    tokenizer.add_bos_token = False  # what some transformers versions make of the GGUF
    reference = llama_cpp_ids(gguf)
    assert hf_export.compare_ids(tokenizer, reference)
    assert hf_export._add_bos_where_llama_cpp_does(tokenizer, reference) is True
    assert hf_export.compare_ids(tokenizer, reference) == []
