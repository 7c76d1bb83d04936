"""Tokens and cost of every LLM call in the process, per role, per model and per run.

The role router (:mod:`limelight.roles`) and the sync client (:mod:`limelight.client`) record
each call here; anything else can with :func:`record_usage`. Prices come from genai-prices
(a maintained price list, cache-read prices included), else LiteLLM's cost map, unless a
registered :class:`~limelight.models.ModelProfile` names them::

    from limelight.usage import get_cost_by_role, print_usage_summary

    print(get_cost_by_role())  # {'executor': 0.0123, 'optimizer': 0.0045}
    print_usage_summary()  # a table per role and per model
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from ._models import Price as Price
from ._models import clear_price_cache as clear_price_cache
from ._models import cost_of as cost_of
from ._models import model_price as model_price
from ._usage import DEFAULT_ROLE as DEFAULT_ROLE
from ._usage import TRACKER, usage_table
from ._usage import Totals as Totals
from ._usage import UsageLimits as UsageLimits
from ._usage import UsageSummary as UsageSummary
from ._usage import check_limits as check_limits
from ._usage import current_usage_run as _current_run
from .schemas import Usage

__all__ = [
    "DEFAULT_ROLE",
    "Price",
    "Totals",
    "UsageLimits",
    "UsageSummary",
    "check_limits",
    "clear_price_cache",
    "configure_usage",
    "cost_of",
    "get_cost_by_role",
    "get_run_usage",
    "get_tokens_by_role",
    "get_total_cost",
    "get_usage_summary",
    "model_price",
    "print_usage_summary",
    "record_usage",
    "reset_usage",
    "usage_run",
]


def configure_usage(*, enabled: bool | None = None) -> None:
    """Turn recording on or off (on by default); ``None`` leaves it as it is."""
    if enabled is not None:
        TRACKER.enabled = bool(enabled)


def reset_usage() -> None:
    """Forget everything recorded so far."""
    TRACKER.reset()


def record_usage(
    usage: Usage,
    *,
    model: str,
    role: str | None = None,
    run_id: str | None = None,
    cost: float | None = None,
    cached_tokens: int | None = None,
) -> float | None:
    """Count one call's ``usage``.

    :param model: the model that answered (prices are looked up by it).
    :param role: the role it worked for; ``None`` counts it under :data:`DEFAULT_ROLE`.
    :param run_id: the run (an agent's run, a batch) to count it under as well; ``None``
        takes the run of the enclosing :func:`usage_run` block, if any.
    :param cost: the call's price in USD when the provider said it; else it is computed.
    :param cached_tokens: how many prompt tokens were cache reads (priced lower where the
        price source knows it); ``None`` takes ``usage.cached_tokens``.
    :returns: the cost counted, ``None`` when the model's price is unknown.
    :raises ConfigError: ``usage`` is not a :class:`~limelight.schemas.Usage`, or ``cost``
        is negative.
    """
    if cached_tokens is None:
        cached_tokens = usage.cached_tokens if isinstance(usage, Usage) else 0
    if run_id is None:
        run_id = _current_run.get()
    return TRACKER.record(
        usage, model=model, role=role, run_id=run_id, cost=cost, cached_tokens=cached_tokens
    )


@contextmanager
def usage_run(run_id: str) -> Iterator[str]:
    """Count the calls made inside the block (in this thread or task) under ``run_id`` too::

    with usage_run("nightly-eval"):
        llm_text("...", role="executor")
    print(get_run_usage("nightly-eval").cost)
    """
    if not isinstance(run_id, str) or not run_id:
        from .errors import ConfigError

        raise ConfigError(f"run_id must be a non-empty str, got {run_id!r}")
    token = _current_run.set(run_id)
    try:
        yield run_id
    finally:
        _current_run.reset(token)


def get_total_cost() -> float:
    """USD of every priced call recorded."""
    return TRACKER.summary().total.cost


def get_cost_by_role() -> dict[str, float]:
    """USD per role."""
    return {role: t.cost for role, t in TRACKER.summary().by_role.items()}


def get_tokens_by_role() -> dict[str, Usage]:
    """Prompt, completion and total tokens per role."""
    return {role: t.usage for role, t in TRACKER.summary().by_role.items()}


def get_run_usage(run_id: str) -> Totals:
    """Tokens and cost recorded under ``run_id`` (zeros when none)."""
    return TRACKER.run_totals(run_id)


def get_usage_summary() -> UsageSummary:
    """A snapshot of everything recorded: overall, per role, per model and per run."""
    return TRACKER.summary()


def print_usage_summary(*, file: IO[str] | None = None, width: int | None = None) -> None:
    """Print :func:`get_usage_summary` as a table (needs rich: ``limelight[usage]``).

    :param file: where to print (standard output by default).
    :param width: the table's width in characters (the terminal's by default).
    """
    try:
        from rich.console import Console
    except ImportError as exc:
        from .errors import MissingExtra

        raise MissingExtra("print_usage_summary", missing="rich", extra="usage") from exc
    Console(file=file, width=width).print(usage_table(get_usage_summary()))
