"""The usage tracker's implementation (see :mod:`limelight.usage`).

It holds the process-wide tracker, the functions over it and the limits behind
:mod:`limelight.usage`; prices come from :mod:`limelight._models` (re-exported here for the code
that priced calls through this module)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any, Final

import msgspec

from ._models import Price as Price
from ._models import clear_price_cache as clear_price_cache
from ._models import cost_of as cost_of
from ._models import model_price as model_price
from .errors import ConfigError
from .schemas import Usage

#: The run of the enclosing ``usage_run`` block (see :func:`limelight.usage.usage_run`);
#: agents carry it into their actor and tool tasks.
current_usage_run: ContextVar[str | None] = ContextVar("limelight_usage_run", default=None)

#: The bucket of calls made without a role (the sync client's, for one).
DEFAULT_ROLE: Final = "default"


# --------------------------------------------------------------------------------------
# The tracker


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    """Tokens and cost of a group of calls.

    :ivar cost: USD of the priced calls.
    :ivar unpriced_calls: calls whose model has no known price (not in ``cost``).
    """

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    unpriced_calls: int = 0

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.total_tokens,
            cached_tokens=self.cached_tokens,
        )


class UsageSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Everything recorded since the last reset: overall, per role, per model and per run."""

    total: Totals
    by_role: dict[str, Totals]
    by_model: dict[str, Totals]
    by_run: dict[str, Totals]


class _Acc:
    __slots__ = ("cached", "calls", "completion", "cost", "prompt", "total", "unpriced")

    def __init__(self) -> None:
        self.calls = self.prompt = self.completion = self.total = self.cached = 0
        self.unpriced = 0
        self.cost = 0.0

    def add(self, usage: Usage, cached: int, cost: float | None) -> None:
        self.calls += 1
        self.prompt += usage.prompt_tokens
        self.completion += usage.completion_tokens
        self.total += usage.total_tokens
        self.cached += cached
        if cost is None:
            self.unpriced += 1
        else:
            self.cost += cost

    def freeze(self) -> Totals:
        return Totals(
            calls=self.calls,
            prompt_tokens=self.prompt,
            completion_tokens=self.completion,
            total_tokens=self.total,
            cached_tokens=self.cached,
            cost=self.cost,
            unpriced_calls=self.unpriced,
        )


class UsageTracker:
    """Tokens and cost per role, per model and per run, safe to record from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.enabled = True
        self._total = _Acc()
        self._roles: dict[str, _Acc] = {}
        self._models: dict[str, _Acc] = {}
        self._runs: dict[str, _Acc] = {}

    def reset(self) -> None:
        with self._lock:
            self._total = _Acc()
            self._roles, self._models, self._runs = {}, {}, {}

    def record(
        self,
        usage: Usage,
        *,
        model: str,
        role: str | None,
        run_id: str | None,
        cost: float | None,
        cached_tokens: int,
    ) -> float | None:
        if not isinstance(usage, Usage):
            raise ConfigError(f"record_usage takes a Usage, got {type(usage).__name__}")
        if cost is not None and cost < 0:
            raise ConfigError(f"cost must be >= 0 USD, got {cost!r}")
        if not self.enabled:
            return cost
        if cost is None:
            cost = cost_of(usage, model, cached_tokens=cached_tokens)
        role = role or DEFAULT_ROLE
        with self._lock:
            accs = [self._total, _get(self._roles, role), _get(self._models, model or "?")]
            if run_id is not None:
                accs.append(_get(self._runs, run_id))
            for acc in accs:
                acc.add(usage, cached_tokens, cost)
        return cost

    def summary(self) -> UsageSummary:
        with self._lock:
            return UsageSummary(
                total=self._total.freeze(),
                by_role=_freeze(self._roles.items()),
                by_model=_freeze(self._models.items()),
                by_run=_freeze(self._runs.items()),
            )

    def run_totals(self, run_id: str) -> Totals:
        with self._lock:
            acc = self._runs.get(run_id)
            return Totals() if acc is None else acc.freeze()


def _get(table: dict[str, _Acc], key: str) -> _Acc:
    acc = table.get(key)
    if acc is None:
        acc = table[key] = _Acc()
    return acc


def _freeze(items: Iterable[tuple[str, _Acc]]) -> dict[str, Totals]:
    return {key: acc.freeze() for key, acc in items}


TRACKER: Final = UsageTracker()


# --------------------------------------------------------------------------------------
# Limits


class UsageLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The most a run may spend; ``None`` means no limit.

    :ivar max_tokens: total tokens (prompt plus completion).
    :ivar max_cost: USD.
    """

    max_tokens: int | None = None
    max_cost: float | None = None

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1 (or None), got {self.max_tokens!r}")
        if self.max_cost is not None and self.max_cost < 0:
            raise ConfigError(f"max_cost must be >= 0 USD (or None), got {self.max_cost!r}")


def check_limits(limits: UsageLimits | None, tokens: int, cost: float | None) -> str | None:
    """Why a run that used ``tokens`` and ``cost`` USD must stop, or ``None`` if it may go
    on. A limit is reached when the figure equals or passes it; an unknown cost (``None``)
    never passes ``max_cost``."""
    if limits is None:
        return None
    if limits.max_tokens is not None and tokens >= limits.max_tokens:
        return f"used {tokens} tokens, the limit is {limits.max_tokens} (UsageLimits.max_tokens)"
    if limits.max_cost is not None and cost is not None and cost >= limits.max_cost:
        return f"cost {cost:.6f} USD, the limit is {limits.max_cost:.6f} USD (UsageLimits.max_cost)"
    return None


def usage_table(summary: UsageSummary) -> Any:
    """A rich Table of ``summary``: one row per role, per model, and the total."""
    from rich.table import Table

    table = Table(title="LLM usage")
    for column in ("", "name", "calls", "prompt", "cached", "completion", "total", "cost (USD)"):
        justify = "left" if column in ("", "name") else "right"
        table.add_column(column, justify=justify)  # type: ignore[arg-type]

    def row(kind: str, name: str, t: Totals) -> None:
        cost = f"{t.cost:.6f}" + (f" (+{t.unpriced_calls} unpriced)" if t.unpriced_calls else "")
        table.add_row(
            kind,
            name,
            str(t.calls),
            str(t.prompt_tokens),
            str(t.cached_tokens),
            str(t.completion_tokens),
            str(t.total_tokens),
            cost,
        )

    for name, totals in sorted(summary.by_role.items()):
        row("role", name, totals)
    table.add_section()
    for name, totals in sorted(summary.by_model.items()):
        row("model", name, totals)
    table.add_section()
    row("total", "", summary.total)
    return table


# --------------------------------------------------------------------------------------
# The functions of limelight.usage


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
        run_id = current_usage_run.get()
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
        raise ConfigError(f"run_id must be a non-empty str, got {run_id!r}")
    token = current_usage_run.set(run_id)
    try:
        yield run_id
    finally:
        current_usage_run.reset(token)


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
