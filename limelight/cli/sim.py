"""``limelight sim``: the simulated provider served as an OpenAI-compatible HTTP server.

The server and its options live with the simulator (:mod:`limelight.providers._sim_server`);
this module checks what argparse does not before the server starts.
"""

from __future__ import annotations

import argparse

from ..providers._sim_server import add_arguments as add_arguments
from ..providers._sim_server import run_from_args

__all__ = ["add_arguments", "run"]

#: The ports ``limelight sim --port`` takes (0: any free one).
_PORTS = range(65536)


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
    return run_from_args(args)
