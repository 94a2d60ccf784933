import pytest

from paretoserve.cli import build_parser, main


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
