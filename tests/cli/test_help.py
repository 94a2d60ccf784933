import argparse
import shlex

import pytest

from fedcore.cli import build_parser as fedcore_parser
from paretoserve.cli import COMMANDS, build_parser, main


def test_help_says_what_paretoserve_does_and_names_tune_first(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "finds the batch cap, KV budget and replica count" in text and "`paretoserve tune` does it all" in text
    assert "one subcommand per module" not in text  # the module's docstring is for its readers, not the user's
    commands = text.split("COMMAND ", 2)[2].split()
    assert commands[0] == "tune"


def test_every_commands_help_prints(capsys):
    parser = build_parser([])
    commands = next(a for a in parser._actions if a.choices and "tune" in a.choices).choices
    for name in commands:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0 and name in capsys.readouterr().out


def subcommand_help(argv: list[str]) -> str:
    """The help line of a nested command (`import vllm`) in its parent's listing."""
    def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    nested = subcommands(subcommands(build_parser(argv)).choices[argv[0]])
    return next(c.help for c in nested._choices_actions if c.dest == argv[1])


def examples_of(help_text: str) -> list[str]:
    """The command lines under `Examples:` at the end of a --help, each on a line of its own as written."""
    assert "\nExamples:\n" in help_text, help_text[-500:]
    return [line.strip() for line in help_text.split("\nExamples:\n", 1)[1].splitlines() if line.strip()]


@pytest.mark.parametrize("argv", [[], *([name] for name in COMMANDS), ["import", "vllm"]], ids=" ".join)
def test_every_help_says_what_it_does_in_one_line_and_gives_an_example_that_parses(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    description = " ".join(out.split("\n\n")[1].split())  # usage, then the description, then the arguments
    if argv:  # the one line `paretoserve --help` lists the command with (a nested command's own)
        assert description == (COMMANDS[argv[0]][1] if len(argv) == 1 else subcommand_help(argv)), description
    lines = examples_of(out)
    assert lines and all(line.startswith(" ".join(["paretoserve", *argv])) for line in lines), lines
    for line in lines:  # each example is a command line the parser takes (none is run here)
        words = shlex.split(line)[1:]
        build_parser(words).parse_args(words)


def test_fedcore_help_gives_one_line_and_an_example_that_parses(capsys):
    for argv in ([], ["run"]):
        with pytest.raises(SystemExit) as exit_:
            fedcore_parser().parse_args([*argv, "--help"])
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        assert "\n" not in out.split("\n\n")[1].strip()
        for line in examples_of(out):
            assert line.startswith("fedcore run ")
            fedcore_parser().parse_args(shlex.split(line)[1:])
