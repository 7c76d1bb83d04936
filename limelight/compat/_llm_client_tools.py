"""The agent client's tools, each wrapping limelight's :class:`~limelight.tools.Tool`.

``@tool``, ``@sync_tool``, ``Tool``, ``ToolRegistry`` and ``ToolResult``.

The schema comes from the function's signature and its argument docs from the docstring, as
limelight's ``@tool`` makes them; a ``Tool(...)`` built by hand keeps the JSON schema it was
given. Calls are validated and run by limelight's :class:`~limelight.tools.ToolRegistry`
(sync functions in worker threads, on asyncio and trio); every failure becomes an error
result, as before.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, overload

import anyio.to_thread
import msgspec

from .._tools import Tool as NativeTool
from .._tools import ToolRegistry as NativeRegistry
from ..errors import ConfigError
from ..schemas import ToolResult as NativeResult

__all__ = ["Tool", "ToolRegistry", "ToolResult", "sync_tool", "tool", "tool_from_function"]


@dataclass
class ToolResult:
    """What a tool call gave: ``content`` on success, ``error`` on failure."""

    content: str | dict[str, Any] | None = None
    success: bool = True
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_string(self) -> str:
        """The result as the model reads it."""
        if self.error:
            return f"Error: {self.error}"
        if isinstance(self.content, dict):
            return json.dumps(self.content, indent=2)
        return str(self.content) if self.content is not None else ""

    @classmethod
    def success_result(cls, content: str | dict[str, Any]) -> ToolResult:
        return cls(content=content, success=True)

    @classmethod
    def error_result(cls, error: str) -> ToolResult:
        return cls(success=False, error=error)

    @classmethod
    def from_native(cls, result: NativeResult) -> ToolResult:
        if result.is_error:
            error = result.content.removeprefix("Error: ")
            return cls(success=False, error=error, metadata={"duration": result.duration})
        return cls(content=result.content, metadata={"duration": result.duration})


def _as_native_result(value: Any) -> Any:
    """A tool's return value as limelight's tool result: an earlier ToolResult keeps its
    success or error, a dict reads as the earlier package showed it (indented JSON)."""
    if isinstance(value, ToolResult):
        return NativeResult(content=value.to_string(), is_error=not value.success)
    if isinstance(value, dict):
        return NativeResult(content=json.dumps(value, indent=2))
    return value


class _Native(NativeTool):
    """limelight's tool, answering with the earlier package's result rendering."""

    __slots__ = ()

    async def invoke(
        self, arguments: msgspec.Struct, *, limiter: anyio.CapacityLimiter | None = None
    ) -> Any:
        return _as_native_result(await super().invoke(arguments, limiter=limiter))


class Tool:
    """A function the model can call.

    Made with :func:`tool` / :func:`sync_tool`, or by hand with a JSON schema::

        Tool(name="get_time", description="The time in a zone.",
             parameters={"type": "object", "properties": {"zone": {"type": "string"}},
                         "required": ["zone"]},
             handler=get_time)

    :raises ConfigError: a name that is not valid, or a handler whose signature cannot be
        described.
    """

    def __init__(
        self,
        name: str,
        description: str,
        parameters: dict[str, Any] | None = None,
        handler: Callable[..., Any] | None = None,
        strict: bool = False,
        *,
        func: Callable[..., Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        fn = handler if handler is not None else func
        if fn is None:
            raise ConfigError(f"tool {name!r} needs a handler: Tool(..., handler=fn)")
        self.native = _Native(fn, name=name, description=description, timeout=timeout)
        if parameters is not None:
            if not isinstance(parameters, dict) or parameters.get("type") != "object":
                raise ConfigError(
                    f"tool {name!r}: parameters must be a JSON schema object "
                    '({"type": "object", "properties": {...}}), got '
                    f"{parameters!r:.80}"
                )
            self.native.spec = msgspec.structs.replace(self.native.spec, parameters=parameters)
        if strict:
            self.native.spec = msgspec.structs.replace(self.native.spec, strict=True)
        self._fn = fn

    @classmethod
    def _wrap(cls, native: _Native) -> Tool:
        made = cls.__new__(cls)
        made.native = native
        made._fn = native.fn
        return made

    @property
    def name(self) -> str:
        return self.native.name

    @property
    def description(self) -> str:
        return self.native.description

    @property
    def parameters(self) -> dict[str, Any]:
        return self.native.spec.parameters

    @property
    def strict(self) -> bool:
        return bool(self.native.spec.strict)

    @property
    def handler(self) -> Callable[..., Awaitable[Any]]:
        """The function, as a coroutine function (a sync one runs in a worker thread)."""
        fn = self._fn
        if inspect.iscoroutinefunction(fn):
            return fn

        async def run_in_thread(**kwargs: Any) -> Any:
            return await anyio.to_thread.run_sync(functools.partial(fn, **kwargs))

        return run_in_thread

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"

    def to_openai_format(self) -> dict[str, Any]:
        function: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}

    async def execute(self, **kwargs: Any) -> ToolResult:
        """Call the tool with these arguments (validated against its schema)."""
        return await ToolRegistry([self]).execute(self.name, kwargs)

    async def execute_json(self, arguments_json: str) -> ToolResult:
        """Call the tool with JSON-encoded arguments."""
        return await ToolRegistry([self]).execute(self.name, arguments_json)


def tool_from_function(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
) -> Tool:
    """A :class:`Tool` from a function (async or sync): its name, its docstring's summary
    and argument docs, and a schema from its signature."""
    made = Tool._wrap(_Native(func, name=name, description=description))
    if strict:
        made.native.spec = msgspec.structs.replace(made.native.spec, strict=True)
    return made


@overload
def tool(func: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, strict: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a :class:`Tool`: ``@tool`` or ``@tool(name=..., description=...)``."""

    def decorate(fn: Callable[..., Any]) -> Tool:
        return tool_from_function(fn, name=name, description=description, strict=strict)

    return decorate(func) if func is not None else decorate


@overload
def sync_tool(func: Callable[..., Any], /) -> Tool: ...


@overload
def sync_tool(
    *, name: str | None = None, description: str | None = None, strict: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def sync_tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a synchronous function a :class:`Tool`; calls run in a worker thread (limelight
    does this for any sync tool, so this is :func:`tool` by another name)."""

    def decorate(fn: Callable[..., Any]) -> Tool:
        return tool_from_function(fn, name=name, description=description, strict=strict)

    return decorate(func) if func is not None else decorate


class ToolRegistry:
    """Tools by name: lookup, the OpenAI ``tools`` list, and execution.

    :raises ConfigError: two tools share a name (``register`` raises it, as before).
    """

    def __init__(self, tools: Iterable[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools or ():
            self.register(t)

    def register(self, t: Tool | NativeTool | Callable[..., Any]) -> ToolRegistry:
        made = _as_tool(t)
        if made.name in self._tools:
            raise ConfigError(f"tool {made.name!r} is already registered")
        self._tools[made.name] = made
        return self

    def unregister(self, name: str) -> bool:
        return self._tools.pop(name, None) is not None

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    @property
    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def to_openai_format(self) -> list[dict[str, Any]]:
        return [t.to_openai_format() for t in self._tools.values()]

    def natives(self) -> list[NativeTool]:
        """The tools as limelight's, for its agent and registry."""
        return [t.native for t in self._tools.values()]

    async def execute(self, name: str, arguments: str | dict[str, Any]) -> ToolResult:
        """Validate and run one call (``arguments`` as JSON text or a dict); every failure,
        an unknown tool included, is an error result."""
        if isinstance(arguments, dict):
            arguments = json.dumps(arguments)
        native = NativeRegistry(self.natives(), timeout=None)
        return ToolResult.from_native(await native.execute(name, arguments))

    async def execute_parallel(self, calls: list[dict[str, Any]]) -> list[ToolResult]:
        """Run ``[{"name": ..., "arguments": ...}, ...]`` concurrently; results in order."""
        results: list[ToolResult] = [ToolResult() for _ in calls]

        async def one(i: int) -> None:
            call = calls[i]
            results[i] = await self.execute(call["name"], call.get("arguments", {}))

        async with anyio.create_task_group() as tg:
            for i in range(len(calls)):
                tg.start_soon(one, i)
        return results


def _as_tool(t: Any) -> Tool:
    if isinstance(t, Tool):
        return t
    if isinstance(t, NativeTool):
        return Tool._wrap(_Native(t.fn, name=t.name, description=t.description, timeout=t.timeout))
    if callable(t):
        return tool_from_function(t)
    raise ConfigError(f"a tool must be a Tool or a function, got {t!r}")
