"""Tools an agent can call: ``@tool``, :class:`ToolRegistry` and :class:`ToolResult`.

The ``@tool`` decorator makes a tool; the :class:`ToolRegistry` validates and runs calls.

A tool's JSON schema comes from its signature (a msgspec Struct built from it) and its
argument docs from its docstring. Every failure of a call becomes an error result the model
can read and act on; nothing a model sends can crash the caller.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Annotated, Any, Final, TypeVar, overload

import anyio
import anyio.to_thread
import msgspec

from .errors import ConfigError
from .schemas import ToolResult, ToolSpec

__all__ = [
    "DEFAULT_TOOL_TIMEOUT",
    "PreparedCall",
    "Tool",
    "ToolRegistry",
    "ToolResult",
    "tool",
]

#: Seconds a tool call may take when neither the tool nor the caller says otherwise.
DEFAULT_TOOL_TIMEOUT: Final = 60.0

# OpenAI's rule for function names; other providers accept a subset of it or the same.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_encoder = msgspec.json.Encoder()

F = TypeVar("F", bound=Callable[..., Any])


def _docs(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The description and the per-argument docs of ``fn``'s docstring (any style)."""
    doc = inspect.getdoc(fn)
    if not doc:
        return "", {}
    try:
        import docstring_parser  # lazily: only tools need it
    except ImportError as exc:
        raise ConfigError(
            "reading argument docs from docstrings needs docstring-parser: "
            "pip install 'limelight[agents]'"
        ) from exc

    parsed = docstring_parser.parse(doc)
    parts = [p for p in (parsed.short_description, parsed.long_description) if p]
    return "\n\n".join(parts), {
        p.arg_name: p.description for p in parsed.params if p.description is not None
    }


def _arguments_struct(
    fn: Callable[..., Any], name: str, docs: dict[str, str]
) -> type[msgspec.Struct]:
    """A Struct with one field per parameter of ``fn``: msgspec validates calls against it
    and derives the JSON schema from it, so the two can never disagree."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError) as exc:
        raise ConfigError(
            f"tool {name!r}: cannot resolve the annotations of {fn.__qualname__} ({exc}); "
            "define the types it names at module level"
        ) from exc
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(
                f"tool {name!r}: *{param.name} / **{param.name} cannot be described to a "
                "model; give every argument a name and a type"
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise ConfigError(
                f"tool {name!r}: positional-only parameter {param.name!r}; tools are called "
                "with keyword arguments"
            )
        annotation: Any = hints.get(param.name, Any)
        if param.name in docs:
            annotation = Annotated[annotation, msgspec.Meta(description=docs[param.name])]
        if param.default is param.empty:
            fields.append((param.name, annotation))
        else:
            fields.append((param.name, annotation, param.default))
    try:
        struct = msgspec.defstruct(
            f"{name}_arguments", fields, kw_only=True, forbid_unknown_fields=True
        )
        msgspec.json.schema(struct)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"tool {name!r}: its signature has a type msgspec cannot describe ({exc}); use "
            "builtins, Optional, Literal, enums, msgspec Structs or dataclasses"
        ) from exc
    return struct


def _schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """The object schema of ``struct`` with its own ``$defs`` entry inlined at the top (the
    shape function-calling APIs expect); nested types stay in ``$defs``."""
    schema = msgspec.json.schema(struct)
    defs: dict[str, Any] = schema.get("$defs", {})
    ref = schema.get("$ref", "")
    top = dict(defs.pop(ref.rsplit("/", 1)[-1], schema))
    top.pop("title", None)
    top.setdefault("properties", {})
    if defs:
        top["$defs"] = defs
    return top


def _render(value: Any) -> str:
    """A tool's return value as the text the model reads."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return _encoder.encode(value).decode()
    except (TypeError, ValueError):
        return str(value)


class Tool:
    """A function the model can call. Make one with :func:`tool`.

    Calling the tool object calls the function unchanged, so decorated functions stay
    usable (and testable) as plain functions.

    :ivar name: the name the model calls it by.
    :ivar description: what it does, for the model.
    :ivar timeout: seconds a call may take (``None``: the executor's default).
    :ivar arguments: the msgspec Struct its arguments are validated against.
    """

    __slots__ = ("_is_async", "arguments", "description", "fn", "name", "spec", "timeout")

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigError(f"a tool wraps a function, got {fn!r}")
        self.name: str = name or str(getattr(fn, "__name__", ""))
        if not _NAME.match(self.name):
            raise ConfigError(
                f"tool name {self.name!r} is not valid: use 1 to 64 letters, digits, _ or -"
            )
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"tool {self.name!r}: timeout must be > 0, got {timeout}")
        doc, arg_docs = _docs(fn)
        self.fn = fn
        self.description = doc if description is None else description
        self.timeout = timeout
        self.arguments = _arguments_struct(fn, self.name, arg_docs)
        self.spec = ToolSpec(
            name=self.name, description=self.description, parameters=_schema(self.arguments)
        )
        target = fn.func if isinstance(fn, functools.partial) else fn
        self._is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
            getattr(target, "__call__", None)  # noqa: B004 - an async callable object
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"

    async def invoke(
        self, arguments: msgspec.Struct, *, limiter: anyio.CapacityLimiter | None = None
    ) -> Any:
        """Call the function with validated ``arguments``: awaited when async, in a worker
        thread when sync (abandoned, not waited for, when cancelled: a thread cannot be
        interrupted, and a timed-out call must not hold up the agent)."""
        return await self._begin(arguments, limiter)

    def _begin(
        self, arguments: msgspec.Struct, limiter: anyio.CapacityLimiter | None
    ) -> Awaitable[Any]:
        """What :meth:`invoke` awaits: the function's own awaitable when it is async."""
        kwargs = msgspec.structs.asdict(arguments)
        if self._is_async:
            return typing.cast(Awaitable[Any], self.fn(**kwargs))
        return anyio.to_thread.run_sync(
            functools.partial(self.fn, **kwargs), abandon_on_cancel=True, limiter=limiter
        )


@overload
def tool(fn: F, /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, timeout: float | None = None
) -> Callable[[F], Tool]: ...


def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Tool | Callable[[F], Tool]:
    """Make a function (async or sync) a :class:`Tool`::

        @tool
        async def search(query: str, limit: int = 5) -> list[str]:
            '''Search the web.

            :param query: what to look for.
            :param limit: how many results.
            '''

    :param name: overrides the function's name.
    :param description: overrides the docstring's description.
    :param timeout: seconds one call may take.
    :raises ConfigError: the signature cannot be described as a JSON schema.
    """
    if fn is not None:
        return Tool(fn, name=name, description=description, timeout=timeout)

    def decorate(f: F) -> Tool:
        return Tool(f, name=name, description=description, timeout=timeout)

    return decorate


def _error(content: str, start: float, name: str, tool_call_id: str | None) -> ToolResult:
    return ToolResult(
        content=content,
        is_error=True,
        duration=time.perf_counter() - start,
        name=name,
        tool_call_id=tool_call_id,
    )


class PreparedCall:
    """A model's call with its tool found and its arguments validated, ready to run."""

    __slots__ = ("arguments", "start", "tool", "tool_call_id")

    def __init__(
        self, tool: Tool, arguments: msgspec.Struct, tool_call_id: str | None, start: float
    ) -> None:
        self.tool = tool
        self.arguments = arguments
        self.tool_call_id = tool_call_id
        #: ``time.perf_counter()`` when the call was received (durations count from it).
        self.start = start

    def begin(self, limiter: anyio.CapacityLimiter | None = None) -> Awaitable[Any]:
        """The tool started on these arguments: what to await for its return value (that of
        :meth:`Tool.invoke`, without a coroutine of its own unless a subclass overrides
        ``invoke``: the tool's coroutine is the only frame kept alive while it runs)."""
        t = self.tool
        if type(t).invoke is not Tool.invoke:
            return t.invoke(self.arguments, limiter=limiter)
        return t._begin(self.arguments, limiter)

    def returned(self, value: Any) -> ToolResult:
        """The result of this call when the tool returned ``value``."""
        name = self.tool.name
        duration = time.perf_counter() - self.start
        if isinstance(value, ToolResult):
            return msgspec.structs.replace(
                value, name=name, tool_call_id=self.tool_call_id, duration=duration
            )
        return ToolResult(
            content=_render(value), duration=duration, name=name, tool_call_id=self.tool_call_id
        )

    def raised(self, exc: Exception) -> ToolResult:
        """The error result of this call when the tool raised ``exc``."""
        return _error(
            f"Error: tool {self.tool.name!r} raised {type(exc).__name__}: {exc}. Fix the "
            "arguments or try another approach.",
            self.start,
            self.tool.name,
            self.tool_call_id,
        )

    def timed_out(self, limit: float | None) -> ToolResult:
        """The error result of this call overrunning ``limit`` seconds."""
        return _error(
            f"Error: tool {self.tool.name!r} timed out after {limit} s. Try again with a "
            "smaller request, or answer without it.",
            self.start,
            self.tool.name,
            self.tool_call_id,
        )

    def cancelled(self) -> ToolResult:
        """The error result of this call cancelled before it finished."""
        return _error(
            f"Error: tool {self.tool.name!r} was cancelled before it finished.",
            self.start,
            self.tool.name,
            self.tool_call_id,
        )


class ToolRegistry:
    """The tools offered to a model, by name; validates and runs the model's calls.

    :param tools: tools, or plain functions (wrapped with :func:`tool`).
    :param timeout: seconds a call may take when its tool sets no timeout.
    :raises ConfigError: two tools share a name.
    """

    def __init__(
        self,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        *,
        timeout: float | None = DEFAULT_TOOL_TIMEOUT,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"registry timeout must be > 0 or None, got {timeout}")
        self.timeout = timeout
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool | Callable[..., Any]) -> Tool:
        """Register a tool (a plain function is wrapped with :func:`tool`).

        :raises ConfigError: a tool of that name is registered already.
        """
        t = t if isinstance(t, Tool) else Tool(t)
        if t.name in self._tools:
            raise ConfigError(f"two tools are named {t.name!r}: pass name= to one of them")
        self._tools[t.name] = t
        return t

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def specs(self) -> list[ToolSpec]:
        """The tools as the model is told about them."""
        return [t.spec for t in self._tools.values()]

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    async def execute(
        self,
        name: str,
        arguments: str | bytes,
        *,
        tool_call_id: str | None = None,
        timeout: float | None = None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> ToolResult:
        """Validate and run one call. Never raises for anything the model or the tool did:
        an unknown tool, arguments that are not JSON or do not match the schema, a tool that
        raises or overruns its timeout all give an error result saying what to fix.

        :param arguments: the JSON object text the model sent (empty means no arguments).
        :param timeout: overrides the registry's default (a tool's own timeout wins).
        :param limiter: the thread limiter for sync tools.
        """
        call = self.prepare(name, arguments, tool_call_id=tool_call_id)
        if isinstance(call, ToolResult):
            return call
        limit = self.limit_for(call.tool, timeout)
        # move_on, not fail_after: a tool raising TimeoutError itself is not a timeout.
        with anyio.move_on_after(limit):
            return await self.run_prepared(call, limiter=limiter)
        return call.timed_out(limit)

    def prepare(
        self, name: str, arguments: str | bytes, *, tool_call_id: str | None = None
    ) -> PreparedCall | ToolResult:
        """Look the tool up and validate the arguments: the call ready to run, or the error
        result telling the model what to fix."""
        start = time.perf_counter()
        t = self._tools.get(name)
        if t is None:
            available = ", ".join(sorted(self._tools)) or "none"
            return _error(
                f"Error: there is no tool named {name!r}. Available tools: {available}.",
                start,
                name,
                tool_call_id,
            )
        raw = arguments if isinstance(arguments, bytes) else arguments.encode()
        if not raw.strip():
            raw = b"{}"
        try:
            args = msgspec.json.decode(raw, type=t.arguments)
        except msgspec.ValidationError as exc:
            return _error(
                f"Error: invalid arguments for tool {name!r}: {exc}. Call it again with "
                f"arguments matching its schema: {_encoder.encode(t.spec.parameters).decode()}",
                start,
                name,
                tool_call_id,
            )
        except msgspec.DecodeError as exc:
            return _error(
                f"Error: the arguments for tool {name!r} are not valid JSON ({exc}). Send "
                'one JSON object with the arguments, e.g. {"name": value}.',
                start,
                name,
                tool_call_id,
            )
        return PreparedCall(t, args, tool_call_id, start)

    def limit_for(self, t: Tool, timeout: float | None = None) -> float | None:
        """The timeout of a call of ``t``: the tool's own, else ``timeout``, else the
        registry's."""
        if t.timeout is not None:
            return t.timeout
        return self.timeout if timeout is None else timeout

    async def run_prepared(
        self, call: PreparedCall, *, limiter: anyio.CapacityLimiter | None = None
    ) -> ToolResult:
        """Run a prepared call, with no timeout of its own (the caller's scope bounds it);
        whatever the tool raises becomes an error result."""
        try:
            value = await call.begin(limiter)
        except Exception as exc:
            return call.raised(exc)
        return call.returned(value)
