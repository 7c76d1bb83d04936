"""Tools: schemas from signatures and docstrings, validation, and every failure of a call
as an error result the model can act on."""

from __future__ import annotations

import enum
import threading
from typing import Literal

import anyio
import msgspec
import pytest

from limelight.errors import ConfigError
from limelight.schemas import Usage
from limelight.tools import Tool, ToolRegistry, ToolResult, tool


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(msgspec.Struct):
    x: int
    y: int


@tool
async def plot(
    point: Point,
    color: Color = Color.RED,
    style: Literal["dot", "cross"] = "dot",
    label: str | None = None,
    size: float = 1.0,
) -> dict[str, object]:
    """Plot a point.

    Draws one point on the canvas.

    :param point: where to draw it.
    :param color: its color.
    :param style: the marker.
    :param label: text next to it.
    """
    return {"x": point.x, "y": point.y, "color": color.value, "style": style, "label": label}


def google_style(query: str, limit: int = 5) -> list[str]:
    """Search the web.

    Args:
        query: what to look for.
        limit: how many results.
    """
    return [query] * limit


def numpy_style(query: str, limit: int = 5) -> list[str]:
    """Search the web.

    Parameters
    ----------
    query : str
        what to look for.
    limit : int
        how many results.
    """
    return [query] * limit


def test_schema_covers_types_defaults_optional_literal_enum_and_nested_structs() -> None:
    params = plot.spec.parameters
    assert params["type"] == "object"
    assert params["required"] == ["point"]
    assert params["additionalProperties"] is False
    props = params["properties"]
    assert props["point"]["$ref"] == "#/$defs/Point"
    assert params["$defs"]["Point"]["properties"] == {
        "x": {"type": "integer"},
        "y": {"type": "integer"},
    }
    assert params["$defs"]["Color"]["enum"] == ["blue", "red"]
    assert props["color"]["default"] == "red"
    assert props["style"] == {
        "enum": ["cross", "dot"],
        "default": "dot",
        "description": "the marker.",
    }
    assert {"type": "null"} in props["label"]["anyOf"]
    assert props["size"] == {"type": "number", "default": 1.0}
    assert props["point"]["description"] == "where to draw it."
    assert plot.spec.description == "Plot a point.\n\nDraws one point on the canvas."
    assert plot.name == "plot"


@pytest.mark.parametrize("fn", [google_style, numpy_style])
def test_argument_docs_from_google_and_numpy_docstrings(fn: object) -> None:
    t = tool(fn)  # type: ignore[arg-type]
    assert t.description == "Search the web."
    assert t.spec.parameters["properties"]["query"]["description"] == "what to look for."
    assert t.spec.parameters["properties"]["limit"]["description"] == "how many results."


def test_name_and_description_can_be_overridden_and_the_function_stays_callable() -> None:
    t = tool(name="web_search", description="Look things up.", timeout=3)(google_style)
    assert (t.name, t.spec.name, t.description, t.timeout) == (
        "web_search",
        "web_search",
        "Look things up.",
        3,
    )
    assert t("a", limit=2) == ["a", "a"]


class Opaque:
    pass


def bad_varargs(*items: int) -> None: ...


def bad_type(thing: Opaque) -> None: ...


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Tool(bad_varargs), r"\*items"),
        (lambda: Tool(bad_type), "msgspec cannot describe"),
        (lambda: Tool(google_style, name="has space"), "not valid"),
        (lambda: Tool(google_style, timeout=0), "timeout must be > 0"),
        (lambda: ToolRegistry([google_style, tool(name="google_style")(numpy_style)]), "two tools"),
    ],
)
def test_bad_tools_are_config_errors(make: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make()  # type: ignore[operator]


@pytest.mark.anyio
async def test_a_valid_call_returns_the_value_as_json() -> None:
    registry = ToolRegistry([plot])
    result = await registry.execute(
        "plot", '{"point": {"x": 1, "y": 2}, "color": "blue"}', tool_call_id="c1"
    )
    assert not result.is_error
    assert msgspec.json.decode(result.content) == {
        "x": 1,
        "y": 2,
        "color": "blue",
        "style": "dot",
        "label": None,
    }
    assert (result.name, result.tool_call_id) == ("plot", "c1")
    assert result.duration >= 0


@pytest.mark.anyio
async def test_sync_tools_run_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()

    @tool
    def where() -> int:
        return threading.get_ident()

    result = await ToolRegistry([where]).execute("where", "")
    assert not result.is_error
    assert int(result.content) != loop_thread


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("nope", "{}", "there is no tool named 'nope'. Available tools: google_style, plot"),
        ("plot", '{"point": ', "not valid JSON"),
        ("plot", '{"point": {"x": "one", "y": 2}}', "Expected `int`, got `str` - at `$.point.x`"),
        ("plot", "{}", "missing required field `point`"),
        ("plot", '{"point": {"x": 1, "y": 2}, "colour": "red"}', "unknown field `colour`"),
        ("plot", '{"point": {"x": 1, "y": 2}, "style": "star"}', "Invalid enum value 'star'"),
        ("plot", "[1, 2]", "Expected `object`, got `array`"),
    ],
)
async def test_model_mistakes_become_error_results_that_say_what_to_fix(
    name: str, arguments: str, expected: str
) -> None:
    result = await ToolRegistry([plot, google_style]).execute(name, arguments)
    assert result.is_error
    assert expected in result.content
    assert result.content.startswith("Error: ")


@pytest.mark.anyio
async def test_a_raising_tool_becomes_an_error_result() -> None:
    @tool
    async def explode(reason: str) -> str:
        raise ValueError(f"cannot: {reason}")

    @tool
    def explode_sync() -> str:
        raise TimeoutError("upstream API timed out")

    registry = ToolRegistry([explode, explode_sync])
    result = await registry.execute("explode", '{"reason": "why"}')
    assert result.is_error
    assert "raised ValueError: cannot: why" in result.content
    # A tool's own TimeoutError is its failure, not the registry's timeout.
    result = await registry.execute("explode_sync", "{}")
    assert result.is_error
    assert "raised TimeoutError: upstream API timed out" in result.content


@pytest.mark.anyio
async def test_a_tool_overrunning_its_timeout_becomes_an_error_result() -> None:
    release = threading.Event()

    @tool(timeout=0.05)
    async def hang() -> str:
        await anyio.sleep_forever()
        return "never"

    @tool
    def hang_sync() -> str:
        release.wait(10)
        return "late"

    registry = ToolRegistry([hang, hang_sync], timeout=30)
    result = await registry.execute("hang", "{}")
    assert result.is_error
    assert "timed out after 0.05 s" in result.content
    try:
        result = await registry.execute("hang_sync", "{}", timeout=0.05)
    finally:
        release.set()
    assert result.is_error
    assert "timed out after 0.05 s" in result.content


@pytest.mark.anyio
async def test_a_tool_returning_a_tool_result_passes_usage_through() -> None:
    @tool
    async def sub() -> ToolResult:
        return ToolResult(content="sub answer", usage=Usage.of(3, 4), cost=0.5)

    result = await ToolRegistry([sub]).execute("sub", "{}", tool_call_id="x")
    assert (result.content, result.usage, result.cost, result.tool_call_id) == (
        "sub answer",
        Usage.of(3, 4),
        0.5,
        "x",
    )


@pytest.mark.anyio
async def test_cancellation_of_the_caller_is_not_turned_into_a_result() -> None:
    started = anyio.Event()

    @tool
    async def slow() -> str:
        started.set()
        await anyio.sleep_forever()
        return "never"

    registry = ToolRegistry([slow])
    outcome: list[ToolResult] = []
    async with anyio.create_task_group() as tg:

        async def call() -> None:
            outcome.append(await registry.execute("slow", "{}"))

        tg.start_soon(call)
        await started.wait()
        tg.cancel_scope.cancel()
    assert outcome == []


def test_registry_lists_specs_in_order() -> None:
    registry = ToolRegistry([plot, google_style])
    assert [s.name for s in registry.specs()] == ["plot", "google_style"]
    assert "plot" in registry
    assert len(registry) == 2
    assert registry.get("google_style") is not None
