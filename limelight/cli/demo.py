"""``limelight demo``: an agent tree at work, no API key needed.

Three teams run at once. Each team is a coordinator agent with tools and two sub-agents
(a researcher and a writer, given to it with ``child.as_tool``) that run as its supervised
children. By default the model is the built-in simulator (in-process, or over HTTP with
``--http``): its answers are random words, and its tool calls are random choices of the
offered tools with arguments valid for their schemas, after realistic latencies. The tools
are scripted (they sleep, then answer canned text). ``--model`` / ``--base-url`` point the
same tree at a real provider. The run is recorded by ``limelight.analytics`` into a local
SQLite store, summarised at the end; the store is kept.

One module: the tree, its live display and the checks of what it runs against are this one
command's, read together.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import anyio
import msgspec

from ..errors import ConfigError, LimelightError
from ._checks import check_backend, check_writable

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from ..analytics import AnalyticsConfig
    from ..runtime import ActorSnapshot

__all__ = ["DemoOptions", "add_arguments", "run", "run_demo"]

_TASKS = (
    "Plan a three-day trip to Lisbon on a small budget.",
    "Compare three Python HTTP clients for a high-load service.",
    "Write a short briefing on supervision trees in Erlang.",
)
_REFRESH = 0.2
#: The simulated model is priced as gpt-4o-mini is (USD per 1M input / output tokens), so
#: the demo shows cost accounting; the price is illustrative, the model is not real.
_SIM_PRICES = (0.15, 0.60)
#: The model names that mean the built-in simulator without ``--base-url``, as in
#: ``limelight bench``.
_SIM_MODELS: Final = ("sim", "sim-1")
#: Where the key of a ``--base-url`` server is read unless ``--api-key-env`` names another.
_DEFAULT_API_KEY_ENV: Final = "OPENAI_API_KEY"
#: How a team's run may end without the demo counting it as failed.
_SUCCEEDED: Final = ("completed", "max_turns")


class DemoOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What ``limelight demo`` runs against: the simulator unless ``base_url`` is given or
    ``model`` names another model than ``sim`` or ``sim-1``.

    :ivar api_key_env: the variable holding the API key; it must be set when given. With
        ``base_url`` and no ``api_key_env``, ``$OPENAI_API_KEY`` must be set.
    :ivar db: the events database to record into; default: a new file in a new temporary
        directory, kept after the run.
    """

    backend: str = "asyncio"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    http: bool = False
    db: str | None = None
    seed: int = 4
    tool_latency: float = 0.05

    @property
    def simulated(self) -> bool:
        """Whether the agents talk to the built-in simulator."""
        return self.base_url is None and (self.model is None or self.model in _SIM_MODELS)


class _Team(msgspec.Struct, kw_only=True):
    """What the live display shows of one team."""

    name: str
    task: str
    state: str = "waiting"
    tokens: int = 0
    tool_calls: list[str] = []
    status: str = ""
    error: str | None = None
    turns: int = 0
    total_tokens: int = 0
    cost: float | None = None


def _sim_config(seed: int) -> Any:
    from ..providers import SimulatedConfig, UniformLength

    return SimulatedConfig(
        ttft=0.08,
        ttft_jitter=0.03,
        tokens_per_second=250.0,
        output_tokens=UniformLength(low=12, high=40),
        tool_call_probability=0.6,
        seed=seed,
    )


def _tools(latency: float) -> dict[str, Any]:
    from ..tools import tool

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
    from ..agents import Agent, AgentConfig

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


# -- the display -----------------------------------------------------------------------------


def _fit_tree(tree: ActorSnapshot, rows: int) -> list[str]:
    """The lines of ``tree`` (as :meth:`ActorSnapshot.render` draws them) in at most ``rows``
    lines: deeper levels folded into their parent's line (``+N below``) until it fits, cut
    short as a last resort."""
    lines = tree.render().splitlines()
    if len(lines) <= rows:
        return lines
    # Depth and descendant count of each line's actor, in render order (depth first).
    shape: list[tuple[int, int]] = []

    def visit(node: ActorSnapshot, depth: int) -> int:
        index = len(shape)
        shape.append((depth, 0))
        below = sum(1 + visit(child, depth + 1) for child in node.children)
        shape[index] = (depth, below)
        return below

    visit(tree, 0)
    kept = lines
    for depth in range(max(d for d, _ in shape) - 1, 0, -1):
        kept = [
            line + (f"  (+{below} below)" if d == depth and below else "")
            for line, (d, below) in zip(lines, shape, strict=True)
            if d <= depth
        ]
        if len(kept) <= rows:
            return kept
    if rows < 1:
        return []
    return [
        *kept[: rows - 1],
        f"... {len(kept) - rows + 1} more (the whole tree follows at the end)",
    ]


def _render(
    teams: list[_Team], tree: ActorSnapshot, note: str, console: Console, *, live: bool
) -> RenderableType:
    """The teams table and the actor tree. ``live``: one frame of the live display, fitted
    to the terminal (its lines cut at its width, the tree folded to its height), so that
    redrawing it never scrolls; else the whole tree, for the scrollback."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    # Cells stay on one line, cut to fit the console's width: the team and its token count
    # whole, the state up to 28 columns, the tool calls (up to 40) and the task the rest.
    # (rich, left to shrink a table itself, takes as much from the short columns as from
    # the long ones.)
    fixed = len("team-1") + len("tokens") + 16  # 16: the borders and padding of 5 columns
    free = console.width - fixed
    state_width = max(12, min(28, free // 3))
    calls_width = max(8, min(40, (free - state_width) // 2))
    task_width = max(8, min(max(map(len, _TASKS)), free - state_width - calls_width))
    table = Table(title="teams (coordinator agents)")
    table.add_column("team", no_wrap=True)
    table.add_column("state", no_wrap=True, overflow="ellipsis", width=state_width)
    table.add_column("tokens", no_wrap=True, justify="right")
    table.add_column("tool calls", no_wrap=True, overflow="ellipsis", width=calls_width)
    table.add_column("task", no_wrap=True, overflow="ellipsis", width=task_width)
    for team in teams:
        calls = ", ".join(team.tool_calls[-4:])
        if len(team.tool_calls) > 4:
            calls = f"... {calls}"
        table.add_row(team.name, team.state, str(team.tokens), calls or "-", team.task)
    head: list[RenderableType] = [Text(note, style="dim"), table, Text("actor tree:", style="bold")]
    if not live:
        return Group(*head, Text(tree.render()))
    used = len(console.render_lines(Group(*head), console.options, pad=False))
    # One row spare: the cursor rests below the frame.
    rows = console.size.height - used - 1
    lines = _fit_tree(tree, rows)
    return Group(*head, *(Text(line, no_wrap=True, overflow="ellipsis") for line in lines))


async def _run_team(agent: Any, team: _Team) -> None:
    from ..schemas import StreamEventType

    team.state = "thinking"
    try:
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
                    team.state = f"error: {_one_line(str(event.error))}"
            result = events.result
    except LimelightError as exc:
        team.status, team.error, team.state = "error", str(exc), "done (error)"
        return
    if result is not None:
        team.status = result.status
        team.error = result.error
        team.turns = result.num_turns
        team.total_tokens = result.usage.total_tokens
        team.cost = result.cost
        team.state = f"done ({result.status})"


def _stop(live: Live) -> None:
    """Stop ``live``, also one whose start a KeyboardInterrupt broke off: the terminal's
    cursor is shown again whatever happened."""
    try:
        live.stop()
    except IndexError:  # rich's stacks of live displays and render hooks: start() stopped
        live.console.show_cursor(True)  # before it pushed onto them


async def _main(options: DemoOptions, model: Any, note: str, out: IO[str]) -> list[_Team]:
    """Run the teams with a live display, then print their final state; analytics' signal
    handlers (which commit what was recorded on SIGINT and SIGTERM) stand in front of the
    event loop's own meanwhile."""
    from .. import analytics

    # Installed here, inside the loop, they hand a Ctrl-C on to the loop's own handler
    # (asyncio's cancels the main task; trio's raises KeyboardInterrupt at a checkpoint, or
    # at once outside trio's own code). Installed before the loop started, they would keep
    # the loop from installing its handler, and KeyboardInterrupt would be raised wherever
    # the loop is, trio's and asyncio's internals included.
    analytics.install_signal_handlers()
    try:
        return await _show(options, model, note, out)
    finally:
        analytics.uninstall_signal_handlers()


async def _show(options: DemoOptions, model: Any, note: str, out: IO[str]) -> list[_Team]:
    from rich.console import Console
    from rich.live import Live

    from ..runtime import Runtime

    # The terminal's own size (or $COLUMNS / $LINES; 80 columns when not a terminal).
    console = Console(file=out, highlight=False)
    teams = [_Team(name=f"team-{i + 1}", task=task) for i, task in enumerate(_TASKS)]
    tools = _tools(options.tool_latency)
    async with Runtime() as rt:
        agents = [_team(team.name, model, tools, rt) for team in teams]
        for agent in agents:
            await rt.spawn(agent, name=agent.name)

        def frame() -> RenderableType:
            return _render(teams, rt.tree(), note, console, live=True)

        # Transient: the last frame is erased, and the whole final state printed once below.
        # Nothing redirected: stderr stays the terminal's, for warnings and errors.
        live = Live(
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        # Started inside the ``try``, not by ``with``: trio raises KeyboardInterrupt wherever
        # the main task is, and one raised inside ``Live.__enter__`` would skip its
        # ``__exit__``, leaving the terminal's cursor hidden.
        try:
            live.start()
            live.update(frame(), refresh=True)
            async with anyio.create_task_group() as tg:

                async def refresh() -> None:
                    while True:
                        await anyio.sleep(_REFRESH)
                        live.update(frame(), refresh=True)

                tg.start_soon(refresh)
                async with anyio.create_task_group() as work:
                    for agent, team in zip(agents, teams, strict=True):
                        work.start_soon(_run_team, agent, team)
                tg.cancel_scope.cancel()
        finally:
            _stop(live)
        console.print(_render(teams, rt.tree(), note, console, live=False))
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


# -- what it runs against --------------------------------------------------------------------


def _check(options: DemoOptions) -> AnalyticsConfig:
    """Check what can be checked before anything starts; returns the analytics settings.

    :raises LimelightError: what is wrong, and what to do about it.
    """
    from ..analytics import AnalyticsConfig

    check_backend(options.backend)
    config = AnalyticsConfig.from_env()
    if options.http and not options.simulated:
        raise ConfigError(
            "--http serves the simulator over HTTP: leave it out with --base-url, or with a "
            f"--model other than {' or '.join(_SIM_MODELS)}"
        )
    if options.api_key_env is not None and not os.environ.get(options.api_key_env):
        raise ConfigError(
            f"--api-key-env {options.api_key_env}: ${options.api_key_env} is not set: export "
            "it with the key, or name the variable that holds it"
        )
    no_key = not os.environ.get(_DEFAULT_API_KEY_ENV)
    if options.base_url is not None and options.api_key_env is None and no_key:
        raise ConfigError(
            f"no API key for {options.base_url}: ${_DEFAULT_API_KEY_ENV} is not set; export "
            "it (any value for a server that takes no key), or name the variable holding the "
            "key with --api-key-env VAR"
        )
    return config


def _check_litellm_key(provider: Any, model: str) -> None:
    """Refuse a LiteLLM model whose provider's key variable is not set, before any call.

    :raises ConfigError: LiteLLM says the model needs a ``*_KEY`` variable that is not set.
    """
    from ..providers._litellm import LiteLLM, import_litellm

    if not isinstance(provider, LiteLLM):
        return
    litellm = import_litellm()
    # LiteLLM prints its list of providers on stdout for a model it does not know.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            found = litellm.validate_environment(model=model)
        except Exception:
            return  # LiteLLM cannot tell; the first call will
    missing = [name for name in found.get("missing_keys") or () if name.endswith("_KEY")]
    if missing:
        raise ConfigError(
            f"{model} (through LiteLLM) needs ${missing[0]}, which is not set: export it, or "
            "name the variable holding the key with --api-key-env VAR"
        )


def _client_still_there(record: logging.LogRecord) -> bool:
    """A filter of the simulator server's log: drops the report of an answer whose client
    went away (the demo's own agents, stopped by Ctrl-C), expected and no concern of the
    user's."""
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, ConnectionResetError)


def _model(options: DemoOptions, stack: contextlib.ExitStack) -> tuple[Any, str]:
    """The model the agents use and a note saying what it is; a simulator served over HTTP
    is stopped by ``stack``.

    :raises LimelightError: the model cannot be used.
    """
    if options.simulated:
        from ..models import ModelProfile, register_model
        from ..providers import Simulated

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
            from ..providers import OpenAICompatible, serve_in_thread

            url = stack.enter_context(serve_in_thread(config))
            server_log = logging.getLogger("aiohttp.server")
            server_log.addFilter(_client_still_there)
            stack.callback(server_log.removeFilter, _client_still_there)
            note = (
                f"Model: the limelight simulator over HTTP at {url} (simulated: random words, "
                "random tool calls with schema-valid arguments, priced as gpt-4o-mini for "
                "illustration). Tools: scripted delays."
            )
            return OpenAICompatible(url, model="sim-1"), note
        note = (
            "Model: the limelight simulator, in-process (simulated: random words, random tool "
            "calls with schema-valid arguments, realistic latency, priced as gpt-4o-mini for "
            "illustration). Tools: scripted delays."
        )
        return Simulated(config), note
    from ..harness._config import Target
    from ..harness._targets import provider_for

    assert options.model is not None
    api_key_env = options.api_key_env
    if api_key_env is None and options.base_url is not None:
        api_key_env = _DEFAULT_API_KEY_ENV
    target = Target(model=options.model, base_url=options.base_url, api_key_env=api_key_env)
    provider = provider_for(target)
    if api_key_env is None:
        _check_litellm_key(provider, options.model)
    where = options.base_url or "the backend resolver"
    return provider, f"Model: {options.model} via {where}: its own answers. Tools: scripted delays."


def _events_store(options: DemoOptions) -> tuple[Path, Path]:
    """The events database to record into (``--db``, checked writable, or a new one that is
    kept), and a new directory of the run's own, which holds that new database and the
    run's analytics spool.

    :raises ConfigError: ``--db`` cannot be written.
    """
    if options.db is not None:
        check_writable(Path(options.db), flag="--db")
    work = Path(tempfile.mkdtemp(prefix="limelight-demo-"))
    return (Path(options.db) if options.db is not None else work / "events.db"), work


def _remove_if_empty(directory: Path) -> None:
    """Remove ``directory`` unless a file was left in it (events a sink did not take)."""
    if not any(path.is_file() for path in directory.rglob("*")):
        shutil.rmtree(directory, ignore_errors=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt, or an exception group holding one (task
    groups wrap what their tasks raise)."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(KeyboardInterrupt)[0] is not None
    return isinstance(exc, KeyboardInterrupt)


def run_demo(*, backend: str = "asyncio", options: DemoOptions | None = None) -> int:
    """Run the demo; returns the exit status: 0 done, 1 a team failed (the cause on stderr),
    2 bad options or environment (said on stderr before anything runs).

    :raises KeyboardInterrupt: on Ctrl-C, after analytics has been shut down (its message
        says where the events recorded so far are).
    """
    import structlog

    from .. import analytics
    from ..sinks import SQLiteSink, summarize
    from .events import print_summary

    options = options or DemoOptions(backend=backend)
    # Warnings and errors go to stderr, so the demo's own output stays readable.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    out = sys.stdout
    with contextlib.ExitStack() as stack:
        try:
            config = _check(options)
            model, note = _model(options, stack)
            db, work = _events_store(options)
        except LimelightError as exc:
            print(f"limelight demo: {_one_line(str(exc))}", file=sys.stderr)
            return 2
        if options.db is not None:
            stack.callback(_remove_if_empty, work)
        # A spool of its own: events some other program left in the shared one are not the
        # demo's to adopt (into its database), nor are the demo's theirs.
        config = msgspec.structs.replace(config, spool_dir=str(work / "spool"))
        # Its signal handlers are installed in the event loop (see _main).
        analytics.initialize(config=config, sinks=[SQLiteSink(db)], handle_signals=False)
        stack.callback(analytics.shutdown)
        try:
            teams: list[_Team] = anyio.run(
                _main, options, model, note, out, backend=options.backend
            )
        except BaseException as exc:
            if not _is_interrupt(exc):
                raise
            interrupted = True
        else:
            interrupted = False
    if interrupted:  # analytics has been shut down: what was recorded is in the database
        raise KeyboardInterrupt(f"the events so far are in {db}" if db.exists() else "")
    print(file=out)
    print_summary(summarize(db), file=out)
    print(f"\nThe events are kept; to see them again:\n  limelight events --db {db}", file=out)
    failed = [team for team in teams if team.status not in _SUCCEEDED]
    if failed:
        first = failed[0]
        cause = _one_line(first.error or f"the run ended with status {first.status}")
        print(
            f"limelight demo: {len(failed)} of {len(teams)} teams failed; {first.name}: {cause}",
            file=sys.stderr,
        )
        return 1
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``limelight demo`` options to ``parser``."""
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument(
        "--http", action="store_true", help="serve the simulator over HTTP (in a thread)"
    )
    parser.add_argument(
        "--model",
        help="a model instead of the simulator: a name for --base-url, or a model string for "
        "the backend resolver (gpt-4o-mini, mlx:PATH, ...); without --base-url, sim-1 (or "
        "sim) is the simulator, as in `limelight bench`",
    )
    parser.add_argument("--base-url", help="an OpenAI-compatible API root")
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="the environment variable holding the API key; it must be set (default with "
        f"--base-url: {_DEFAULT_API_KEY_ENV})",
    )
    parser.add_argument(
        "--db",
        help="the analytics SQLite file to record into (default: a new one in a temporary "
        "directory, kept)",
    )
    parser.add_argument("--seed", type=int, default=4, help="the simulator's seed (%(default)s)")


def run(args: argparse.Namespace) -> int:
    """Run ``limelight demo`` with the parsed options; 130 after Ctrl-C."""
    if args.base_url and not args.model:
        print("limelight demo: --base-url needs --model (the model to ask for)", file=sys.stderr)
        return 2
    try:
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
    except KeyboardInterrupt as exc:
        where = f" ({exc})" if str(exc) else ""
        print(f"limelight demo: interrupted{where}", file=sys.stderr)
        return 130
