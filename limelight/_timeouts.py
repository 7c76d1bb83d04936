"""limelight's timeouts, in one place: a call's deadline, an attempt timeout, the transport's.

A model call has three bounds, each with its own name, and each knob sets one of them:

**Deadline**: the whole call or run, every wait and retry inside it (a free worker, the rate
limiter, each attempt, backoff). No retry sleeps past it; when it passes the call ends with
:class:`~limelight.errors.DeadlineExceeded` (or ``AskTimeout``), an agent's run with status
``"timeout"``. An enclosing cancel scope (``anyio.fail_after``) is a deadline too, and nested
calls inherit what is left of it::

    AgentConfig(deadline=60.0)               # one agent run, tools and child agents included
    await pool.complete(request, timeout=30.0)   # one call through a pool (or ModelGroup)
    with anyio.fail_after(30.0): ...         # any call inside the block

**Attempt timeout**: one try at the backend. When it passes the attempt fails with
:class:`~limelight.errors.ProviderTimeout`, which is retried within the deadline. For a
stream it bounds the wait for each event, not the whole stream::

    ProviderPool.start(rt, provider, attempt_timeout=120.0)  # the pool's default, per attempt
    AgentConfig(attempt_timeout=20.0)        # the attempts of an agent's provider calls
    CompletionRequest(..., attempt_timeout=20.0)  # one request's attempts (wins over both)

A backend called directly (outside a pool) bounds each transport phase by the request's
attempt timeout instead (LiteLLM passes it as its ``timeout``).

**Transport**: httpx's phases of one HTTP exchange (``connect``, ``read`` between two chunks,
``write``, ``pool`` for a free connection), each bounded on its own, so a stream may run longer
than ``read`` as long as data keeps coming. An expired phase is a ``ProviderTimeout`` too::

    OpenAICompatible(url, timeout=httpx.Timeout(600.0, connect=10.0))  # the default
    OpenAICompatible(url, timeout=30.0)       # 30 s for each phase

The role router's and the sync client's settings map onto these: ``RoleConfig.timeout`` is
its calls' attempt timeout, ``LLMConfig.timeout`` the client's transport timeout.
"""

from __future__ import annotations

import math
import warnings

import anyio


def deadline_after(timeout: float | None) -> float:
    """The deadline ``timeout`` seconds from now; infinite without one."""
    return math.inf if timeout is None else anyio.current_time() + timeout


def time_left(deadline: float) -> float | None:
    """The timeout that ends at ``deadline``; ``None`` when it is infinite."""
    return None if deadline == math.inf else max(0.0, deadline - anyio.current_time())


def warn_renamed(owner: str, old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``owner``'s ``old`` is the deprecated name of ``new``."""
    warnings.warn(
        f"{owner}.{old} is deprecated: use {owner}.{new} (see limelight._timeouts)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
