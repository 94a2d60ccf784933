"""The documentation site: it builds with `mkdocs build --strict`, has every page of its nav, its command line
reference names every command and flag the parsers take, and each page works opened from disk in Chromium,
search included, with nothing fetched from the network."""

from __future__ import annotations

import argparse
import html
import re
from pathlib import Path

import pytest
import yaml

from fedcore.cli import build_parser as fedcore_parser
from paretoserve.cli import COMMANDS, build_parser
from tests.docs.conftest import ROOT
from tests.docs.site_check import check_site_page, search
from tests.report.chromium_check import CHROMIUM, needs_chromium

pytestmark = pytest.mark.integration


def nav_pages() -> list[str]:
    """Every page mkdocs.yml's nav names, in order (docs/-relative Markdown paths)."""
    def walk(items) -> list[str]:
        pages = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            pages += walk(value) if isinstance(value, list) else [value]
        return pages
    return walk(yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])


def built(site: Path, page: str) -> Path:
    return site / Path(page).with_suffix(".html")  # use_directory_urls: false


def test_every_nav_page_is_written_and_built(site):
    pages = nav_pages()
    assert "reference/cli.md" in pages and len(pages) == len(set(pages)) >= 20
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), f"docs/{page} is in the nav but not written"
        assert built(site, page).is_file(), f"{page} did not build"


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its heading (`paretoserve tune`, `paretoserve import vllm`, `fedcore run`), each
    with its full flags (build_parser adds a command's flags only when argv names it)."""
    def nested(prog: str, parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        found = {prog: parser}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found |= nested(f"{prog} {name}", sub)
        return found

    found = {"paretoserve": build_parser([])}
    for name in COMMANDS:
        full = build_parser([name])
        subparsers = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
        found |= nested(f"paretoserve {name}", subparsers.choices[name])
    return found | nested("fedcore", fedcore_parser())


def parser_flags(parser: argparse.ArgumentParser) -> set[str]:
    """What a user types: every option string, and each positional's name; -h/--help and subcommands left out."""
    names = set()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        names |= set(action.option_strings) or {action.metavar or action.dest}
    return names


def sections(page: str) -> dict[str, str]:
    """The HTML under each <h2 id=...> of a page, by id."""
    parts = re.split(r'<h2 id="([^"]+)"', page)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def documented_flags(section: str) -> set[str]:
    """The flags a section of the CLI reference lists: each definition term's code span (`-o, --out OUT`, `DIR`)."""
    names = set()
    for term in re.findall(r"<dt><code>(.*?)</code>", section, re.S):
        words = html.unescape(re.sub(r"<[^>]+>", "", term)).replace(",", " ").split()
        names |= {w for w in words if w.startswith("-")} or {words[0]}
    return names


def test_the_cli_reference_lists_every_command_and_every_flag(site):
    page = sections(built(site, "reference/cli.md").read_text(encoding="utf-8"))
    parsers = commands()
    assert {"paretoserve tune", "paretoserve import vllm", "fedcore run"} <= set(parsers)
    for name, parser in parsers.items():
        anchor = name.replace(" ", "-")  # other pages link to reference/cli.md#paretoserve-tune
        assert anchor in page, f"reference/cli.md has no heading '## {name}'"
        assert documented_flags(page[anchor]) == parser_flags(parser), name


def test_the_reference_pages_hold_what_is_generated_into_them(site):
    """Each generated part is there: the sweep directory's fields, the HTTP API's routes and request fields and
    metrics, advice.json's fields; no marker is left over."""
    text = {page: built(site, page).read_text(encoding="utf-8") for page in nav_pages() if page.startswith("ref")}
    assert "points.jsonl" in text["reference/sweep-directory.md"]
    assert "<code>b_opt</code>" in text["reference/advice-json.md"]
    assert "<code>replicas</code>" in sections(text["reference/advice-json.md"])["replicaplan"]
    http_api = text["reference/http-api.md"]
    assert "<code>POST /v1/chat/completions</code>" in http_api and "<code>paretoserve_resume</code>" in http_api
    assert "<code>paretoserve_requests_running</code>" in http_api
    assert not any("generated:" in page for page in text.values())


def test_the_site_loads_nothing_from_the_network(site):
    """No script, stylesheet or font from another host: opened from disk, offline, every page is whole."""
    remote = re.compile(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="(?:https?:)?//[^"]*"')
    for page in site.rglob("*.html"):
        assert not remote.findall(page.read_text(encoding="utf-8")), page.relative_to(site)


@needs_chromium
@pytest.mark.parametrize("page", nav_pages())
def test_every_page_renders_from_disk_without_errors(site, page):
    check = check_site_page(built(site, page), CHROMIUM)
    assert check.page_errors == [] and check.console_lines == [], page


@needs_chromium
def test_offline_search_from_disk_finds_a_term_of_the_generated_reference(site):
    result = search(built(site, "guides/capacity.md"), "replicas", CHROMIUM)
    assert result.box and result.page_errors == []
    found = {link.split("?")[0].split("#")[0] for link in result.links}
    assert any(link.endswith("reference/cli.html") for link in found), result.links
