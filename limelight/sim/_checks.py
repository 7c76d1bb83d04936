"""Request validation: what OpenAI refuses with a 400, and the simulator's own caps.

The caps cover schemas, tools, messages and embeddings; each failure is said as OpenAI's
error body."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from ..schemas import (
    CompletionRequest,
    EmbeddingRequest,
)
from ..schemas._openai import error_body
from ._config import (
    MAX_ARGUMENTS_LENGTH,
    MAX_EMBEDDING_DIMENSIONS,
    MAX_EMBEDDING_INPUTS,
    MAX_EMBEDDING_VALUES,
    MAX_MESSAGE_TOOL_CALLS,
    MAX_MESSAGES,
    MAX_OUTPUT_TOKENS,
    MAX_SCHEMA_ARRAY_ITEMS,
    MAX_SCHEMA_DEPTH,
    MAX_SCHEMA_NODES,
    MAX_SCHEMA_STRING_LENGTH,
    MAX_TOOLS,
)
from ._generate import is_number, size_bound

_shown_encoder = msgspec.json.Encoder()

_JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
# Keywords whose value is a schema; a list of schemas; an object of schemas.
_SCHEMA_KEYWORDS = frozenset(
    {
        "additionalItems", "additionalProperties", "contains", "else", "if", "items", "not",
        "propertyNames", "then", "unevaluatedItems", "unevaluatedProperties",
    }
)  # fmt: skip
_SCHEMA_LIST_KEYWORDS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAP_KEYWORDS = frozenset(
    {"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"}
)
_COUNT_KEYWORDS = frozenset(
    {
        "maxContains", "maxItems", "maxLength", "maxProperties", "minContains", "minItems",
        "minLength", "minProperties",
    }
)  # fmt: skip
_NUMBER_KEYWORDS = frozenset({"maximum", "minimum", "multipleOf"})
_EXCLUSIVE_KEYWORDS = frozenset({"exclusiveMaximum", "exclusiveMinimum"})
_STRING_KEYWORDS = frozenset(
    {"$anchor", "$comment", "$id", "$ref", "$schema", "description", "format", "pattern", "title"}
)
_BOOLEAN_KEYWORDS = frozenset({"deprecated", "nullable", "readOnly", "uniqueItems", "writeOnly"})
_CAPPED_COUNTS = {
    "minLength": (MAX_SCHEMA_STRING_LENGTH, "MAX_SCHEMA_STRING_LENGTH"),
    "minItems": (MAX_SCHEMA_ARRAY_ITEMS, "MAX_SCHEMA_ARRAY_ITEMS"),
}
_TOOL_CHOICES = ("none", "auto", "required")
_RESPONSE_FORMATS = ("text", "json_object", "json_schema")


class _SchemaError(Exception):
    """What is wrong in a schema, and where (the keys leading to it, as OpenAI says it)."""

    def __init__(self, context: tuple[str, ...], problem: str) -> None:
        super().__init__(problem)
        self.context = context
        self.problem = problem


def _json_kind(value: object) -> str:
    """``value``'s JSON type, with its article, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _shown(value: object) -> str:
    """``value`` as JSON, cut short for a message."""
    text = _shown_encoder.encode(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _check_json(value: object, budget: int) -> int:
    """Walk ``value`` (iteratively: any depth is safe) and count its JSON values.

    :raises _SchemaError: ``value`` is not plain JSON (only dicts with string keys, lists,
        strings, finite numbers, booleans and ``None``), is nested deeper than
        :data:`MAX_SCHEMA_DEPTH` or holds more than ``budget`` values.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > budget:
            raise _SchemaError(
                (),
                f"the schemas of this request hold more than {MAX_SCHEMA_NODES} JSON values, "
                "the simulator's cap (MAX_SCHEMA_NODES)",
            )
        children: Any = ()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise _SchemaError((), "object keys must be strings")
            children = item.values()
        elif isinstance(item, list):
            children = item
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _SchemaError((), f"{item} is not a JSON number")
        elif not (item is None or isinstance(item, str | int)):
            raise _SchemaError((), f"it holds {_json_kind(item)}, which is not JSON")
        if children and depth >= MAX_SCHEMA_DEPTH:
            raise _SchemaError(
                (),
                f"it is nested deeper than {MAX_SCHEMA_DEPTH} levels, the simulator's cap "
                "(MAX_SCHEMA_DEPTH)",
            )
        stack.extend((child, depth + 1) for child in children)
    return count


def _check_keyword(key: str, value: object, context: tuple[str, ...]) -> None:
    """Check one keyword of a schema; recurse into the schemas it holds."""
    if key == "type":
        names = value if isinstance(value, list) and value else [value]
        if not all(isinstance(n, str) and n in _JSON_TYPES for n in names):
            allowed = ", ".join(f"'{t}'" for t in _JSON_TYPES)
            raise _SchemaError(
                context,
                f"'type' must be one of {allowed}, or an array of them, got {_shown(value)}",
            )
    elif key in _SCHEMA_KEYWORDS:
        if key == "items" and isinstance(value, list):  # drafts 4-7: one schema per position
            for i, sub in enumerate(value):
                _check_schema(sub, (*context, key, str(i)))
        else:
            _check_schema(value, (*context, key))
    elif key in _SCHEMA_LIST_KEYWORDS:
        if not isinstance(value, list) or not value:
            raise _SchemaError(
                context, f"'{key}' must be a non-empty array of schemas, got {_shown(value)}"
            )
        for i, sub in enumerate(value):
            _check_schema(sub, (*context, key, str(i)))
    elif key in _SCHEMA_MAP_KEYWORDS:
        if not isinstance(value, dict):
            raise _SchemaError(
                context, f"'{key}' must be an object of schemas, got {_json_kind(value)}"
            )
        for name, sub in value.items():
            _check_schema(sub, (*context, key, name))
    elif key == "required":
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            raise _SchemaError(
                context, f"'required' must be an array of strings, got {_shown(value)}"
            )
    elif key == "enum":
        if not isinstance(value, list):
            raise _SchemaError(context, f"'enum' must be an array, got {_shown(value)}")
    elif key in _COUNT_KEYWORDS:
        if not (is_number(value) and value >= 0 and value == int(value)):
            raise _SchemaError(
                context, f"'{key}' must be a non-negative integer, got {_shown(value)}"
            )
        cap = _CAPPED_COUNTS.get(key)
        if cap is not None and value > cap[0]:
            raise _SchemaError(
                context,
                f"'{key}' is {_shown(value)}, above the simulator's cap of {cap[0]} ({cap[1]})",
            )
    elif key in _NUMBER_KEYWORDS or key in _EXCLUSIVE_KEYWORDS:
        if isinstance(value, bool) and key in _EXCLUSIVE_KEYWORDS:
            return  # draft 4: a flag on minimum / maximum
        if not is_number(value):
            raise _SchemaError(context, f"'{key}' must be a number, got {_shown(value)}")
        try:
            as_float = float(value)
        except OverflowError:
            as_float = math.inf
        if not math.isfinite(as_float):
            raise _SchemaError(context, f"'{key}' is out of range, got {_shown(value)}")
        if key == "multipleOf" and not as_float > 0:
            raise _SchemaError(context, f"'multipleOf' must be above 0, got {_shown(value)}")
    elif key in _STRING_KEYWORDS:
        if not isinstance(value, str):
            raise _SchemaError(context, f"'{key}' must be a string, got {_shown(value)}")
    elif key in _BOOLEAN_KEYWORDS and not isinstance(value, bool):
        raise _SchemaError(context, f"'{key}' must be a boolean, got {_shown(value)}")


def _check_schema(schema: object, context: tuple[str, ...]) -> None:
    """Check that ``schema`` is a JSON schema whose keywords have the types JSON Schema gives
    them, within the simulator's caps. Unknown keywords pass, as JSON Schema says."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise _SchemaError(
            context, f"a schema must be an object or a boolean, got {_json_kind(schema)}"
        )
    for key, value in schema.items():
        _check_keyword(key, value, context)


def _invalid(message: str, param: str | None, code: str | None = None) -> dict[str, Any]:
    return error_body(message, type="invalid_request_error", param=param, code=code)


def too_long(param: str, length: int, limit: int, cap: str) -> dict[str, Any]:
    return _invalid(
        f"Invalid '{param}': array too long. Expected an array with maximum length {limit} "
        f"(the simulator's cap, {cap}), but got an array with length {length} instead.",
        param,
        "array_above_max_length",
    )


def _out_of_range(
    param: str, value: float, low: float, high: float, cap: str | None = None
) -> dict[str, Any] | None:
    """OpenAI's 400 for a number outside ``[low, high]``; ``None`` when it is within.
    ``cap``: the name of the simulator's constant that ``high`` is, to name in the message."""
    if low <= value <= high:
        return None
    kind = "integer" if isinstance(value, int) else "decimal"
    if value < low:
        side, expected = "below minimum", f">= {low}"
    else:
        side, expected = "above maximum", f"<= {high}"
        if cap is not None:
            expected += f" (the simulator's cap, {cap})"
    return _invalid(
        f"Invalid '{param}': {kind} {side} value. Expected a value {expected}, but got "
        f"{value} instead.",
        param,
        f"{kind}_{side.replace('imum', '')}_value".replace(" ", "_"),
    )


def _schema_problem(
    schema: object, budget: int, *, arguments: bool
) -> tuple[int, tuple[str, ...], str | None]:
    """Check one schema: (JSON values used, where the problem is, the problem or ``None``).
    ``arguments``: values are generated for it, so their size is capped too."""
    try:
        used = _check_json(schema, budget)
        _check_schema(schema, ())
    except _SchemaError as exc:
        return budget, exc.context, exc.problem
    if arguments:
        size = size_bound(schema, MAX_ARGUMENTS_LENGTH)
        if size > MAX_ARGUMENTS_LENGTH:
            return (
                used,
                (),
                f"arguments valid against it can take more than {MAX_ARGUMENTS_LENGTH} "
                "bytes of JSON, the simulator's cap (MAX_ARGUMENTS_LENGTH): lower its "
                "minLength and minItems",
            )
    return used, (), None


def _check_tools(request: CompletionRequest) -> dict[str, Any] | None:
    if len(request.tools) > MAX_TOOLS:
        return too_long("tools", len(request.tools), MAX_TOOLS, "MAX_TOOLS")
    choice = request.tool_choice
    if isinstance(choice, str) and choice not in _TOOL_CHOICES:
        return _invalid(
            f"Invalid value: {_shown(choice)}. Supported values are: 'none', 'auto', and "
            "'required'.",
            "tool_choice",
            "invalid_value",
        )
    budget = MAX_SCHEMA_NODES
    for i, tool in enumerate(request.tools):
        used, context, problem = _schema_problem(tool.parameters, budget, arguments=True)
        if problem is not None:
            return _invalid(
                f"Invalid schema for function '{tool.name}': In context={context!r}, {problem}.",
                f"tools[{i}].function.parameters",
                "invalid_function_parameters",
            )
        budget -= used
    response_format = request.response_format
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind not in _RESPONSE_FORMATS:
        return _invalid(
            f"Invalid value: {_shown(kind)}. Supported values are: 'json_object', "
            "'json_schema', and 'text'.",
            "response_format.type",
            "invalid_value",
        )
    if kind != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        return _invalid(
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
            "missing_required_parameter",
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        return _invalid(
            "Missing required parameter: 'response_format.json_schema.name'.",
            "response_format.json_schema.name",
            "missing_required_parameter",
        )
    if "schema" in spec:
        _, context, problem = _schema_problem(spec["schema"], budget, arguments=False)
        if problem is not None:
            return _invalid(
                f"Invalid schema for response_format '{name}': In context={context!r}, {problem}.",
                "response_format.json_schema.schema",
                "invalid_json_schema",
            )
    return None


def check_request(
    request: CompletionRequest | EmbeddingRequest, *, embedding_dimensions: int
) -> dict[str, Any] | None:
    """OpenAI's 400 body for what is wrong in ``request`` (values out of range, tool or
    ``response_format`` schemas with keywords of the wrong type) or above one of the
    simulator's caps; ``None`` for a request it can answer.

    :param embedding_dimensions: the vectors' length when the request names none.
    """
    if isinstance(request, EmbeddingRequest):
        if not request.input:
            return _invalid("'input' must not be empty.", "input")
        if len(request.input) > MAX_EMBEDDING_INPUTS:
            return too_long(
                "input", len(request.input), MAX_EMBEDDING_INPUTS, "MAX_EMBEDDING_INPUTS"
            )
        if request.dimensions is not None:
            bad = _out_of_range(
                "dimensions",
                request.dimensions,
                1,
                MAX_EMBEDDING_DIMENSIONS,
                "MAX_EMBEDDING_DIMENSIONS",
            )
            if bad is not None:
                return bad
        dimensions = request.dimensions or embedding_dimensions
        values = len(request.input) * dimensions
        if values > MAX_EMBEDDING_VALUES:
            return _invalid(
                f"This request asks for {len(request.input)} embeddings of {dimensions} "
                f"dimensions, {values} numbers: above the simulator's cap of "
                f"{MAX_EMBEDDING_VALUES} per request (MAX_EMBEDDING_VALUES). Send fewer inputs "
                "or ask for fewer dimensions.",
                "input",
            )
        return None
    if not request.messages and request.prompt is None:
        return _invalid(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if len(request.messages) > MAX_MESSAGES:
        return too_long("messages", len(request.messages), MAX_MESSAGES, "MAX_MESSAGES")
    calls = sum(len(message.tool_calls) for message in request.messages)
    if calls > MAX_MESSAGE_TOOL_CALLS:
        return _invalid(
            f"The messages of this request hold {calls} tool calls: above the simulator's cap "
            f"of {MAX_MESSAGE_TOOL_CALLS} (MAX_MESSAGE_TOOL_CALLS).",
            "messages",
        )
    if request.max_tokens is not None:
        if request.max_tokens < 1:
            return _out_of_range("max_tokens", request.max_tokens, 1, MAX_OUTPUT_TOKENS)
        if request.max_tokens > MAX_OUTPUT_TOKENS:
            return _invalid(
                f"max_tokens is too large: {request.max_tokens}. The simulator supports at most "
                f"{MAX_OUTPUT_TOKENS} completion tokens (MAX_OUTPUT_TOKENS), whereas you "
                f"provided {request.max_tokens}.",
                "max_tokens",
                "invalid_value",
            )
    for param, value, high in (
        ("temperature", request.temperature, 2.0),
        ("top_p", request.top_p, 1.0),
    ):
        if value is not None:
            bad = _out_of_range(param, value, 0.0, high)
            if bad is not None:
                return bad
    return _check_tools(request)
