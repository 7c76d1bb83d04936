"""The ``limelight`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._version import __version__


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_from_args as run_demo

        return run_demo(args)
    if args.command == "sim":
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
