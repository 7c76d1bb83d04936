"""The one timeout model of ``limelight._timeouts``: the deadline helpers, and the deprecated
names of the attempt timeout, which still work and say the new name."""

from __future__ import annotations

import math

import anyio
import pytest

from limelight import AgentConfig
from limelight._timeouts import deadline_after, time_left
from limelight.errors import ConfigError
from limelight.schemas import CompletionRequest


def test_a_request_s_timeout_is_its_deprecated_attempt_timeout() -> None:
    with pytest.warns(DeprecationWarning, match=r"use CompletionRequest\.attempt_timeout"):
        request = CompletionRequest(timeout=2.0)
    assert (request.attempt_timeout, request.timeout) == (2.0, None)
    assert request == CompletionRequest(attempt_timeout=2.0)


def test_an_agent_s_request_timeout_is_its_deprecated_attempt_timeout() -> None:
    with pytest.warns(DeprecationWarning, match=r"use AgentConfig\.attempt_timeout"):
        config = AgentConfig(request_timeout=5.0)
    assert (config.attempt_timeout, config.request_timeout) == (5.0, None)
    renamed = pytest.warns(DeprecationWarning, match="request_timeout")
    with renamed, pytest.raises(ConfigError, match="attempt_timeout"):
        AgentConfig(request_timeout=0.0)


def test_the_new_names_do_not_warn() -> None:
    assert CompletionRequest(attempt_timeout=1.0).attempt_timeout == 1.0
    assert AgentConfig(attempt_timeout=1.0).attempt_timeout == 1.0


@pytest.mark.anyio
async def test_deadline_after_and_time_left_round_trip() -> None:
    assert deadline_after(None) == math.inf
    assert time_left(math.inf) is None
    deadline = deadline_after(10.0)
    left = time_left(deadline)
    assert left is not None
    assert 9.0 < left <= 10.0
    assert time_left(anyio.current_time() - 1.0) == 0.0
