"""The earlier role router's usage functions (``myopto.utils.usage``) over limelight's tracker.

Calls made through the role router are counted by the provider pools already; these
functions read limelight's process-wide tracker (:mod:`limelight._usage`) in the earlier
shapes (tokens per role as one total, the summary as a dict), and :func:`track_response`
counts a response that came from elsewhere.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import msgspec

from .. import _usage
from ..schemas import Usage


class UsageRecord(msgspec.Struct, frozen=True):
    """One call's usage, as :func:`track_response` counted it.

    :ivar usd: its cost (0.0 when the model's price is unknown).
    """

    model: str | None
    role: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    usd: float
    backend: str | None = None
    ts: float = 0.0


def configure_usage(enabled: bool = True) -> None:
    """Turn usage counting on or off (limelight counts from the start; the earlier tracker
    waited for this call)."""
    _usage.configure_usage(enabled=enabled)


def reset_usage() -> None:
    """Forget every call counted so far."""
    _usage.reset_usage()


def get_total_cost() -> float:
    """USD of every priced call."""
    return _usage.get_total_cost()


def get_cost_by_role() -> dict[str, float]:
    """USD per role."""
    return _usage.get_cost_by_role()


def get_tokens_by_role() -> dict[str, int]:
    """Tokens (prompt and completion together) per role."""
    return {role: u.total_tokens for role, u in _usage.get_tokens_by_role().items()}


def get_usage_summary() -> dict[str, Any]:
    """``{"total_cost_usd": ..., "cost_by_role": {...}, "tokens_by_role": {...}}``; the whole
    limelight summary (per model and per run too) is :func:`limelight.usage.get_usage_summary`.
    """
    return {
        "total_cost_usd": get_total_cost(),
        "cost_by_role": get_cost_by_role(),
        "tokens_by_role": get_tokens_by_role(),
    }


def print_usage_summary(file: IO[str] | None = None) -> None:
    """Print the summary as the earlier tracker did (the total, then cost and tokens per
    role); :func:`limelight.usage.print_usage_summary` prints the full table."""
    out = file if file is not None else sys.stdout
    summary = get_usage_summary()
    print("\n=== Usage Summary ===", file=out)
    print(f"Total Cost: ${summary['total_cost_usd']:.6f}", file=out)
    if summary["cost_by_role"]:
        print("\nCost by Role:", file=out)
        for role, cost in sorted(summary["cost_by_role"].items()):
            tokens = summary["tokens_by_role"].get(role, 0)
            print(f"  {role}: ${cost:.6f} ({tokens:,} tokens)", file=out)


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def track_response(
    resp: Any,
    *,
    model: str | None = None,
    role: str | None = None,
    backend: str | None = None,
) -> UsageRecord:
    """Count the usage of ``resp`` (an OpenAI-shaped response, object or dict) under ``role``.

    The role router's own calls are counted already: this is for responses obtained
    elsewhere. Nothing is counted while counting is off (the record is still returned).
    """
    name = _field(resp, "model")
    resp_model = name.strip() if isinstance(name, str) and name.strip() else model
    usage = _field(resp, "usage")
    prompt = _field(usage, "prompt_tokens")
    completion = _field(usage, "completion_tokens")
    if prompt is None:
        prompt = _field(usage, "input_tokens")
    if completion is None:
        completion = _field(usage, "output_tokens")
    pt, ct = _count(prompt), _count(completion)
    usage_ = Usage.of(pt, ct)
    cost = _usage.cost_of(usage_, resp_model or "?")
    _usage.record_usage(usage_, model=resp_model or "?", role=role, cost=cost)
    return UsageRecord(
        model=resp_model,
        role=role,
        prompt_tokens=pt,
        completion_tokens=ct,
        total_tokens=pt + ct,
        usd=cost or 0.0,
        backend=backend,
        ts=time.time(),
    )
