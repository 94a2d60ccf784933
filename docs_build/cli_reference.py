"""reference/cli.md: every command's flags, read from the real argparse parsers of `paretoserve` and `fedcore`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from docs_build.md_table import cell, code
from paretoserve.cli import EXAMPLES  # the --help epilog's first line; the lines under it are commands


def commands() -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(`paretoserve tune`, its one-line help, its parser) for every command, nested ones (`import vllm`) too:
    paretoserve's in the order `--help` lists them, then fedcore's."""
    from fedcore.cli import build_parser as fedcore_parser
    from paretoserve.cli import COMMANDS, build_parser

    top = build_parser([])
    yield "paretoserve", top.description or "", top
    for name in COMMANDS:  # build_parser adds a command's full flags only when argv names it
        yield from _walk("paretoserve", build_parser([name]), only=name)
    fedcore = fedcore_parser()
    yield "fedcore", fedcore.description or "", fedcore
    yield from _walk("fedcore", fedcore)


def _walk(prog: str, parser: argparse.ArgumentParser, only: str | None = None):
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, sub in action.choices.items():
            if only is None or name == only:
                yield f"{prog} {name}", helps.get(name, ""), sub
                yield from _walk(f"{prog} {name}", sub)


def flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options and positionals a user gives, -h/--help and the subcommand choice left out."""
    return [a for a in parser._actions if a.help is not argparse.SUPPRESS
            and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def examples(parser: argparse.ArgumentParser) -> list[str]:
    """The command lines under `Examples:` in the parser's epilog."""
    lines = (parser.epilog or "").splitlines()
    if not lines or lines[0].strip() != EXAMPLES:
        return []
    return [line.strip() for line in lines[1:] if line.strip()]


def cli_reference() -> str:
    """The page's generated part: one `## paretoserve tune` section per command."""
    return "\n".join(_section(name, help, parser) for name, help, parser in commands())


def _section(name: str, help: str, parser: argparse.ArgumentParser) -> str:
    out = [f"## {name}", "", help, ""]
    if parser.description and parser.description != help:
        out += [parser.description, ""]
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subcommands:
        out += ["Commands: " + ", ".join(f"[`{name} {c}`](#{_anchor(f'{name} {c}')})" for c in action.choices), ""]
    lines = examples(parser)
    if lines:
        out += ["```bash", *lines, "```", ""]
    for title, actions in _groups(parser):
        out += [f"**{title}**", "", *(_entry(a, parser.prog) for a in actions)]
    return "\n".join(out)


def _groups(parser: argparse.ArgumentParser) -> Iterator[tuple[str, list[argparse.Action]]]:
    """Each argument group's title and its flags, as --help lists them; empty groups left out."""
    shown = set(map(id, flags(parser)))
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if id(a) in shown]
        if actions:
            title = group.title or ""
            yield {"positional arguments": "arguments", "options": "options"}.get(title, title), actions


def _entry(action: argparse.Action, prog: str) -> str:
    """One flag as a definition list item: its names and metavar, its default, then its help."""
    names = ", ".join(action.option_strings) or _metavar(action)
    given = f"{names} {_metavar(action)}" if action.option_strings and action.nargs != 0 else names
    default = _default(action)
    term = code(given) + (f" &nbsp; {default}" if default else "")
    return f"{term}\n:   {cell(_help(action, prog)) or '&nbsp;'}\n"


def _metavar(action: argparse.Action) -> str:
    """What follows the flag, as argparse's usage writes it (nargs included)."""
    if action.metavar is not None:
        base = action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    elif action.choices is not None:
        base = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        base = action.dest.upper() if action.option_strings else action.dest
    nargs = action.nargs
    if nargs == "?":
        return f"[{base}]"
    if nargs == "*":
        return f"[{base} ...]"
    if nargs == "+":
        return f"{base} [{base} ...]"
    if isinstance(nargs, int):
        return " ".join([base] * nargs)
    return base


def _default(action: argparse.Action) -> str:
    if action.required:
        return "*required*"
    if action.nargs == 0 or action.default is None or action.default is argparse.SUPPRESS:
        return ""  # a switch is off unless given; None: the help says what applies
    return "default " + code(action.default)


def _help(action: argparse.Action, prog: str) -> str:
    """The help line with `%(default)s` and the like filled in, as argparse fills them for --help."""
    text = action.help or ""
    if "%" not in text:
        return text
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    if params.get("choices") is not None:
        params["choices"] = ", ".join(map(str, params["choices"]))
    return text % {**params, "prog": prog}


def _anchor(heading: str) -> str:
    """The id mkdocs' table of contents gives a heading such as `paretoserve import vllm`."""
    return "-".join(heading.lower().split())
