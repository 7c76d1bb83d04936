"""The error hierarchy: the tree drawn in limelight.errors' docstring is the real one, and every
error class is defined there (or in the kernel) whatever path it is imported from."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field

import pytest

import limelight.errors as errors
from limelight.errors import LimelightError

#: One line of the drawing: its tree prefix, the class name, the other bases in parentheses.
_LINE = re.compile(r"^(?P<prefix>[│ ]*(?:├── |└── ))(?P<name>\w+)(?: \((?P<extra>[\w, ]+)\))?")


@dataclass
class Node:
    name: str
    extra: list[str]
    prefix: str = ""
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)


def parse(doc: str) -> list[Node]:
    """The classes drawn in the ``::`` block of ``doc``, root first, each linked to its drawn
    parent (the nearest line above, one level up)."""
    lines = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    indent = len(lines[0]) - len(lines[0].lstrip())
    root = Node(lines[0].strip(), [])
    nodes, stack = [root], [root]  # stack[d]: the last node seen at depth d
    for line in lines[1:]:
        match = _LINE.match(line[indent:])
        assert match, f"not a class line of the tree: {line!r}"
        depth = len(match["prefix"]) // 4
        assert 1 <= depth <= len(stack), f"{line!r} skips a level"
        del stack[depth:]
        extra = [b.strip() for b in match["extra"].split(",")] if match["extra"] else []
        node = Node(match["name"], extra, match["prefix"], parent=stack[-1])
        stack[-1].children.append(node)
        stack.append(node)
        nodes.append(node)
    return nodes


def _is_last(node: Node) -> bool:
    return node.parent is None or node.parent.children[-1] is node


def expected_prefix(node: Node) -> str:
    """The connectors a well-drawn tree puts before ``node``."""
    prefix = "└── " if _is_last(node) else "├── "
    up = node.parent
    while up is not None and up.parent is not None:
        prefix = ("    " if _is_last(up) else "│   ") + prefix
        up = up.parent
    return prefix


def problems(doc: str) -> list[str]:
    """Where the drawing in ``doc`` differs from limelight's real error hierarchy."""
    found = []
    nodes = parse(doc)
    names = [node.name for node in nodes]
    if nodes[0].name != "LimelightError":
        found.append(f"the root is {nodes[0].name}")
    found += [f"{name} is drawn twice" for name in sorted(set(names)) if names.count(name) > 1]
    for node in nodes[1:]:
        if node.prefix != expected_prefix(node):
            found.append(f"{node.name}: connectors {node.prefix!r}, not {expected_prefix(node)!r}")
        cls = getattr(errors, node.name, None)
        if not (isinstance(cls, type) and issubclass(cls, LimelightError)):
            found.append(f"{node.name} is drawn but is no error of limelight.errors")
            continue
        ours = [base for base in cls.__bases__ if issubclass(base, LimelightError)]
        assert node.parent is not None
        if ours[0].__name__ != node.parent.name:
            found.append(f"{node.name} is drawn under {node.parent.name}, not {ours[0].__name__}")
        others = [base.__name__ for base in cls.__bases__ if base is not ours[0]]
        if node.extra != others:
            found.append(f"{node.name} is drawn with bases {node.extra}, not {others}")
    exported = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), BaseException)
    }
    found += [f"{name} is not drawn" for name in sorted(exported - set(names))]
    return found


def test_the_drawn_tree_is_the_real_hierarchy() -> None:
    assert problems(errors.__doc__ or "") == []


def test_a_wrong_drawing_is_reported() -> None:
    # The shape the drawing had once: LLMError drawn after ProviderError's subtree with a
    # connector that puts it under nothing, two last children, a missing class, a wrong base.
    doc = (
        "::\n\n"
        "    LimelightError\n"
        "    ├── ConfigError (ValueError)\n"
        "    └── ProviderError\n"
        "        └── APIError\n"
        "    ├── LLMError\n"
        "    │   └── LLMAPIError (BadResponse)\n"
        "    └── JSONOutputError (ValueError)\n"
        "    └── AnalyticsError\n"
    )
    found = "\n".join(problems(doc))
    assert "ProviderError: connectors '└── ', not '├── '" in found
    assert "JSONOutputError: connectors '└── ', not '├── '" in found
    assert "LLMAPIError is drawn with bases ['BadResponse'], not ['APIError']" in found
    assert "RateLimitTimeout is not drawn" in found


def test_a_class_under_the_wrong_parent_is_reported() -> None:
    doc = "::\n\n    LimelightError\n    └── ProviderError\n        └── LLMError\n"
    assert "LLMError is drawn under ProviderError, not LimelightError" in problems(doc)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("limelight.client", "LLMError"),
        ("limelight.client", "LLMConnectionError"),
        ("limelight.client", "LLMTimeout"),
        ("limelight.client", "LLMResponseError"),
        ("limelight.client", "LLMAPIError"),
        ("limelight.roles", "JSONOutputError"),
        ("limelight.actors", "RateLimitTimeout"),
        ("limelight.actors._ratelimit", "RateLimitTimeout"),
        ("limelight.actors._agent", "UsageLimitReached"),
        ("limelight.providers", "ScriptExhausted"),
        ("limelight.providers._scripted", "ScriptExhausted"),
        ("limelight.streaming", "StreamError"),
        ("limelight.runtime", "ActorCrashed"),
        ("limelight.runtime", "DeadlineExceeded"),
        ("limelight", "LimelightError"),
    ],
)
def test_old_import_paths_give_the_class_defined_in_errors(module: str, name: str) -> None:
    imported = getattr(importlib.import_module(module), name)
    assert imported is getattr(errors, name)
    assert imported.__module__ in {"limelight.errors", "limelight.runtime._errors"}
