"""``limelight demo``: an agent tree at work, no API key needed.

Three teams run at once. Each team is a coordinator agent with tools and two sub-agents
(a researcher and a writer, given to it with ``child.as_tool``) that run as its supervised
children. By default the model is the built-in simulator (in-process, or over HTTP with
``--http``): its answers are random words, and its tool calls are random choices of the
offered tools with arguments valid for their schemas, after realistic latencies. The tools
are scripted (they sleep, then answer canned text). ``--model`` / ``--base-url`` point the
same tree at a real provider. The run is recorded by ``limelight.analytics`` into a local
SQLite store, summarised at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import anyio
import msgspec

from .errors import LimelightError

__all__ = ["DemoOptions", "add_arguments", "run_demo", "run_from_args"]

_TASKS = (
    "Plan a three-day trip to Lisbon on a small budget.",
    "Compare three Python HTTP clients for a high-load service.",
    "Write a short briefing on supervision trees in Erlang.",
)
_REFRESH = 0.2
#: The simulated model is priced as gpt-4o-mini is (USD per 1M input / output tokens), so
#: the demo shows cost accounting; the price is illustrative, the model is not real.
_SIM_PRICES = (0.15, 0.60)


class DemoOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What ``limelight demo`` runs against (the simulator unless ``model``/``base_url``)."""

    backend: str = "asyncio"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    http: bool = False
    db: str | None = None
    seed: int = 4
    tool_latency: float = 0.05


class _Team(msgspec.Struct, kw_only=True):
    """What the live display shows of one team."""

    name: str
    task: str
    state: str = "waiting"
    tokens: int = 0
    tool_calls: list[str] = []
    status: str = ""
    turns: int = 0
    total_tokens: int = 0
    cost: float | None = None


def _sim_config(seed: int) -> Any:
    from .providers import SimulatedConfig, UniformLength

    return SimulatedConfig(
        ttft=0.08,
        ttft_jitter=0.03,
        tokens_per_second=250.0,
        output_tokens=UniformLength(low=12, high=40),
        tool_call_probability=0.6,
        seed=seed,
    )


def _tools(latency: float) -> dict[str, Any]:
    from .tools import tool

    @tool
    async def web_search(query: str) -> str:
        """Search the web (scripted: canned results after a delay).

        :param query: what to search for.
        """
        await anyio.sleep(latency * 2)
        return f"3 results for {query[:40]!r}: limelight.dev, docs.python.org, erlang.org"

    @tool
    async def fetch_page(url: str) -> str:
        """Fetch a web page (scripted).

        :param url: the page's address.
        """
        await anyio.sleep(latency * 3)
        return f"<html><title>{url[:40]}</title>A page about actors and supervision.</html>"

    @tool
    def word_count(text: str) -> int:
        """Count the words of a text (a real, synchronous tool: it runs in a worker thread).

        :param text: the text.
        """
        return len(text.split())

    @tool
    async def calendar(day: str) -> str:
        """Look at the calendar (scripted).

        :param day: the day to look at.
        """
        await anyio.sleep(latency)
        return f"{day[:20]}: free after 14:00"

    return {t.name: t for t in (web_search, fetch_page, word_count, calendar)}


def _team(name: str, model: Any, tools: dict[str, Any], runtime: Any) -> Any:
    from .agents import Agent, AgentConfig

    researcher = Agent(
        model=model,
        tools=[tools["web_search"], tools["fetch_page"]],
        system="You research a topic with the tools, then report what you found.",
        config=AgentConfig(max_turns=4, max_tokens=64),
        name="researcher",
    )
    writer = Agent(
        model=model,
        tools=[tools["word_count"]],
        system="You write short, clear text.",
        config=AgentConfig(max_turns=3, max_tokens=64),
        name="writer",
    )
    return Agent(
        model=model,
        tools=[
            tools["calendar"],
            researcher.as_tool(description="Research a topic and report the findings."),
            writer.as_tool(description="Write a short text from notes."),
        ],
        system="You coordinate a small team: delegate research and writing, then answer.",
        config=AgentConfig(max_turns=6, max_tokens=64, deadline=60.0),
        name=name,
        runtime=runtime,
    )


def _render(teams: list[_Team], tree: str, note: str) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title="teams (coordinator agents)", expand=False)
    for column in ("team", "state", "tokens", "tool calls", "task"):
        table.add_column(column)
    for team in teams:
        calls = ", ".join(team.tool_calls[-4:])
        if len(team.tool_calls) > 4:
            calls = f"... {calls}"
        table.add_row(team.name, team.state, str(team.tokens), calls or "-", team.task[:38])
    return Group(Text(note, style="dim"), table, Text("actor tree:", style="bold"), Text(tree))


async def _run_team(agent: Any, team: _Team) -> None:
    from .schemas import StreamEventType

    team.state = "thinking"
    async with agent.stream(team.task) as events:
        async for event in events:
            if event.type is StreamEventType.TOKEN:
                team.tokens += 1
                team.state = "writing"
            elif event.type is StreamEventType.TOOL_CALL and event.tool_call is not None:
                team.tool_calls.append(event.tool_call.name)
                team.state = f"calling {event.tool_call.name}"
            elif event.type is StreamEventType.TOOL_RESULT:
                team.state = "thinking"
            elif event.type is StreamEventType.ERROR:
                team.state = f"error: {event.error}"
        result = events.result
    if result is not None:
        team.status = result.status
        team.turns = result.num_turns
        team.total_tokens = result.usage.total_tokens
        team.cost = result.cost
        team.state = f"done ({result.status})"


async def _main(options: DemoOptions, model: Any, note: str, out: IO[str]) -> list[_Team]:
    from rich.console import Console
    from rich.live import Live

    from .runtime import Runtime

    console = Console(file=out, width=120, highlight=False)
    teams = [_Team(name=f"team-{i + 1}", task=task) for i, task in enumerate(_TASKS)]
    tools = _tools(options.tool_latency)
    async with Runtime() as rt:
        agents = [_team(team.name, model, tools, rt) for team in teams]
        for agent in agents:
            await rt.spawn(agent, name=agent.name)
        with Live(
            _render(teams, rt.tree().render(), note),
            console=console,
            auto_refresh=False,
            transient=not console.is_terminal,
        ) as live:
            async with anyio.create_task_group() as tg:

                async def refresh() -> None:
                    while True:
                        await anyio.sleep(_REFRESH)
                        live.update(_render(teams, rt.tree().render(), note), refresh=True)

                tg.start_soon(refresh)
                async with anyio.create_task_group() as work:
                    for agent, team in zip(agents, teams, strict=True):
                        work.start_soon(_run_team, agent, team)
                tg.cancel_scope.cancel()
        console.print(_render(teams, rt.tree().render(), note))
        stats = rt.statistics()
        console.print(
            f"\n{len(teams)} teams done: {stats.actors} actors, {stats.processed} messages "
            f"handled, {stats.restarts} restarts, {stats.dead_letters} dead letters."
        )
    for team in teams:
        cost = "" if team.cost is None else f", ${team.cost:.6f}"
        calls = ", ".join(team.tool_calls) or "no tool calls"
        console.print(
            f"  {team.name}: {team.status} after {team.turns} turns, {team.total_tokens} tokens"
            f"{cost}; called {calls}"
        )
    return teams


def _model(options: DemoOptions) -> tuple[Any, str, Any]:
    """The model the agents use, a note saying what it is, and an optional context manager
    serving the simulator over HTTP."""
    if options.model is None and options.base_url is None:
        from .models import ModelProfile, register_model
        from .providers import Simulated

        register_model(
            ModelProfile(
                name="sim-1",
                context_window=128_000,
                input_price=_SIM_PRICES[0],
                output_price=_SIM_PRICES[1],
                capabilities=frozenset({"tools", "streaming"}),
            )
        )
        config = _sim_config(options.seed)
        if options.http:
            from .providers import OpenAICompatible, serve_in_thread

            server = serve_in_thread(config)
            url = server.__enter__()
            note = (
                f"Model: the limelight simulator over HTTP at {url} (simulated: random words, "
                "random tool calls with schema-valid arguments, priced as gpt-4o-mini for "
                "illustration). Tools: scripted delays."
            )
            return OpenAICompatible(url, model="sim-1"), note, server
        note = (
            "Model: the limelight simulator, in-process (simulated: random words, random tool "
            "calls with schema-valid arguments, realistic latency, priced as gpt-4o-mini for "
            "illustration). Tools: scripted delays."
        )
        return Simulated(config), note, None
    from .harness._config import Target
    from .harness._targets import provider_for

    api_key_env = options.api_key_env if os.environ.get(options.api_key_env) else None
    target = Target(model=options.model or "", base_url=options.base_url, api_key_env=api_key_env)
    provider = provider_for(target)
    where = options.base_url or "the backend resolver"
    return (
        provider,
        f"Model: {options.model} via {where}: its own answers. Tools: scripted delays.",
        None,
    )


def run_demo(*, backend: str = "asyncio", options: DemoOptions | None = None) -> int:
    """Run the demo; returns the exit status."""
    import structlog

    from . import analytics
    from ._events_cli import print_summary, summarize
    from .sinks import SQLiteSink

    options = options or DemoOptions(backend=backend)
    # Warnings go to stderr, so the demo's own output stays readable.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="limelight-demo-") as tmp:
        db = Path(options.db) if options.db else Path(tmp) / "events.db"
        try:
            model, note, server = _model(options)
        except LimelightError as exc:
            print(f"limelight demo: {exc}", file=sys.stderr)
            return 2
        analytics.initialize(sinks=[SQLiteSink(db)])
        try:
            anyio.run(_main, options, model, note, out, backend=options.backend)
        finally:
            analytics.shutdown()
            if server is not None:
                server.__exit__(None, None, None)
        print(file=out)
        print_summary(summarize(db), file=out)
        if options.db:
            print(f"\nThe events stay in {db}: `limelight events --db {db}` shows them.", file=out)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``limelight demo`` options to ``parser``."""
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument(
        "--http", action="store_true", help="serve the simulator over HTTP (in a thread)"
    )
    parser.add_argument(
        "--model",
        help="a real model instead of the simulator: a name for --base-url, or a model string "
        "for the backend resolver (gpt-4o-mini, mlx:PATH, ...)",
    )
    parser.add_argument("--base-url", help="an OpenAI-compatible API root")
    parser.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the API key (%(default)s)",
    )
    parser.add_argument(
        "--db", help="the analytics SQLite file to record into (default: a temporary one)"
    )
    parser.add_argument("--seed", type=int, default=4, help="the simulator's seed (%(default)s)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``limelight demo`` with the parsed options."""
    if args.base_url and not args.model:
        print("limelight demo: --base-url needs --model (the model to ask for)", file=sys.stderr)
        return 2
    return run_demo(
        options=DemoOptions(
            backend=args.backend,
            model=args.model,
            base_url=args.base_url,
            api_key_env=args.api_key_env,
            http=args.http,
            db=args.db,
            seed=args.seed,
        )
    )
