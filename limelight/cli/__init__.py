"""The ``limelight`` command: one module per command, each listed once in :data:`COMMANDS`.

To add a command ``limelight NAME``, write ``limelight/cli/NAME.py`` with a docstring and
two functions, ``add_arguments(parser)`` (its options, on an argparse parser) and
``run(args) -> int`` (run it with the parsed options; returns the exit status), then add
one line to :data:`COMMANDS`: the name, the module and the help ``limelight --help`` shows.
``tests/cli/test_main.py`` checks every entry. Only the module of the command being run is
imported, so ``limelight --help`` imports none of them.

A command given bad input says what was wrong in one line on stderr and exits with 2:
argparse's own errors do, and so does an :class:`argparse.ArgumentError` raised by a
command's ``run``, for what argparse could not check. ``demo`` and ``bench`` exit with 130
after Ctrl-C (``sim`` stops cleanly, with 0).

On start, the nearest ``.env`` file (in the working directory or one above it) is loaded
into the environment, variables already set winning over the file's (:func:`load_dotenv`);
``limelight --no-dotenv COMMAND`` or ``LIMELIGHT_NO_DOTENV=1`` skips it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Final, NoReturn, Protocol, cast

from .._dotenv import load_dotenv
from .._version import __version__
from ..errors import ConfigError

__all__ = ["COMMANDS", "NO_DOTENV_VARIABLE", "Command", "load", "main"]

#: Set to anything but ``""``, ``0``, ``false`` or ``no``, the CLI does not load `.env` files.
NO_DOTENV_VARIABLE: Final = "LIMELIGHT_NO_DOTENV"

#: The commands: name → (its module in this package, the line ``limelight --help`` shows).
COMMANDS: Final[Mapping[str, tuple[str, str]]] = {
    "demo": ("demo", "run an agent tree on the simulator, with live progress (no API key needed)"),
    "sim": ("sim", "serve the simulated provider as an OpenAI-compatible HTTP server"),
    "events": ("events", "summarise the local analytics store: runs, tokens, cost, errors"),
    "bench": ("bench", "load-test a provider, a server or an agent workflow (TTFT, ITL, cost)"),
}


class Command(Protocol):
    """What the module of a command offers."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's options (and subcommands) to ``parser``."""

    def run(self, args: argparse.Namespace) -> int:
        """Run the command with the parsed options; returns the exit status.

        :raises argparse.ArgumentError: an option's value is invalid (said as a usage error).
        """


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors said in one line: what was wrong, where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (`{self.prog} --help` lists the options)\n")


def load(name: str) -> Command:
    """The module of the command ``name`` (a key of :data:`COMMANDS`), imported."""
    module, _ = COMMANDS[name]
    return cast(Command, importlib.import_module(f"{__name__}.{module}"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``limelight ARGV`` (default: the program's arguments); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _Parser(
        prog="limelight", description="An actor-based concurrent runtime for LLM agents."
    )
    parser.add_argument("--version", action="version", version=f"limelight {__version__}")
    parser.add_argument(
        "--no-dotenv",
        action="store_true",
        help=f"do not load the nearest .env file (or set {NO_DOTENV_VARIABLE}=1)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    parsers = {name: subparsers.add_parser(name, help=line) for name, (_, line) in COMMANDS.items()}
    # The top level's options take no value, so the first argument that is not an option
    # names the command: only its module is imported, and only its options are added.
    name = next((arg for arg in argv if not arg.startswith("-")), "")
    top = argv[: argv.index(name)] if name else argv
    # Before the command's options are added: their defaults may come from the environment.
    if "--no-dotenv" not in top and not _dotenv_disabled():
        try:
            load_dotenv()
        except ConfigError as exc:
            parser.exit(2, f"{parser.prog}: {exc} (or skip it: {parser.prog} --no-dotenv)\n")
    command = load(name) if name in COMMANDS else None
    if command is not None:
        command.add_arguments(parsers[name])
    args = parser.parse_args(argv)  # exits on an unknown command
    if command is None:
        parser.print_help()
        return 2
    try:
        return command.run(args)
    except argparse.ArgumentError as exc:
        parsers[name].error(str(exc))


def _dotenv_disabled() -> bool:
    value = os.environ.get(NO_DOTENV_VARIABLE, "").strip().lower()
    return value not in ("", "0", "false", "no")
