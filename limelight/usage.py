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

from ._models import Price as Price
from ._models import clear_price_cache as clear_price_cache
from ._models import cost_of as cost_of
from ._models import model_price as model_price
from ._usage import DEFAULT_ROLE as DEFAULT_ROLE
from ._usage import Totals as Totals
from ._usage import UsageLimits as UsageLimits
from ._usage import UsageSummary as UsageSummary
from ._usage import check_limits as check_limits
from ._usage import configure_usage as configure_usage
from ._usage import get_cost_by_role as get_cost_by_role
from ._usage import get_run_usage as get_run_usage
from ._usage import get_tokens_by_role as get_tokens_by_role
from ._usage import get_total_cost as get_total_cost
from ._usage import get_usage_summary as get_usage_summary
from ._usage import print_usage_summary as print_usage_summary
from ._usage import record_usage as record_usage
from ._usage import reset_usage as reset_usage
from ._usage import usage_run as usage_run

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
