"""The benchmark harness engine behind ``limelight bench``.

It load-tests the simulator, any OpenAI-compatible server, a model the backend resolver
serves, or whole agent workflows, with vLLM's metric definitions (TTFT, ITL, TPOT, E2EL,
throughput, goodput), cost, and reports.

::

    from limelight.harness import BenchConfig, Poisson, Workload, run, write_result

    result = await run(BenchConfig(workload=Workload(kind="stream"), load=Poisson(rate=20)))
    write_result(result, "results/stream")
"""

from ._config import BenchConfig as BenchConfig
from ._config import ClosedLoop as ClosedLoop
from ._config import ConstantRate as ConstantRate
from ._config import Gamma as Gamma
from ._config import Load as Load
from ._config import Poisson as Poisson
from ._config import SimTarget as SimTarget
from ._config import Target as Target
from ._config import Workload as Workload
from ._config import arrivals as arrivals
from ._metrics import METRIC_DEFINITIONS as METRIC_DEFINITIONS
from ._metrics import Distribution as Distribution
from ._metrics import Prices as Prices
from ._metrics import RequestRecord as RequestRecord
from ._metrics import Summary as Summary
from ._metrics import TimePoint as TimePoint
from ._metrics import parse_slos as parse_slos
from ._metrics import percentile as percentile
from ._metrics import summarize as summarize
from ._report import load_records as load_records
from ._report import load_result as load_result
from ._report import render_html as render_html
from ._report import write_result as write_result
from ._run import run as run
from ._run import run_on as run_on
from ._run import sweep as sweep
from ._runner import BenchResult as BenchResult
from ._runner import Progress as Progress
from ._runner import SweepPoint as SweepPoint
from ._runner import SweepResult as SweepResult
from ._targets import OpenTarget as OpenTarget
from ._targets import open_target as open_target

__all__ = [
    "METRIC_DEFINITIONS",
    "BenchConfig",
    "BenchResult",
    "ClosedLoop",
    "ConstantRate",
    "Distribution",
    "Gamma",
    "Load",
    "OpenTarget",
    "Poisson",
    "Prices",
    "Progress",
    "RequestRecord",
    "SimTarget",
    "Summary",
    "SweepPoint",
    "SweepResult",
    "Target",
    "TimePoint",
    "Workload",
    "arrivals",
    "load_records",
    "load_result",
    "open_target",
    "parse_slos",
    "percentile",
    "render_html",
    "run",
    "run_on",
    "summarize",
    "sweep",
    "write_result",
]
