"""Tools for agents.

The ``@tool`` decorator, :class:`ToolRegistry`, :class:`ToolResult` and the
:class:`ToolExecutor` actor."""

from ._tools import DEFAULT_TOOL_TIMEOUT as DEFAULT_TOOL_TIMEOUT
from ._tools import Tool as Tool
from ._tools import ToolRegistry as ToolRegistry
from ._tools import tool as tool
from .actors._tool_executor import DEFAULT_TOOL_CONCURRENCY as DEFAULT_TOOL_CONCURRENCY
from .actors._tool_executor import RunTools as RunTools
from .actors._tool_executor import ToolExecutor as ToolExecutor
from .schemas import ToolResult as ToolResult

__all__ = [
    "DEFAULT_TOOL_CONCURRENCY",
    "DEFAULT_TOOL_TIMEOUT",
    "RunTools",
    "Tool",
    "ToolExecutor",
    "ToolRegistry",
    "ToolResult",
    "tool",
]
