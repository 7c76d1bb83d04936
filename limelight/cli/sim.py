"""``limelight sim``: the simulated provider served as an OpenAI-compatible HTTP server.

The simulator and its server live in :mod:`limelight.sim`; this module holds the command's
options, turns them into a :class:`~limelight.sim.SimulatedConfig`, and serves it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..errors import ConfigError
from ..sim._config import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    DEFAULT_MODEL,
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_SEED,
    DEFAULT_TOKENS_PER_SECOND,
    DEFAULT_TOOL_CALL_PROBABILITY,
    DEFAULT_TTFT,
    DEFAULT_TTFT_JITTER,
    SimulatedConfig,
    parse_output_length,
)
from ..sim._server import DEFAULT_HOST, DEFAULT_PORT, serve_forever

__all__ = ["add_arguments", "config_from_args", "run"]

#: The ports ``limelight sim --port`` takes (0: any free one).
_PORTS = range(65536)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``limelight sim`` options to ``parser``."""
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one (%(default)s)"
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help=f"a model to serve; repeat for several; the first is the default ({DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--strict-models", action="store_true", help="answer 404 for models not served"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="the same seed and the same requests give the same answers (%(default)s)",
    )
    parser.add_argument(
        "--ttft", type=float, default=DEFAULT_TTFT, help="mean seconds to first token (%(default)s)"
    )
    parser.add_argument(
        "--ttft-jitter",
        type=float,
        default=DEFAULT_TTFT_JITTER,
        help="the first token comes within ttft ± this (%(default)s)",
    )
    parser.add_argument(
        "--tps",
        type=float,
        default=DEFAULT_TOKENS_PER_SECOND,
        help="tokens per second after the first; 0 for no delay (%(default)s)",
    )
    parser.add_argument(
        "--output-tokens",
        default=str(DEFAULT_OUTPUT_TOKENS),
        metavar="N|LOW-HIGH|lognormal:MEAN:SD",
        help="answer length before max_tokens caps it (%(default)s)",
    )
    parser.add_argument(
        "--tool-call-probability",
        type=float,
        default=DEFAULT_TOOL_CALL_PROBABILITY,
        help="chance of a tool call when the request offers tools (%(default)s)",
    )
    parser.add_argument("--rpm", type=int, help="requests per minute quota")
    parser.add_argument("--tpm", type=int, help="tokens per minute quota")
    parser.add_argument("--max-concurrency", type=int, help="requests in flight at once")
    faults = parser.add_argument_group("fault injection (chance per request, 0 to 1)")
    faults.add_argument("--server-error-rate", type=float, default=0.0, help="5xx answers")
    faults.add_argument("--rate-limit-error-rate", type=float, default=0.0, help="429 answers")
    faults.add_argument("--connection-reset-rate", type=float, default=0.0, help="TCP resets")
    faults.add_argument("--truncated-rate", type=float, default=0.0, help="answers cut short")
    faults.add_argument("--malformed-rate", type=float, default=0.0, help="invalid JSON")
    parser.add_argument(
        "--embedding-dimensions",
        type=int,
        default=DEFAULT_EMBEDDING_DIMENSIONS,
        help="length of embedding vectors when a request names none (%(default)s)",
    )


def config_from_args(args: argparse.Namespace) -> SimulatedConfig:
    """The :class:`SimulatedConfig` the parsed ``limelight sim`` options describe.

    :raises ConfigError: when an option's value is invalid.
    """
    return SimulatedConfig(
        models=tuple(args.models or (DEFAULT_MODEL,)),
        strict_models=args.strict_models,
        seed=args.seed,
        ttft=args.ttft,
        ttft_jitter=args.ttft_jitter,
        tokens_per_second=args.tps or None,
        output_tokens=parse_output_length(args.output_tokens),
        tool_call_probability=args.tool_call_probability,
        rpm=args.rpm,
        tpm=args.tpm,
        max_concurrency=args.max_concurrency,
        server_error_rate=args.server_error_rate,
        rate_limit_error_rate=args.rate_limit_error_rate,
        connection_reset_rate=args.connection_reset_rate,
        truncated_rate=args.truncated_rate,
        malformed_rate=args.malformed_rate,
        embedding_dimensions=args.embedding_dimensions,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; returns 0 after a clean stop, 1 when the port cannot be
    listened on, 2 for an invalid option.

    :raises argparse.ArgumentError: ``--port`` is not a port.
    """
    if args.port not in _PORTS:
        raise argparse.ArgumentError(
            None,
            f"argument --port: expected a port from 0 (any free one) to 65535, got {args.port}",
        )
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"limelight sim: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_forever(config, host=args.host, port=args.port))
    except ImportError as exc:  # aiohttp, from the `sim` extra
        print(f"limelight sim: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"limelight sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
