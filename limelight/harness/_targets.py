"""Opening a benchmark target: the simulator, an OpenAI-compatible server, or a model string.

The simulator runs as a ``limelight sim`` subprocess; a model string goes to the backend
resolver. :func:`provider_for` is the one place that maps a target to a provider."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio.to_thread
import msgspec

from ..errors import ConfigError
from ..providers._base import Provider
from ._config import SimTarget, Target
from ._metrics import Prices

__all__ = ["OpenTarget", "open_target", "prices_for", "provider_for", "sim_process"]

#: Seconds to wait for ``limelight sim`` to say where it listens.
SIM_START_TIMEOUT = 30.0
#: Output length the started simulator gives when a request names no ``max_tokens``; the
#: workload's ``max_tokens`` caps it, so the workload decides every answer's length.
_SIM_LONG_ANSWERS = "100000"


class OpenTarget(msgspec.Struct, kw_only=True):
    """A target ready to send to.

    :ivar provider: the provider requests go through.
    :ivar base_url: the HTTP endpoint, when there is one.
    :ivar description: what it is, for reports (never the API key).
    """

    provider: Any
    model: str
    base_url: str | None
    prices: Prices | None
    description: str
    api_key: str | None = None


def prices_for(target: Target) -> Prices | None:
    """The target's prices: given explicitly (on the target or its simulator), else the
    model's profile (LiteLLM's cost map); ``None`` when unknown."""
    sim = target.sim or SimTarget()
    inp = target.price_input if target.price_input is not None else sim.price_input
    out = target.price_output if target.price_output is not None else sim.price_output
    if inp is not None and out is not None:
        return Prices(input=inp, output=out)
    from .._models import get_model_profile

    profile = get_model_profile(target.model)
    if profile is None or profile.input_price is None or profile.output_price is None:
        return None
    return Prices(input=profile.input_price, output=profile.output_price)


def _sim_command(sim: SimTarget, model: str) -> list[str]:
    command = [sys.executable, "-m", "limelight", "sim", "--port", "0", "--model", model]
    command += ["--ttft", str(sim.ttft), "--ttft-jitter", str(sim.ttft_jitter)]
    command += ["--tps", str(sim.tokens_per_second or 0), "--seed", str(sim.seed)]
    command += ["--output-tokens", sim.output_tokens]
    command += ["--tool-call-probability", str(sim.tool_call_probability)]
    command += ["--server-error-rate", str(sim.server_error_rate)]
    return command


@contextlib.contextmanager
def sim_process(command: list[str]) -> Iterator[str]:
    """Start ``limelight sim`` (``command``) as a subprocess and yield its base URL; stop
    it on exit.

    :raises ConfigError: it exited or did not say where it listens in time.
    """
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"(http://\S+/v1)", line)
        if match is None:
            process.kill()
            _, err = process.communicate(timeout=SIM_START_TIMEOUT)
            raise ConfigError(f"the simulator did not start: {line.strip()} {err.strip()}")
        yield match.group(1)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def provider_for(target: Target, base_url: str | None = None) -> Provider:
    """The provider for ``target`` (``base_url`` overrides the target's: the started
    simulator's). Model strings without a URL go to the backend resolver
    (:func:`limelight.providers._resolve.resolve`: LiteLLM, ``mlx:``, ``hf:``, ``sim:``...).

    :raises ConfigError: the target cannot be served (no resolver for a model string, no
        API key in the named variable).
    """
    url = base_url or target.base_url
    api_key = None
    if target.api_key_env:
        api_key = os.environ.get(target.api_key_env)
        if not api_key:
            raise ConfigError(
                f"the API key variable {target.api_key_env} is not set: export it, or leave "
                "--api-key-env out for a server without keys"
            )
    if url is not None:
        if target.options:
            raise ConfigError(
                f"backend options ({', '.join(sorted(target.options))}) are for model strings "
                "the resolver serves; an OpenAI-compatible --base-url target takes none"
            )
        from ..providers import OpenAICompatible

        return OpenAICompatible(url, api_key=api_key, model=target.model)
    from ..providers._resolve import resolve

    return resolve(target.model, api_key=api_key, **target.options).provider


@contextlib.asynccontextmanager
async def open_target(target: Target) -> AsyncIterator[OpenTarget]:
    """Open ``target`` for a run: start the simulator subprocess if it is one, build the
    provider, close both afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        base_url = target.base_url
        description = base_url or target.model
        if target.simulated:
            sim = target.sim or SimTarget()
            if sim.output_tokens == SimTarget().output_tokens:
                sim = msgspec.structs.replace(sim, output_tokens=_SIM_LONG_ANSWERS)
            manager = sim_process(_sim_command(sim, target.model))
            base_url = await anyio.to_thread.run_sync(manager.__enter__)
            stack.push_async_callback(
                anyio.to_thread.run_sync, lambda: manager.__exit__(None, None, None)
            )
            description = (
                f"limelight sim (subprocess, ttft {sim.ttft} s, {sim.tokens_per_second} tok/s)"
            )
        provider = provider_for(target, base_url)
        stack.push_async_callback(provider.aclose)
        yield OpenTarget(
            provider=provider,
            model=target.model,
            base_url=base_url,
            prices=prices_for(target),
            description=description,
            api_key=os.environ.get(target.api_key_env) if target.api_key_env else None,
        )
