"""limelight: an actor-based concurrent runtime for LLM agents, on anyio (asyncio and trio)."""

from ._version import __version__ as __version__
