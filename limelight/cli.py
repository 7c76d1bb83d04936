"""The ``limelight`` command.

A command given bad input says what was wrong in one line on stderr and exits with 2;
``demo`` and ``bench`` exit with 130 after Ctrl-C (``sim`` stops cleanly, with 0).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from ._version import __version__

#: The ports ``limelight sim --port`` takes (0: any free one).
_PORTS = range(65536)


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors said in one line: what was wrong, where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (`{self.prog} --help` lists the options)\n")


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser, and the parser of each command by name."""
    parser = _Parser(
        prog="limelight", description="An actor-based concurrent runtime for LLM agents."
    )
    parser.add_argument("--version", action="version", version=f"limelight {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run an agent tree on the simulator, with live progress (no API key needed)"
    )
    from ._demo import add_arguments as add_demo_arguments

    add_demo_arguments(demo)
    sim = commands.add_parser(
        "sim", help="serve the simulated provider as an OpenAI-compatible HTTP server"
    )
    from .providers._sim_server import add_arguments

    add_arguments(sim)
    events = commands.add_parser(
        "events", help="summarise the local analytics store: runs, tokens, cost, errors"
    )
    from ._events_cli import add_arguments as add_events_arguments

    add_events_arguments(events)
    bench = commands.add_parser(
        "bench", help="load-test a provider, a server or an agent workflow (TTFT, ITL, cost)"
    )
    from .harness._cli import add_arguments as add_bench_arguments

    add_bench_arguments(bench)
    return parser, {"demo": demo, "sim": sim, "events": events, "bench": bench}


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_from_args as run_demo

        return run_demo(args)
    if args.command == "sim":
        if args.port not in _PORTS:
            commands["sim"].error(
                f"argument --port: expected a port from 0 (any free one) to 65535, got {args.port}"
            )
        from .providers._sim_server import run_from_args

        return run_from_args(args)
    if args.command == "bench":
        from .harness._cli import run_from_args as run_bench

        return run_bench(args)
    if args.command == "events":
        from ._events_cli import run_from_args as run_events

        return run_events(args)
    parser.print_help()
    return 2
