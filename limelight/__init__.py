"""limelight: an actor-based concurrent runtime for LLM agents, on anyio (asyncio and trio).

The package is built in layers. A module imports only from the layers below its own, never
from above, and never reaches one through ``sys.modules``: the import-linter contracts in
pyproject.toml check this (``lint-imports``), and so does ``tests/test_layers.py``. From the
bottom:

``runtime``
    The actor kernel: actors, refs, mailboxes, supervision, retries, the blocking portal.
    It knows nothing about LLMs and imports nothing else of limelight.

``_secrets``, ``_version``, ``_timeouts``, ``errors``, ``_lazy``, ``_dotenv``
    Leaf helpers (redacting keys, the version, the timeout model: a call's deadline, an
    attempt timeout, the transport's), then the one error hierarchy (which re-exports the
    kernel's errors), then the lazy attributes of the packages' ``__init__`` and
    ``load_dotenv()``.

``schemas``
    The msgspec Structs of every message that crosses an actor boundary or a wire: requests,
    results, stream events, analytics events, the OpenAI wire format.

Pure cores: ``_models``, ``_httpx``, ``_buckets``, ``_instrument``, then ``_usage``,
``_tracking``, ``_tracing``, ``_tools``, ``_stream_adapters``, ``_pusher``, ``_jsonout``,
``_files``, ``_leases``, then ``_conversation``, ``_spool``, ``_analytics_hook``
    One per feature, with no actors and no backends, each testable alone: model profiles
    and prices, the HTTP connection pools, the token buckets, the usage tracker, the tracking
    decorators, tools, conversations, the analytics write-ahead log, quota leases, ...
    ``_instrument`` is the one plug-in point for instrumentation (and the attempt hooks' protocol):
    ``analytics.initialize()`` registers its client and attempt hook there, and the actors
    and decorators record through it without importing ``analytics``.

``sim``
    The simulated LLM, a package of its own: configuration, quotas, the engine that decides
    each request as data, an in-process provider and an OpenAI-compatible HTTP server.

``providers``, ``sinks``, ``caches``
    Backends a provider worker drives (OpenAI-compatible, LiteLLM, local models, scripted,
    the simulator), where analytics events go (SQLite, JSONL, HTTP, OTLP) and where response
    caches keep answers (memory, SQLite, Redis, PostgreSQL, Qdrant): plain async classes
    over the cores. None imports another.

``actors``
    The supervised actors: provider pools and workers, the rate limiter, agents, tool
    executors, the analytics shipper. Lifecycle, messages and supervision; the logic they
    wrap lives in the cores. One actor per module.

Public modules over one feature: ``analytics`` (over ``_analytics``), ``agents``, ``tools``,
``models``, ``conversation``, ``usage``, ``streaming``
    Each re-exports, or wraps in an API, its core or actors; none imports another.

Facades: ``roles``, ``client``, ``cache``, ``batch``, ``testing`` (over ``_roles``,
``_llm_json``, ``_client``, ``_cache``, ``_batch``); above them ``harness`` and
``integrations``
    The role router, the sync client, caching, batches and test doubles, then the benchmark
    harness and the hooks for other frameworks, composed from everything below.

``compat``, ``cluster``
    The earlier tools' APIs (``insidellm``, ``myopto``, ``llm``, ``llm_client``), each a
    thin facade over the layers below, their framework hooks included; runtime hosts on Ray
    and the quotas shared by many processes (Redis, a Ray actor).

``cli``, ``__main__``
    The ``limelight`` command, one module per subcommand, on top of everything.

One rule for public modules (trio's): code lives in private ``_x`` modules (``_roles``,
``_client``, ``_analytics``, ``actors/_agent``...), and a public module or package
``__init__`` only re-exports, one ``from ._x import Name as Name`` per name, listed in
``__all__``. So a module's state (a process-wide client, a role's pool) lives in its private
module, and that is the module to patch in a test. ``tests/test_public_api.py`` checks that
every public module defines nothing itself (``errors`` and ``integrations`` excepted, for
now).
"""

from ._conversation import Conversation as Conversation
from ._dotenv import load_dotenv as load_dotenv
from ._tools import ToolRegistry as ToolRegistry
from ._tools import tool as tool
from ._version import __version__ as __version__
from .actors import Agent as Agent
from .actors import AgentConfig as AgentConfig
from .actors import AgentResult as AgentResult
from .runtime import Actor as Actor
from .runtime import ActorRef as ActorRef
from .runtime import Context as Context
from .runtime import LimelightError as LimelightError
from .runtime import Overflow as Overflow
from .runtime import Restart as Restart
from .runtime import RetryPolicy as RetryPolicy
from .runtime import Runtime as Runtime
from .runtime import Strategy as Strategy
from .runtime import Supervision as Supervision
from .runtime import start_blocking_runtime as start_blocking_runtime

__all__ = [
    "Actor",
    "ActorRef",
    "Agent",
    "AgentConfig",
    "AgentResult",
    "Context",
    "Conversation",
    "LimelightError",
    "Overflow",
    "Restart",
    "RetryPolicy",
    "Runtime",
    "Strategy",
    "Supervision",
    "ToolRegistry",
    "__version__",
    "load_dotenv",
    "start_blocking_runtime",
    "tool",
]
