"""Run limelight's command line: ``python -m limelight``."""

from .cli import main

raise SystemExit(main())
